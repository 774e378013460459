"""Notification of alarm events: the channel senders (`alerts.notify.channels`) and the routing
and durable outbox that decide what goes where and retry it."""
