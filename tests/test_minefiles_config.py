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
