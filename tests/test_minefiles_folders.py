"""Each mine uploads into a folder of its own: a file whose name names another mine is refused
and nothing of it is published (one mine's FTP login cannot speak for another's tenant);
done/ and rejected/ lie outside every mine's folder; a start with the older one-folder layout
is refused, saying what to change."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.minefiles import MineFilesConfig, MineFilesGateway, resolve
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.mt1201 import Header, file_name
from telemetry.mt1201write import write
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import TelemetryWatch, eventually, shipped_profiles
from minefiles_rig import HUB_YAML, MINE, mines, now_s, reading, taken, write_file

OTHER = "140211000002"  # another mine, of another tenant
TWO_TENANTS_YAML = (
    HUB_YAML
    + f"""
  - id: south-coal
    sites:
      - id: face-2201
        kind: mine
        devices:
          - id: kj-b
            profile: mt1201-kj
            gateway: kj-files
            sensors:
              - {{id: {OTHER}-001A01, point: "001A01", kind: methane, tag: T2,
                  rule: coal-methane.return-t2}}
"""
)


def _registry() -> Registry:
    config = parse_document(TWO_TENANTS_YAML, HubConfig, "h.yaml")
    profiles, packs = shipped_profiles()
    return build_registry(config, profiles, packs, "h.yaml")


def _config(incoming: Path, **settings: object) -> MineFilesConfig:
    return MineFilesConfig.model_validate(
        {
            "incoming": str(incoming),
            "settle_s": 0,
            "scan_s": 0.05,
            "mines": {
                MINE: {
                    "tenant": "north-coal",
                    "site": "face-1301",
                    "points": {"001A01": "t2-return"},
                },
                OTHER: {"tenant": "south-coal", "site": "face-2201"},
            },
            **settings,
        }
    )


def _file_of(folder: Path, mine: str, records: list[object], at_ms: int) -> Path:
    """A file of `mine` (its name and header) written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(mine, "SS", at_ms)
    path.write_bytes(write(Header(mine, "矿", "AQ", "安全监控系统", at_ms), records))  # type: ignore[arg-type]
    return path


async def test_a_file_of_another_mine_in_a_mines_folder_is_refused_unpublished(
    mosquitto, tmp_path
) -> None:
    incoming = tmp_path / "ftp"
    for mine in (MINE, OTHER):
        (incoming / mine).mkdir(parents=True)
    t = now_s() * 1000
    # mine A's login uploads a file in mine B's name: B's methane at 3 %
    forged = _file_of(incoming / MINE, OTHER, [reading("001A01", 3.0, "0", t)], t)
    own = _file_of(incoming / MINE, MINE, [reading("001A01", 0.3, "0", t)], t)
    gw = MineFilesGateway(
        resolve(_config(incoming), _registry(), "mines.yaml"),
        broker_host="127.0.0.1",
        broker_port=mosquitto.port,
        state_dir=tmp_path / "state",
    )
    stop = asyncio.Event()
    async with TelemetryWatch(mosquitto.port) as watch:
        task = asyncio.create_task(gw.run(stop))
        try:

            async def both() -> bool:
                return (
                    taken(incoming, own.name).exists()
                    and taken(incoming, forged.name, "rejected").exists()
                )

            await eventually(both, 10, "mine A's file taken, B's refused")
            await watch.quiet()
        finally:
            stop.set()
            await task
    assert "kj-b" not in watch.published  # nothing of mine B's tenant
    assert sum(watch.published["kj"].values()) == 1  # mine A's own reading
    reason = taken(incoming, forged.name, "rejected").with_name(f"{forged.name}.reason")
    why = reason.read_text(encoding="utf-8")
    assert f"mine code {OTHER} is not mine {MINE}'s" in why and "nothing of it" in why
    assert gw.counters["files_wrong_folder"] == 1 and gw.counters["files_rejected"] == 1


async def test_a_file_at_the_top_of_incoming_is_refused_once_running(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    gw = MineFilesGateway(
        mines(incoming), broker_host="127.0.0.1", broker_port=1, state_dir=tmp_path
    )
    t = now_s() * 1000
    stray = write_file(incoming, "YC", [], t)  # a login still rooted at incoming
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        await gw.scan()
    why = taken(incoming, stray.name, "rejected").with_name(f"{stray.name}.reason")
    assert "not in a mine's folder" in why.read_text(encoding="utf-8")
    assert gw.counters["files_wrong_folder"] == 1 and gw.counters["records_YC"] == 0


def test_done_and_rejected_are_outside_every_mines_folder(tmp_path) -> None:
    config = _config(tmp_path / "ftp")
    for mine in (MINE, OTHER):
        folder = config.folder_of(mine)
        assert folder == tmp_path / "ftp" / mine
        for kept in (config.done_dir, config.rejected_dir):
            assert not kept.is_relative_to(folder) and not folder.is_relative_to(kept)
    inside = str(tmp_path / "ftp" / MINE / "done")
    with pytest.raises(ValidationError, match=f"is mine {MINE}'s upload folder"):
        _config(tmp_path / "ftp", done=inside)
    with pytest.raises(ValidationError, match=f"is mine {OTHER}'s upload folder"):
        _config(tmp_path / "ftp", rejected=str(tmp_path / "ftp" / OTHER))
    same = {MINE: {"tenant": "north-coal", "site": "face-1301", "folder": "a"}}
    same[OTHER] = {"tenant": "south-coal", "site": "face-2201", "folder": "a"}
    with pytest.raises(ValidationError, match=r"is mine .*'s .* or inside it"):
        _config(tmp_path / "ftp", mines=same)
    with pytest.raises(ValidationError, match="is incoming itself"):
        _config(tmp_path / "ftp", mines={MINE: {"tenant": "n", "site": "s", "folder": "."}})
    # the older layout, asked for by name: done/ inside incoming as before
    shared = _config(tmp_path / "ftp", unsafe_shared_folder=True)
    assert shared.folder_of(OTHER) == tmp_path / "ftp" == shared.done_dir.parent


def test_a_start_with_the_one_folder_layout_is_refused_saying_what_to_change(
    tmp_path, caplog
) -> None:
    incoming = tmp_path / "ftp"
    resolved = resolve(_config(incoming), _registry(), "mines.yaml")
    (incoming / MINE).mkdir(parents=True)
    with pytest.raises(ConfigError, match=rf"upload folder of mine\(s\) {OTHER} does not exist"):
        MineFilesGateway(resolved, broker_host="h", broker_port=1, state_dir=tmp_path / "s")
    (incoming / OTHER).mkdir()
    write_file(incoming, "SS", [reading("001A01", 0.3, "0", now_s() * 1000)], now_s() * 1000)
    with pytest.raises(ConfigError, match=r"holds 1 file\(s\) at its top .*unsafe_shared_folder"):
        MineFilesGateway(resolved, broker_host="h", broker_port=1, state_dir=tmp_path / "s")
    # asked for by name, the older layout works, said unsafe at each start
    shared = resolve(_config(incoming, unsafe_shared_folder=True), _registry(), "mines.yaml")
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        MineFilesGateway(shared, broker_host="h", broker_port=1, state_dir=tmp_path / "s")
    assert any(
        "any mine's FTP login can upload files as another" in r.message for r in caplog.records
    )
