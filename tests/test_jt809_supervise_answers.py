"""Which platform answer (0x1401) the hub takes for a centre's 督办: only one naming a supervision
recorded as such (`alarm_supervisions`), of the answer's tenant, with the plate the ticket went
with, from the platform the gateway's receipt says it was sent to. An answer of another platform
of the tenant, an answer of another plate, one naming the journal event of an answer, or of an
enterprise's comment that reads like a supervision (督办 (紧急, 截止 ...)) is `unknown`: counted,
never journaled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from jt809_helpers import PLATFORMS, LowerPlatform, config
from test_jt809_supervise import ENTERPRISE, _raised, _ticket

from telemetry.jt809 import SuperviseAnswer, WarnMsg

from e2e_helpers import eventually, get_json

ACTOR = "acme-gps (JT/T 809)"


def _gw_config() -> Any:
    """The platforms, far-away (chem-logistics too) reachable from the test's address."""
    return config(platforms=[{k: v for k, v in p.items() if k != "allow_from"}
                             for p in PLATFORMS["platforms"]])  # fmt: skip


async def _answer(p: LowerPlatform, plate: str, sid: int, result: int) -> None:
    await p.send(0x1400, WarnMsg(plate, 2, 0x1401, SuperviseAnswer(sid, result).encode()).encode())


async def _unknown(api: httpx.AsyncClient, n: int) -> None:
    async def counted() -> Any:
        r = await api.get("/metrics")
        return f'hazardhub_supervision_answers_total{{outcome="unknown"}} {n}' in r.text

    await eventually(counted, 20, f"{n} unknown answers counted")


async def _journaled(api: httpx.AsyncClient, url: str, n: int) -> list[str] | None:
    one = await get_json(api, url)
    said = [str(e["comment"]) for e in one["events"] if e["actor"] == ACTOR]
    return said if len(said) == n else None


async def test_an_answer_must_match_a_recorded_supervision(mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with _raised(mosquitto, tmp_path, _gw_config()) as (gw, api, p, alarm, _):
        deadline = int((datetime.now(UTC) + timedelta(hours=2)).timestamp()) * 1000
        url = f"/api/v1/alarms/{alarm['id']}"
        r = await api.post(f"{url}/supervise", json={"deadline": deadline, "level": "urgent"})
        assert r.status_code == 200, r.text
        sid = r.json()["supervision_id"]
        await _ticket(p)

        async def receipt() -> Any:  # the gateway's: sent, to which platform, on which link
            one = await get_json(api, url)
            return [e["comment"] for e in one["events"] if e["actor"] == "jt809 (JT/T 809 gateway)"]

        assert await eventually(receipt, 20, "the receipt") == [
            f"督办 #{sid} 已发往 acme-gps (main link)"
        ]
        far = LowerPlatform(44000001)  # the tenant's other platform: never sent the ticket
        await far.connect(*gw.server.address)
        assert (await far.login(9001, b"pw")) is not None
        await _answer(far, "苏AD1234", sid, 1)
        await _unknown(api, 1)
        await far.close()
        await _answer(p, "苏AX9999", sid, 1)  # another vehicle's plate
        await _unknown(api, 2)
        await _answer(p, "苏AD1234", sid, 1)  # the ticket's

        async def answered() -> Any:
            one = await get_json(api, url)
            return [e for e in one["events"] if e["actor"] == ACTOR]

        said = await eventually(answered, 20, "the answer on the journal")
        assert [e["comment"] for e in said] == [f"督办 #{sid} 应答: 1 已处理完毕"]

        await _answer(p, "苏AD1234", said[0]["id"], 2)  # the answer's own journal event
        await _unknown(api, 3)
        async with httpx.AsyncClient(
            base_url=str(api.base_url), headers={"Authorization": f"Bearer {ENTERPRISE}"}
        ) as ent:
            c = await ent.post(
                f"{url}/comment", json={"note": "督办 (紧急, 截止 2030-01-01 12:00)"}
            )
            assert c.status_code == 200, c.text
        one = await get_json(api, url)
        fake = [e for e in one["events"] if e["actor"] == "acme"][-1]
        await _answer(p, "苏AD1234", fake["id"], 1)  # an enterprise's comment
        await _unknown(api, 4)
        await asyncio.sleep(0.5)
        one = await get_json(api, url)
        assert [e["comment"] for e in one["events"] if e["actor"] == ACTOR] == [said[0]["comment"]]
        # an answer without a plate (a 2019 platform's): taken from the platform sent to only
        await _answer(p, "", sid, 0)
        said = await eventually(lambda: _journaled(api, url, 2), 20, "the answer without a plate")
        assert said[-1] == f"督办 #{sid} 应答: 0 处理中"
