"""The hub without a broker holding as many 督办 as it keeps: the next is neither published nor
kept, the API answers 503 saying so (not `published: false`, which means kept), the journal
says it was not sent, and the supervision is `undelivered` (`GET /api/v1/supervisions`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from test_jt809_supervise import _raised

from e2e_helpers import get_json


async def test_a_supervision_the_hub_cannot_keep_is_503(mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with _raised(mosquitto, tmp_path) as (_, api, _p, alarm, hub):
        hub.supervisions._max = 1  # (10,000 in a hub)
        mosquitto.stop()
        try:
            deadline = int((datetime.now(UTC) + timedelta(hours=1)).timestamp()) * 1000
            url = f"/api/v1/alarms/{alarm['id']}"
            first = await api.post(f"{url}/supervise", json={"deadline": deadline})
            assert first.status_code == 200, first.text
            assert first.json()["published"] is False  # kept
            second = await api.post(f"{url}/supervise", json={"deadline": deadline})
            assert second.status_code == 503, second.text
            assert "not sent" in second.json()["detail"]
            one: Any = await get_json(api, url)
            said = [e["comment"] for e in one["events"] if e["actor"] == "hub"]
            assert len(said) == 1 and said[0].startswith("督办 #") and "未发出" in said[0]
            # and the centre's list says it never reached the platform (not overdue later)
            sid = int(said[0].removeprefix("督办 #").split()[0])
            lost = await get_json(api, f"/api/v1/supervisions/{sid}")
            assert (lost["status"], lost["receipt"]) == ("undelivered", "not_sent")
            kept = await get_json(api, f"/api/v1/supervisions/{first.json()['supervision_id']}")
            assert (kept["status"], kept["receipt"]) == ("open", None)
        finally:
            mosquitto.start()
