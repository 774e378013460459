"""Simulated field devices for tests and demos: register encoding, scenario signals, Modbus TCP."""

from simulators.encode import decode_words, encode_point
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant, Noisy, Piecewise, Ramp, Signal

__all__ = [
    "Constant",
    "ModbusSimServer",
    "Noisy",
    "Piecewise",
    "Ramp",
    "Signal",
    "SimulatedDevice",
    "decode_words",
    "encode_point",
]
