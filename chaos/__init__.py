"""`make chaos`: the hub, its gateway, Mosquitto and InfluxDB as separate processes under a fault
schedule, with every reading and alarm transition accounted for afterwards (issue 10)."""
