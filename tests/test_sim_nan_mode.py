"""The scenario mode `nan` (helper-237): a float detector's own fault signal, NaN, rehearsed.
`line_break` on a point that is not 4-20 mA makes the unit answer exception 04 for the whole
read (a 12-channel panel's every detector no_data), and a scenario's numbers may not be NaN;
`nan` serves NaN in the point's registers, and the hub raises the sensor-fault alarm of that
detector alone."""

from __future__ import annotations

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from hazardhub.settings import load
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.config import DeviceProfile
from telemetry.registry import parse_document

from e2e_helpers import play

SITE = """
version: 1
device_profiles:
  - name: acme-gas-panel-3
    points:
      - {name: gas1, address: 0, dtype: float32, word_order: CDAB, unit: "%LEL", valid: [-5, 120]}
      - {name: gas2, address: 2, dtype: float32, word_order: CDAB, unit: "%LEL", valid: [-5, 120]}
      - {name: gas3, address: 4, dtype: float32, word_order: CDAB, unit: "%LEL", valid: [-5, 120]}
      - {name: count, address: 6, dtype: uint16}
tenants:
  - id: acme
    sites:
      - id: lpg
        devices:
          - id: gas-panel
            profile: acme-gas-panel-3
            modbus: {host: 127.0.0.1, port: 25301, unit: 1, timeout_s: 0.5}
            sensors:
              - {id: gd-01, point: gas1, kind: flammable_gas, rule: chem-gas.flammable-lel}
              - {id: gd-02, point: gas2, kind: flammable_gas, rule: chem-gas.flammable-lel}
              - {id: gd-03, point: gas3, kind: flammable_gas, rule: chem-gas.flammable-lel}
"""

NAN_DETECTOR = """
name: nan-detector
duration_s: 80
events:
  - {at_s: 20, device: gas-panel, point: gas2, mode: nan, for_s: 30}
"""


def _profile() -> DeviceProfile:
    return DeviceProfile.model_validate(yaml.safe_load(SITE)["device_profiles"][0])


async def test_a_nan_mode_serves_a_quiet_nan_in_the_points_word_order():
    """Over the wire: gas2's registers hold NaN (low word first, CDAB), its neighbours their
    values in the same read; a point that is no float cannot be put in the mode."""
    device = SimulatedDevice(_profile(), 1, {"gas1": Constant(25.0)}, lambda: 0.0)
    device.set_mode("gas2", "nan")
    with pytest.raises(ValueError, match="uint16 has no NaN"):
        device.set_mode("count", "nan")
    srv = ModbusSimServer([device])
    await srv.start()
    cli = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=1.0, retries=0)
    try:
        assert await cli.connect()
        rr = await cli.read_holding_registers(0, count=7, device_id=1)
        assert not rr.isError(), rr
        assert rr.registers[2:4] == [0x0000, 0x7FC0]  # NaN, CDAB: the low word first
        assert rr.registers[0:2] == [0x0000, 0x41C8]  # 25.0
        device.set_mode("gas2", None)
        rr = await cli.read_holding_registers(0, count=7, device_id=1)
        assert rr.registers[2:4] == [0x0000, 0x0000]  # 0.0 again
    finally:
        cli.close()
        await srv.stop()


def test_a_nan_mode_on_a_point_that_is_no_float_is_refused_at_load(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(SITE)
    reg = load(config).registry()
    text = NAN_DETECTOR.replace("point: gas2", "point: count")
    spec = parse_document(text, ScenarioSpec, "nan-detector")
    with pytest.raises(ValueError, match="mode 'nan' needs a float32 or float64 point"):
        compile_scenario(spec, reg)


@pytest.mark.slow
async def test_a_nan_detector_raises_its_own_fault_alarm_only(mosquitto, tmp_path):
    """gd-02 serves NaN from 20 s to 50 s of the scenario: the hub raises its sensor-fault
    alarm and clears it when it measures again; gd-01 and gd-03, read in the same request,
    raise nothing (with `line_break` all three were no_data: exception 04)."""
    config = tmp_path / "site.yaml"
    config.write_text(SITE)
    reg = load(config).registry()
    spec = parse_document(NAN_DETECTOR, ScenarioSpec, "nan-detector")
    played = await play(
        compile_scenario(spec, reg), config, mosquitto.port, tmp_path, accel=20.0, poll_s=0.1
    )
    fault = 2  # alerts.kinds.FAULT
    got = [(e[0], e[1], e[2]) for e in played.events]
    assert got == [("gd-02", fault, "raised"), ("gd-02", fault, "cleared")], played.events
    raised, cleared = (e[4] for e in played.events)
    assert 20 - 1 <= raised <= 20 + 6, played.events
    assert 50 - 1 <= cleared <= 50 + 6, played.events
