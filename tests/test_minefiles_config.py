"""The mine-files configuration refuses done/ or rejected/ being the upload folder (or holding
it): the housekeeping would remove files not yet taken."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.minefiles import MineFilesConfig

from minefiles_rig import MINE

_MINES = {MINE: {"tenant": "north-coal", "site": "face-1301"}}


@pytest.mark.parametrize(
    ("done", "rejected"),
    [("/srv/ftp/kj", None), ("/srv/ftp/kj/", None), (None, "/srv/ftp/kj/../kj"), ("/srv", None)],
)
def test_done_or_rejected_being_the_upload_folder_is_refused(
    done: str | None, rejected: str | None
) -> None:
    doc = {"incoming": "/srv/ftp/kj", "done": done, "rejected": rejected, "mines": _MINES}
    with pytest.raises(ValidationError, match="upload folder incoming: or holds it"):
        MineFilesConfig.model_validate(doc)


def test_folders_of_their_own_are_taken() -> None:
    doc = {"incoming": "/srv/ftp/kj", "done": "/srv/archive/kj", "mines": _MINES}
    config = MineFilesConfig.model_validate(doc)
    assert config.rejected_dir.as_posix() == "/srv/ftp/kj/rejected"


def test_check_points_lists_gas_points_without_a_rule_and_a_hub_looser_than_the_mine(
    tmp_path, capsys
) -> None:
    from gateway.minefiles import check
    from gateway.minefiles.points import save_points
    from hazardhub.cli import main
    from telemetry.config import HubConfig
    from telemetry.registry import build_registry, parse_document

    from e2e_helpers import shipped_profiles
    from minefiles_rig import HUB_YAML, mines, point_def

    # the face's T1 has no rule at the hub: the hub raises nothing for it
    hub_yaml = HUB_YAML.replace(" rule: coal-methane.face-t1}", "}")
    profiles, packs = shipped_profiles()
    registry = build_registry(parse_document(hub_yaml, HubConfig, "h"), profiles, packs, "h")
    points = (point_def("001A01", 0.8), point_def("001A02", 1.0, "1301工作面"))
    found = {f.point: f for f in check(mines(tmp_path / "ftp", registry), MINE, points)}
    assert found["001A02"].kind == "no_rule" and found["001A02"].gap
    assert found["001A01"].kind == "hub_looser" and not found["001A01"].gap  # 1.0 at the hub

    save_points(tmp_path / "state" / "points", MINE, "x_JC.txt", points)
    (tmp_path / "hub.yaml").write_text(hub_yaml, encoding="utf-8")
    (tmp_path / "mines.yaml").write_text(
        f"incoming: {tmp_path / 'ftp'}\nmines:\n  '{MINE}': {{tenant: north-coal, site: "
        "face-1301, points: {001A01: t2-return, 001A02: t1-face}}\n",
        encoding="utf-8",
    )
    code = main(
        [
            *("mine-files", "-c", str(tmp_path / "hub.yaml")),
            *("--mines", str(tmp_path / "mines.yaml")),
            *("--state-dir", str(tmp_path / "state"), "check-points"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "001A02 (甲烷 1301工作面): the hub's sensor t1-face (methane) has no rule" in out
    assert "(info) mine 140211000001 point 001A01" in out and "the mine alarms first" in out


def test_a_mines_encoding_may_be_called_gbk() -> None:
    """An operator writes what the vendor's manual says, GBK or GB2312: read as GB18030, which
    reads both; anything else is refused naming the three."""
    from pydantic import ValidationError

    from gateway.minefiles import MineFilesConfig

    def spec(encoding: str) -> str:
        mine = {"tenant": "north-coal", "site": "face-1301", "encoding": encoding}
        return (
            MineFilesConfig.model_validate(
                {"incoming": "/srv/ftp", "mines": {"140211000001": mine}}
            )
            .mines["140211000001"]
            .encoding
        )

    assert [spec(e) for e in ("GBK", "gb2312", "GB18030", "UTF8", "auto")] == [
        "gb18030", "gb18030", "gb18030", "utf-8", "auto"
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="'utf-8', 'gb18030' or 'auto'"):
        spec("big5")
