"""Edge processes: the Modbus plan compiler, register decoder, poller and MQTT uplink."""

from gateway.decode import decode_point
from gateway.errors import DeviceError, GatewayError, PlanError
from gateway.plan import ReadRequest, compile_plan
from gateway.poller import DevicePoller
from gateway.publisher import MqttPublisher
from gateway.runner import Gateway

__all__ = [
    "DeviceError",
    "DevicePoller",
    "Gateway",
    "GatewayError",
    "MqttPublisher",
    "PlanError",
    "ReadRequest",
    "compile_plan",
    "decode_point",
]
