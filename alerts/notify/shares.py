"""Where an outbox row goes and what it counts against, for `alerts.notify.delivery`: its channel
read from the outbox text (`CHANNEL`, `guarded_json`: an enterprise's object's, guarded, or the
centre's), the receiver it is sent to, the share it counts against (its tenant's, or the centre's
share of that tenant), the send slots (of all, of a share) and the address guard of its webhook. A
concern of its own, split from `alerts.notify.delivery` (whose `Delivery` extends `Shares` and sets
up every attribute declared here); the code moved as it was.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from alerts.notify.channels import Senders
from alerts.notify.netguard import AddressGuard
from alerts.notify.store import LOCAL_TYPES
from telemetry.notifychannels import EmailChannel, WebhookChannel
from telemetry.notifyconfig import ChannelSpec, NotifySettings

__all__ = ["CHANNEL", "Due", "Shares", "guarded_json", "same_receiver"]

CHANNEL: TypeAdapter[ChannelSpec] = TypeAdapter(ChannelSpec)


class _Guarded(BaseModel):
    """An outbox row's channel from an enterprise's object: its webhook may reach only the
    addresses `alerts.notify.netguard` permits."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    guarded: bool
    channel: ChannelSpec


_ROW_CHANNEL: TypeAdapter[ChannelSpec | _Guarded] = TypeAdapter(ChannelSpec | _Guarded)


def guarded_json(channel_json: str, guarded: bool = True) -> str:
    """The outbox text of a channel (`channel_json` as `CHANNEL` dumps it): of an enterprise's
    subscription or policy (guarded), or of the centre's (not). A row whose text is the bare
    channel was queued by a hub of before the guard: its object decides (`row_guarded`)."""
    return f'{{"guarded":{"true" if guarded else "false"},"channel":{channel_json}}}'


def _row_channel(text: str) -> tuple[ChannelSpec, bool | None]:
    """An outbox row's channel text read: the channel, and whether it is guarded (None: a bare
    channel, queued by a hub of before the guard). Raises ValidationError."""
    parsed = _ROW_CHANNEL.validate_json(text)
    return (parsed.channel, parsed.guarded) if isinstance(parsed, _Guarded) else (parsed, None)


def _receiver(channel: ChannelSpec) -> tuple[object, ...]:
    """Who a channel reaches: its type and URL or addresses (not its secret nor its timing)."""
    if isinstance(channel, WebhookChannel):
        return ("webhook", channel.url)
    if isinstance(channel, EmailChannel):
        return ("email", tuple(sorted(channel.to)))
    return (channel.type,)


def same_receiver(channel: ChannelSpec, made: str) -> bool:
    """Whether `channel` reaches whom an outbox row's channel text `made` (guarded or bare)
    reached: the same type and URL or addresses (a new secret or timeout is the same receiver);
    False when the text cannot be read."""
    try:
        old, _ = _row_channel(made)
    except ValidationError:
        return False
    return _receiver(channel) == _receiver(old)


_TENANT_SHARE = 4  # a tenant's sends in flight: at most max_in_flight // this
# rows queued or being sent, in takes (`Delivery.take_limit`): of one receiver, one tenant, all
_RECEIVER_TAKES, _TENANT_TAKES, _ALL_TAKES = 1, 2, 8


class Due(NamedTuple):
    """An outbox row taken for sending (a tuple: made for every row of a take, which may have
    room for a few of them only)."""

    id: int
    key: str
    tenant: str
    site: str
    subscription: str
    channel: str
    subject: str
    events: str
    created_at: int
    attempts: int
    arrival: int | None  # the earliest of its events' (None: a row of before the column)
    series: str | None = None  # its key's installation id, when not the outbox's (`sent_key`)


class Shares:
    """The rows' channels, receivers, shares, slots and guards, a part of `Delivery`, which sets
    up every attribute declared here."""

    settings: NotifySettings
    _senders: Senders
    _channels: dict[str, tuple[ChannelSpec, bool | None]]
    _row_guarded: Callable[[str, str], bool] | None
    _guard: tuple[object, AddressGuard] | None
    _receivers: dict[str, str]
    _rows: Counter[str]  # per receiver, rows queued or being sent
    _tenant_rows: Counter[str]  # per share, likewise
    _row_total: int  # all of them but the hub's own channels'
    _slots: tuple[int, asyncio.Semaphore] | None
    _tenant_slots: dict[str, tuple[int, asyncio.Semaphore]]

    def _receiver(self, text: str) -> str:
        """The receiver of a channel (by its text, as the outbox holds it), named with its
        type: a webhook's host called `mqtt` is not the hub's broker."""
        receiver = self._receivers.get(text)
        if receiver is None:
            channel = self._channel(text)
            receiver = f"{channel.type}:{self._senders.receiver_of(channel)}"
            self._receivers[text] = receiver
        return receiver

    def _local(self, text: str) -> bool:
        """Whether a channel is one of the hub's own (`LOCAL_TYPES`)."""
        return self._channel(text).type in LOCAL_TYPES

    def _admit(self, units: list[list[Due]], limit: int) -> list[list[Due]]:
        """The units there is room for now, in order, were they queued one after the other:
        a receiver has at most `limit` rows queued or being sent, a share two takes' worth, all
        together eight (the hub's own channels count against no share nor all). The others'
        rows stay in the outbox, to be taken when there is room."""
        rows = {r: n for r, n in self._rows.items() if n}
        shares = {s: n for s, n in self._tenant_rows.items() if n}
        total = self._row_total
        seen: dict[str, tuple[str, bool]] = {}  # a channel text: its receiver, whether local
        admitted = []
        for unit in units:
            row = unit[0]
            found = seen.get(row.channel)
            if found is None:
                found = seen[row.channel] = (self._receiver(row.channel), self._local(row.channel))
            receiver, local = found
            if rows.get(receiver, 0) >= _RECEIVER_TAKES * limit:
                continue
            if not local:
                share = self._share(row)
                if shares.get(share, 0) >= _TENANT_TAKES * limit or total >= _ALL_TAKES * limit:
                    continue
                shares[share] = shares.get(share, 0) + len(unit)
                total += len(unit)
            rows[receiver] = rows.get(receiver, 0) + len(unit)
            admitted.append(unit)
        return admitted

    def _slot(self) -> asyncio.Semaphore:
        n = self.settings.max_in_flight
        if self._slots is None or self._slots[0] != n:  # a new setting: a new pool from now on
            self._slots = (n, asyncio.Semaphore(n))
        return self._slots[1]

    def _share(self, row: Due) -> str:
        """The share a row counts against: its tenant's for the enterprise's own objects (their
        text says guarded, or a row of before the guard), `<tenant>|centre` for the centre's
        (helper-122: an enterprise whose own webhooks hung held the centre's notifications of
        its red alarms for minutes). By the text alone: the same for a row at every step."""
        return row.tenant if self._parsed(row.channel)[1] is not False else f"{row.tenant}|centre"

    def _tenant_slot(self, tenant: str) -> asyncio.Semaphore:
        share = max(self._senders.per_receiver, self.settings.max_in_flight // _TENANT_SHARE)
        slot = self._tenant_slots.get(tenant)
        if slot is None or slot[0] != share:  # a new setting: a new pool from now on
            slot = self._tenant_slots[tenant] = (share, asyncio.Semaphore(share))
        return slot[1]

    def _parsed(self, text: str) -> tuple[ChannelSpec, bool | None]:
        found = self._channels.get(text)
        if found is None:
            found = self._channels[text] = _row_channel(text)
        return found

    def _channel(self, text: str) -> ChannelSpec:
        return self._parsed(text)[0]

    def _is_guarded(self, row: Due) -> bool:
        """Whether a row's channel is an enterprise's: as its text says, or for a bare text (a
        row queued by a hub of before the guard, perhaps sent again by hand) as its object is
        now, or guarded when that object is gone (`row_guarded`)."""
        guarded = self._parsed(row.channel)[1]
        if guarded is not None:
            return guarded
        return self._row_guarded is None or self._row_guarded(row.subscription, row.key)

    def _guard_of(self, rows: list[Due]) -> AddressGuard | None:
        """Where the rows' channel may connect: None for anywhere (the centre's). Guarded when
        its outbox text says so, or when a row's object is an enterprise's now (`row_guarded`:
        a row queued by a hub of before the guard, or sent again by hand)."""
        if not self._is_guarded(rows[0]):
            return None
        networks = self.settings.enterprise_webhook_networks
        if self._guard is None or self._guard[0] is not networks:  # a new setting
            self._guard = (networks, AddressGuard.of(networks))
        return self._guard[1]
