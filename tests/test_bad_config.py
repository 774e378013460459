"""The bad-input corpus against the configuration files: every bad file is refused with a
clear reason that names the file and the place in it, never a traceback, and `hazardhub check`
exits 2 saying so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hazardhub.settings import load_registry
from telemetry.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1502, unit: 1, poll_s: 1.0}
            sensors:
              - {id: ch4-t1, point: ch4_t1, kind: methane, tag: T1, rule: coal-methane.face-t1}
"""

BOMB = "\n".join(
    ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    + ["version: 1", "tenants: *a8"]
)

# (name, file bytes, words the error must contain)
CORPUS: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("truncated", GOOD[: GOOD.index("sensors:") + 20].encode(), ("sensors",)),
    ("broken-yaml", GOOD.replace("kind: mine", "kind: [mine").encode(), ("not valid YAML",)),
    ("not-utf8", GOOD.encode().replace(b"kj-sub-3", b"kj-\xff\xfe-3"), ("not UTF-8",)),
    ("a-list", b"- 1\n- 2\n", ("Input should be",)),
    ("a-string", b'"just text"', ("Input should be",)),
    ("wrong-version", GOOD.replace("version: 1", "version: 7").encode(), ("version",)),
    (
        "unknown-field",
        GOOD.replace("kind: mine", "kind: mine\n        colour: red").encode(),
        ("colour", "Extra inputs"),
    ),
    ("wrong-type", GOOD.replace("poll_s: 1.0", "poll_s: often").encode(), ("poll_s",)),
    ("negative-poll", GOOD.replace("poll_s: 1.0", "poll_s: -1").encode(), ("poll_s",)),
    (
        # helper-109: a level the point can never read (beyond its `valid`) is never reached
        "level-beyond-valid",
        GOOD.replace(
            "version: 1",
            "version: 1\ndevice_profiles:\n  - name: gauge\n    points: [{name: ch4_t1, "
            "address: 0, scale: 0.01, valid: [0, 12.5]}]",
        )
        .replace("profile: coal-substation", "profile: gauge")
        .replace(
            "rule: coal-methane.face-t1",
            "levels: [{name: hihi, tier: red, above: 14.8, recover: 14.5}]",
        )
        .encode(),
        # (the level of sensor 'x', never "sensor 'x''s level")
        ("the level 'hihi' of sensor '", "outside what its point", "ch4_t1", "[0, 12.5]: valid"),
    ),
    (
        # helper-115: a 0-100 transmitter (4-20 mA) given a level at 200 reads at most 106.25
        # (21 mA, above which a reading is a sensor fault)
        "level-beyond-4-20ma-span",
        GOOD.replace(
            "version: 1",
            "version: 1\ndevice_profiles:\n  - name: tx420\n    points: [{name: ch4_t1, "
            "address: 0, current: {eng_min: 0, eng_max: 100}}]",
        )
        .replace("profile: coal-substation", "profile: tx420")
        .replace(
            "rule: coal-methane.face-t1",
            "levels: [{name: l2, tier: red, above: 200, recover: 180}]",
        )
        .encode(),
        ("outside what its point", "[-2.5, 106.25]", "4-20 mA", "never reached"),
    ),
    (
        # a uint16 register times 0.001 reads at most 65.535
        "level-beyond-register-range",
        GOOD.replace(
            "version: 1",
            "version: 1\ndevice_profiles:\n  - name: fine\n    points: [{name: ch4_t1, "
            "address: 0, scale: 0.001}]",
        )
        .replace("profile: coal-substation", "profile: fine")
        .replace(
            "rule: coal-methane.face-t1",
            "levels: [{name: hi, tier: red, above: 80, recover: 70}]",
        )
        .encode(),
        ("outside what its point", "[0, 65.535]", "uint16 register", "never reached"),
    ),
    (
        "nan-level",
        GOOD.replace(
            "rule: coal-methane.face-t1", "levels: [{name: a, tier: red, above: .nan, recover: 1}]"
        ).encode(),
        ("above",),
    ),
    (
        "inf-level",
        GOOD.replace(
            "rule: coal-methane.face-t1", "levels: [{name: a, tier: red, above: .inf, recover: 1}]"
        ).encode(),
        ("above",),
    ),
    (
        "unknown-rule",
        GOOD.replace("coal-methane.face-t1", "coal-methane.no-such").encode(),
        ("no-such",),
    ),
    (
        "unknown-profile",
        GOOD.replace("profile: coal-substation", "profile: nope").encode(),
        ("nope",),
    ),
    ("unknown-point", GOOD.replace("point: ch4_t1", "point: nope").encode(), ("nope",)),
    (
        "duplicate-sensor",
        GOOD.replace(
            "rule: coal-methane.face-t1}",
            "rule: coal-methane.face-t1}\n"
            "              - {id: ch4-t1, point: ch4_t0, kind: methane}",
        ).encode(),
        ("ch4-t1",),
    ),
    ("bad-id", GOOD.replace("id: face-1301", "id: face/1301").encode(), ("id",)),
    ("reserved-site", GOOD.replace("id: face-1301", "id: vehicles").encode(), ("reserved",)),
    (
        "deep-nesting",
        ("version: 1\ntenants: " + "[" * 200 + "]" * 200).encode(),
        ("Input should be",),
    ),
    ("alias-bomb", BOMB.encode(), ("Input should be",)),
    (
        "bad-key-hash",
        (GOOD + "api_keys: [{name: k, sha256: abc, role: admin}]").encode(),
        ("sha256",),
    ),
    (
        "unknown-key-tenant",
        (
            GOOD + f"api_keys: [{{name: k, sha256: '{'0' * 64}', role: enterprise, tenants: [x]}}]"
        ).encode(),
        ("unknown tenant",),
    ),
    (
        "subscription-site-typo",
        GOOD.replace(
            "    sites:\n",
            "    subscriptions:\n"
            "      - {id: desk, channel: {type: mqtt}, match: {sites: [face-1310]}}\n"
            "    sites:\n",
        ).encode(),
        ("tenants.0.subscriptions.0.match.sites", "'face-1310' not in tenant 'north-coal'"),
    ),
    (
        "subscription-sensor-kind-typo",
        GOOD.replace(
            "    sites:\n",
            "    subscriptions:\n"
            "      - {id: desk, channel: {type: mqtt}, match: {sensor_kinds: [methan]}}\n"
            "    sites:\n",
        ).encode(),
        ("tenants.0.subscriptions.0.match.sensor_kinds", "'methan': no such kind (the kinds: co,"),
    ),
    (
        "silence-sensor-typo",
        GOOD.replace(
            "    sites:\n",
            "    silences:\n"
            "      - {id: m, comment: maint, sensors: [ch4-t2], starts: 1764460800000,"
            " ends: 1764464400000}\n"
            "    sites:\n",
        ).encode(),
        ("tenants.0.silences.0.sensors", "'ch4-t2' not in tenant"),
    ),
    (  # YAML keeps the last of two equal keys: the first no_data_s vanished (helper-126)
        "duplicate-key",
        GOOD.replace("rule: coal-methane.face-t1}\n", "rule: coal-methane.face-t1,\n")
        .replace(
            "sensors:\n              - {",
            "sensors:\n              - {no_data_s: 10, ",
        )
        .encode()
        + b"                 no_data_s: 3600}\n",
        ("line 14", "'no_data_s' is given twice", "first at line 13"),
    ),
    (  # a second top-level block pasted in replaced the first whole
        "duplicate-block",
        (GOOD + "tenants: []\n").encode(),
        ("'tenants' is given twice", "first at line 3"),
    ),
    (
        "corridor-vehicle",
        (
            GOOD + "fleet: {geofences: [{kind: corridor, id: c, vehicles: [ghost], "
            "polyline: [[31, 120], [31.1, 120]], buffer_m: 100}]}"
        ).encode(),
        (),
    ),
]


@pytest.mark.parametrize(("name", "data", "words"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_bad_configuration_is_refused_with_its_reason(tmp_path, name, data, words):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    if name == "corridor-vehicle":  # the fleet's references are checked when it is compiled
        from alerts.vehicles import FleetConfigError, compile_fleet

        reg = load_registry(path, [ROOT / "profiles"])
        with pytest.raises(FleetConfigError, match="ghost"):
            compile_fleet(reg.config.fleet, reg.vehicles.values())
        return
    with pytest.raises(ConfigError) as err:
        load_registry(path, [ROOT / "profiles"])
    text = str(err.value)
    assert str(path) in text, text
    for word in words:
        assert word in text, text


def test_the_good_file_of_the_corpus_loads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_registry(path, [ROOT / "profiles"]).sensor("ch4-t1") is not None


@pytest.mark.parametrize(
    "name", ["broken-yaml", "not-utf8", "nan-level", "duplicate-key", "corridor-vehicle"]
)
def test_hazardhub_check_exits_2_with_the_reason(tmp_path, name):
    data = {c[0]: c[1] for c in CORPUS}[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    r = subprocess.run(
        [sys.executable, "-m", "hazardhub", "check", "-c", str(path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("configuration error:"), r.stderr
    assert "Traceback" not in r.stderr
    # every error names the file (the fleet's named its place in `fleet:` only, helper-116)
    assert str(path) in r.stderr, r.stderr
    if name == "corridor-vehicle":
        assert f"{path}: fleet.geofences.0.vehicles" in r.stderr, r.stderr
