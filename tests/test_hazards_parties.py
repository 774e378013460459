"""Whose party a key is on the hidden-danger ledger: the centre's steps (grade, deadline, accept,
reject, close, listing for supervision) are the monitoring centre's own, an admin or operator key
of every tenant (`api.context.is_centre`, as for an alarm's review and a bypass approval); an
admin or operator key limited to some tenants is the enterprise's party (it once graded, accepted
and closed its own enterprise's items, audited as the centre)."""

from __future__ import annotations

from test_hazards import REPORT, T0, Hub, ok
from test_hazards_supervise import TICKET, hub, supervise

from alerts.hazardflow import DAY_MS

__all__ = ["hub"]


async def test_a_key_limited_to_one_tenant_takes_the_enterprises_steps_not_the_centres(
    hub: Hub,
) -> None:
    hid = ok(await hub.report(REPORT, "coal-op"), 201)["id"]
    # its report is the enterprise's self-check, not the centre's inspection
    made = ok(await hub.get(f"hazards/{hid}", "coal-op"))
    assert made["source"] == "self_check"
    assert made["events"][0]["party"] == "enterprise"
    assert made["steps"] == ["plan", "comment"]
    for who in ("coal-op", "coal-admin"):
        r = await hub.step(hid, "grade", who, {"grade": "general", "deadline": T0 + DAY_MS})
        assert r.status_code == 403 and "of every tenant" in r.json()["detail"], r.text
    ok(await hub.step(hid, "grade", "op", {"grade": "major", "deadline": T0 + 30 * DAY_MS}))
    r = await supervise(hub, hid, "coal-op", TICKET)
    assert r.status_code == 403 and "of every tenant" in r.json()["detail"], r.text
    # the enterprise's steps are its own
    body = {"responsible_person": "张工", "measures": "换双电源", "production_stop": "partial"}
    ok(await hub.step(hid, "plan", "coal-admin", body))
    r = await hub.step(hid, "plan", "op", {"measures": "x"})
    assert r.status_code == 403  # (the centre's key plans nothing)
    ok(await hub.step(hid, "grade", "op", {"grade": "general"}))
    ok(await hub.step(hid, "start", "coal-op"))
    done = ok(await hub.step(hid, "request-review", "coal-op", {"comment": "done"}))
    assert done["status"] == "review_requested"
    for step in ("accept", "reject"):
        r = await hub.step(hid, step, "coal-op", {"comment": "ok"})
        assert r.status_code == 403, r.text
    ok(await hub.step(hid, "accept", "op", {"comment": "ok"}))
    r = await hub.step(hid, "close", "coal-admin", {"comment": "销号"})
    assert r.status_code == 403, r.text
    closed = ok(await hub.step(hid, "close", "admin", {"comment": "销号"}))
    assert [(e["action"], e["actor"], e["party"]) for e in closed["events"]] == [
        ("report", "coal-op", "enterprise"),
        ("grade", "op", "centre"),
        ("plan", "coal-admin", "enterprise"),
        ("grade", "op", "centre"),
        ("start", "coal-op", "enterprise"),
        ("request-review", "coal-op", "enterprise"),
        ("accept", "op", "centre"),
        ("close", "admin", "centre"),
    ]
