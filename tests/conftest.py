"""Shared fixtures: real Mosquitto and InfluxDB servers on free loopback ports (see `services`).

- `mosquitto`: a fresh broker per test (starts in tens of milliseconds); `.stop()` / `.start()`
  restart it on the same port with the same persistence file.
- `mosquitto_session`: one broker for the whole run, for tests that only publish and subscribe.
- `influxdb`: one InfluxDB 1.x for the whole run; tests use their own database names. A test that
  stops it must start it again (``try``/``finally``).

A missing binary fails the test with a message to run ``make test``; it is never skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notify_rig import Rig
from services import InfluxService, MosquittoService, ServiceError

_S = TypeVar("_S", MosquittoService, InfluxService)

# A property test judges behaviour, not speed: hypothesis's 200 ms deadline per example is a timed
# assertion, and it failed a Modbus codec property on a loaded machine (309 ms). Speed is measured
# in bench/. (A test's own @settings still wins for what it sets.)
settings.register_profile("hazardhub", deadline=None)
settings.load_profile("hazardhub")


def _launch(factory: type[_S], workdir: Path) -> _S:
    try:
        return factory(workdir).launch()
    except ServiceError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoService]:
    """A Mosquitto broker for one test, with persistence in the test's temporary folder."""
    service = _launch(MosquittoService, tmp_path / "mosquitto")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoService]:
    """One Mosquitto broker shared by the whole test run."""
    service = _launch(MosquittoService, tmp_path_factory.mktemp("mosquitto"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxService]:
    """One InfluxDB 1.x server shared by the whole test run (`.url` is its v1 HTTP API)."""
    service = _launch(InfluxService, tmp_path_factory.mktemp("influxdb"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The notification pipeline's rig (`notify_rig`), closed after the test."""
    rig = Rig(tmp_path)
    yield rig
    rig.notifier.close()
    rig.db.close()
