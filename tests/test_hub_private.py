"""The hub's data folder holds webhook secrets in clear (`state.db`, `registry.db`): its
databases and their write-ahead logs are the hub's user's alone, those of an older hub too
(helper-73 found them 0644)."""

from __future__ import annotations

import os
import stat

from hazardhub.hub import Hub, HubSettings

from e2e_helpers import mine_registry, running_hub
from services import free_port


def _mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_hubs_databases_are_readable_by_its_user_alone(mosquitto, tmp_path):
    for name in ("state.db", "analytics-state.npz"):  # left by a hub of before, readable by all
        old = tmp_path / name
        old.touch(mode=0o644)
        old.chmod(0o644)
    settings = HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=free_port())
    async with running_hub(Hub(mine_registry(1502, 1.0), settings)):
        made = sorted(p.name for p in tmp_path.iterdir() if ".db" in p.name)
        assert {"registry.db", "state.db", "state-outbox.db", "timeseries.db"} <= set(made)
        assert any(name.endswith("-wal") for name in made)  # SQLite's logs, made since
        assert {name: _mode(tmp_path / name) for name in made} == dict.fromkeys(made, 0o600)
    # the analytics state saved at stop (every vehicle's driving, every sensor's state) too
    assert _mode(tmp_path / "analytics-state.npz") == 0o600
