"""GB 18218-2018 identification and grading (`telemetry.hazard`): golden numbers worked by hand,
the boundaries S = 1 and R = 10/50/100, α by people bands, the inventory's validation in the
configuration, properties (R monotone in every quantity, S >= 1 iff major), and the sites API."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, get_args

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from api.configadmin import ConfigAdmin
from api.registrydb import RegistryDB
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry import hazard
from telemetry.config import ApiKeySpec, HubConfig, InventoryItemSpec, SiteSpec
from telemetry.errors import ConfigError
from telemetry.registry import build_registry, parse_document
from telemetry.registrychecks import critical_t_notices


def item(substance: str, q: float, **kw: Any) -> hazard.Item:
    return hazard.resolve(substance, q, **kw)


# --- the tables ----------------------------------------------------------------------------------


def test_table3_toxic_gas_beta() -> None:
    assert hazard.TOXIC_GAS_BETA == {
        "一氧化碳": 2,
        "二氧化硫": 2,
        "氨": 2,
        "环氧乙烷": 2,
        "氯化氢": 3,
        "溴甲烷": 3,
        "氯": 4,
        "硫化氢": 5,
        "氟化氢": 5,
        "二氧化氮": 10,
        "氰化氢": 10,
        "光气": 20,
        "磷化氢": 20,
        "异氰酸甲酯": 20,
    }


def test_every_ghs_category_has_a_beta() -> None:
    assert set(hazard.GHS_BETA) == set(get_args(hazard.GhsCategory))
    assert hazard.GHS_BETA["J1"] == 4 and hazard.GHS_BETA["W2"] == Fraction(3, 2)


def test_substance_keys_are_unambiguous() -> None:
    keys = [
        " ".join(k.split()).casefold()
        for s in hazard.SUBSTANCES
        for k in (s.name, s.english, s.cas, *s.aliases)
    ]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("name", ["氯", "液氯", "chlorine", "  Chlorine ", "CL2", "7782-50-5"])
def test_a_substance_by_chinese_or_english_name_alias_or_cas(name: str) -> None:
    found = hazard.find_substance(name)
    assert found is not None and found.name == "氯"
    assert found.critical_t == 5 and found.beta == 4


# --- golden numbers, worked by hand --------------------------------------------------------------


def test_chlorine_3_t() -> None:
    # q/Q = 3/5 = 0.6 < 1: not a major hazard source; R = 1.2 * 4 * 0.6 = 2.88
    cl = item("氯", 3)
    assert (cl.ratio, cl.beta, cl.critical_t) == (Fraction(3, 5), 4, 5)
    a = hazard.assess([cl], people_500m=40)
    assert a.s == Fraction(3, 5) and not a.is_major
    assert a.alpha == Fraction(6, 5) and a.r == Fraction(288, 100)
    assert a.grade is None


def test_lpg_and_chlorine() -> None:
    # S = 60/50 + 3/5 = 1.2 + 0.6 = 1.8; Σβq/Q = 1.5*1.2 + 4*0.6 = 4.2; α 2 (120 people): R 8.4
    a = hazard.assess([item("LPG", 60), item("chlorine", 3)], people_500m=120)
    assert a.s == Fraction(18, 10) and a.is_major
    assert a.weighted == Fraction(42, 10)
    assert a.r == Fraction(84, 10) and a.grade == 4


def test_chlorine_50_t_by_people() -> None:
    # S = 10; Σβq/Q = 4*10 = 40; α 2 -> R 80, grade 2; α 0.5 (nobody) -> R 20, grade 3
    cl = [item("7782-50-5", 50)]
    assert hazard.assess(cl, 100).r == 80 and hazard.assess(cl, 100).grade == 2
    assert hazard.assess(cl, 0).r == 20 and hazard.assess(cl, 0).grade == 3


def test_phosgene_grade_1_at_r_100() -> None:
    # q/Q = 1.5/0.3 = 5; β 20 -> 100; α 1 (10 people) -> R exactly 100: grade 1
    a = hazard.assess([item("光气", 1.5)], people_500m=10)
    assert a.s == 5 and a.r == 100 and a.grade == 1


def test_tank_farm_of_liquids() -> None:
    # gasoline 300/200 = 1.5, methanol 250/500 = 0.5, ammonia 5/10 = 0.5: S = 2.5
    # Σβq/Q = 1*1.5 + 1*0.5 + 2*0.5 = 3; α 1.5 (60 people): R = 4.5, grade 4
    a = hazard.assess([item("汽油", 300), item("methanol", 250), item("液氨", 5)], 60)
    assert a.s == Fraction(5, 2) and a.weighted == 3 and a.r == Fraction(9, 2) and a.grade == 4


def test_unlisted_substance_by_ghs_category_and_by_beta() -> None:
    # 丙烯 (not in our table) given Q 10 t and W2: 25/10 * 1.5 = 3.75
    propene = item("丙烯", 25, critical_t=10, ghs="W2")
    assert (propene.ratio, propene.beta, propene.beta_source) == (Fraction(5, 2), 1.5, "W2")
    custom = item("X-99", 1, critical_t=4, beta=3)
    assert (custom.ratio, custom.beta, custom.critical_source) == (Fraction(1, 4), 3, "config")
    a = hazard.assess([propene, custom], 0)
    assert a.s == Fraction(11, 4) and a.weighted == Fraction(15, 4) + Fraction(3, 4)
    assert a.r == Fraction(9, 4) and a.grade == 4


def test_toxic_gas_without_a_built_in_q_takes_the_configured_one() -> None:
    h2s = item("H2S", 10, critical_t=5)
    assert (h2s.name, h2s.beta, h2s.beta_source, h2s.critical_source) == (
        "硫化氢",
        5,
        "table3",
        "config",
    )


@pytest.mark.parametrize("sub", [s for s in hazard.SUBSTANCES if s.critical_t is not None])
def test_a_critical_t_equal_to_the_tables_is_the_tables(sub: hazard.Substance) -> None:
    """A file that gives a substance's Q keeps loading, the same, once the table carries it
    (H2S's 5 t given today, say, and a release that adds H2S to the table)."""
    assert sub.critical_t is not None
    given = item(sub.name, 2, critical_t=float(sub.critical_t))
    assert given == item(sub.name, 2)
    assert (given.critical_source, given.critical_t_given) == ("table1", None)


def test_a_critical_t_that_differs_from_the_tables_is_accepted_and_the_table_used() -> None:
    """The regulation's Q is never overridden by a file's; the file's is kept to be told."""
    cl = item("chlorine", 2, critical_t=10)
    assert (cl.critical_t, cl.critical_source, cl.critical_t_given) == (5, "table1", 10)
    assert cl.ratio == Fraction(2, 5)
    spec = InventoryItemSpec.model_validate({"substance": "氯", "quantity_t": 2, "critical_t": 10})
    assert spec.resolve() == item("氯", 2, critical_t=10)


def test_listed_non_toxic_substance_may_be_given_its_category_at_site_conditions() -> None:
    # benzene above its boiling point: W5.1, β 1.5 instead of 1
    hot = item("benzene", 50, ghs="W5.1")
    assert hot.beta == Fraction(3, 2) and hot.critical_t == 50 and hot.beta_source == "W5.1"


def test_empty_inventory() -> None:
    a = hazard.assess([], 10)
    assert a.s == 0 and not a.is_major and a.r == 0 and a.grade is None


# --- boundaries ----------------------------------------------------------------------------------


def test_s_equal_to_1_is_major() -> None:
    assert hazard.assess([item("氯", 3), item("氨", 4)], 0).is_major  # 0.6 + 0.4
    assert not hazard.assess([item("氯", 3), item("氨", 3.999)], 0).is_major
    assert hazard.assess([item("hydrogen", 5)], 0).is_major


def test_s_is_exact_where_binary_floats_fall_short() -> None:
    # 350/500 + 10/50 + 50/500 = 0.7 + 0.2 + 0.1 = 1, which floats sum to 0.9999999999999999
    assert 350 / 500 + 10 / 50 + 50 / 500 < 1
    a = hazard.assess([item("甲苯", 350), item("苯", 10), item("甲醇", 50)], 0)
    assert a.s == 1 and a.is_major


@pytest.mark.parametrize(
    ("q", "grade"),
    [(9.99, 4), (10, 3), (49.99, 3), (50, 2), (99.99, 2), (100, 1), (1e6, 1)],
)
def test_grade_boundaries_of_r(q: float, grade: int) -> None:
    # Q 1 t, β 1, α 1: R = q
    a = hazard.assess([item("widget", q, critical_t=1, beta=1)], people_500m=1)
    assert a.r == Fraction(repr(q)) and a.is_major and a.grade == grade


@pytest.mark.parametrize(("r", "grade"), [(0, 4), (9, 4), (10, 3), (50, 2), (100, 1), (101, 1)])
def test_grade_for(r: int, grade: int) -> None:
    assert hazard.grade_for(Fraction(r)) == grade


@pytest.mark.parametrize(
    ("people", "alpha"),
    [
        (0, Fraction(1, 2)),
        (1, Fraction(1)),
        (29, Fraction(1)),
        (30, Fraction(6, 5)),
        (49, Fraction(6, 5)),
        (50, Fraction(3, 2)),
        (99, Fraction(3, 2)),
        (100, Fraction(2)),
        (250_000, Fraction(2)),
    ],
)
def test_alpha_by_people_within_500_m(people: int, alpha: Fraction) -> None:
    assert hazard.alpha_for(people) == alpha


def test_without_people_no_r_and_no_grade() -> None:
    a = hazard.assess([item("氯", 50)], None)
    assert a.is_major and a.alpha is None and a.r is None and a.grade is None


@pytest.mark.parametrize(
    ("quantity", "people", "declared", "differs"),
    [
        (50, 100, 2, False),  # R 80: grade 2
        (50, 100, 3, True),
        (50, 100, None, True),  # a major hazard source not declared
        (3, 100, None, False),  # S 0.6
        (3, 100, 4, True),  # declared, but S < 1
        (50, None, None, True),  # S >= 1 without people: major, grade unknown
        (50, None, 2, False),
        (3, None, 4, True),
    ],
)
def test_declared_grade_against_the_computed_one(
    quantity: float, people: int | None, declared: int | None, differs: bool
) -> None:
    assert hazard.assess([item("氯", quantity)], people).differs_from(declared) is differs


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"substance": "unobtainium", "quantity_t": 1}, "unknown substance 'unobtainium'"),
        ({"substance": "unobtainium", "quantity_t": 1, "critical_t": 5}, "exactly one of"),
        (
            {"substance": "unobtainium", "quantity_t": 1, "critical_t": 5, "beta": 1, "ghs": "W2"},
            "exactly one of",
        ),
        ({"substance": "氯", "quantity_t": -1}, "greater than or equal to 0"),
        ({"substance": "氯", "quantity_t": float("nan")}, "finite number"),
        ({"substance": "chlorine", "quantity_t": 1, "beta": 2}, "not configurable"),
        ({"substance": "氯", "quantity_t": 1, "ghs": "J1"}, "toxic gas has a fixed beta"),
        ({"substance": "H2S", "quantity_t": 1}, r"beta \(5, Table 3\) but not its critical"),
        ({"substance": "x", "quantity_t": 1, "critical_t": 0, "beta": 1}, "greater than 0"),
        ({"substance": "x", "quantity_t": 1, "critical_t": 1, "ghs": "W99"}, "Input should be"),
        ({"substance": "", "quantity_t": 1}, "at least 1 character"),
        ({"substance": "氯", "quantity_t": 1, "tonnes": 1}, "Extra inputs are not permitted"),
    ],
)
def test_inventory_item_errors(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        InventoryItemSpec.model_validate(fields)


def test_resolve_refuses_a_negative_quantity_itself() -> None:
    with pytest.raises(ValueError, match=r"'氯': quantity_t must be >= 0"):
        hazard.resolve("氯", -0.5)
    with pytest.raises(ValueError, match="people_500m must be >= 0"):
        hazard.alpha_for(-1)


def test_site_fields() -> None:
    site = SiteSpec.model_validate(
        {"id": "s", "inventory": [{"substance": "氯", "quantity_t": 3}], "people_500m": 12}
    )
    assert site.inventory is not None and site.inventory[0].resolve().ratio == Fraction(3, 5)
    assert SiteSpec(id="s").inventory is None
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SiteSpec.model_validate({"id": "s", "people_500m": -1})


def test_config_error_names_the_path_and_the_substance() -> None:
    text = """
tenants:
  - id: acme
    sites:
      - id: farm
        inventory:
          - {substance: 氯, quantity_t: 3}
          - {substance: 二甲基汞, quantity_t: 0.2}
"""
    with pytest.raises(ConfigError) as info:
        parse_document(text, HubConfig, "hub.yaml")
    message = str(info.value)
    assert message.startswith("hub.yaml: tenants.0.sites.0.inventory.1: ")
    assert "unknown substance '二甲基汞'" in message and "critical_t" in message


# --- properties ----------------------------------------------------------------------------------

_LISTED = [s.name for s in hazard.SUBSTANCES if s.critical_t is not None]
_quantity = st.decimals(min_value=0, max_value=10_000, places=3).map(float)
_inventory = st.lists(st.tuples(st.sampled_from(_LISTED), _quantity), max_size=8)
_people = st.none() | st.integers(min_value=0, max_value=10_000)


def _reference(inv: list[tuple[str, float]], people: int | None) -> tuple[bool, int | None]:
    """Plain arithmetic of the standard, with decimals and an if-chain."""
    s = Fraction(0)
    w = Fraction(0)
    for name, q in inv:
        sub = hazard.find_substance(name)
        assert sub is not None and sub.critical_t is not None
        s += Fraction(repr(q)) / sub.critical_t
        w += sub.beta * Fraction(repr(q)) / sub.critical_t
    if s < 1 or people is None:
        return s >= 1, None
    alpha = 2 if people >= 100 else 1.5 if people >= 50 else 1.2 if people >= 30 else 1
    r = Fraction(repr(alpha)) * w if people else w / 2
    return True, 1 if r >= 100 else 2 if r >= 50 else 3 if r >= 10 else 4


@settings(max_examples=300, deadline=None)
@given(_inventory, _people)
def test_agrees_with_the_reference(inv: list[tuple[str, float]], people: int | None) -> None:
    a = hazard.assess([item(n, q) for n, q in inv], people)
    assert (a.is_major, a.grade) == _reference(inv, people)
    assert a.is_major == (a.s >= 1)
    assert (a.grade is None) == (not a.is_major or people is None)


@settings(max_examples=300, deadline=None)
@given(_inventory.filter(bool), st.data(), st.integers(min_value=0, max_value=10_000))
def test_r_is_monotone_in_each_quantity(
    inv: list[tuple[str, float]], data: st.DataObject, people: int
) -> None:
    k = data.draw(st.integers(min_value=0, max_value=len(inv) - 1))
    more = data.draw(_quantity)
    bigger = list(inv)
    bigger[k] = (inv[k][0], inv[k][1] + more)
    a = hazard.assess([item(n, q) for n, q in inv], people)
    b = hazard.assess([item(n, q) for n, q in bigger], people)
    assert a.r is not None and b.r is not None
    assert b.s >= a.s and b.r >= a.r
    if a.is_major:  # more of anything never lowers the grade (1 is the highest)
        assert b.is_major and b.grade is not None and a.grade is not None and b.grade <= a.grade


# --- the sites API -------------------------------------------------------------------------------

SITES_YAML = """
tenants:
  - id: acme-chem
    sites:
      - id: tank-farm
        name: 液氯罐区
        kind: chemical
        major_hazard_grade: 2
        people_500m: 120
        inventory:
          - {substance: 氯, quantity_t: 50, note: two 25 t tanks}
      - id: lpg-yard
        kind: chemical
        major_hazard_grade: 2
        people_500m: 10
        inventory:
          - {substance: LPG, quantity_t: 60}
          - {substance: 丙烯, quantity_t: 20, critical_t: 10, ghs: W2}
      - id: office
  - id: north-coal
    sites:
      - {id: face-1301, kind: mine}
"""

_API_KEYS = {
    "admin": ApiKeySpec(name="admin", sha256=hash_key("k-admin"), role="admin"),
    "chem": ApiKeySpec(
        name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("acme-chem",)
    ),
    "coal": ApiKeySpec(
        name="coal", sha256=hash_key("k-coal"), role="viewer", tenants=("north-coal",)
    ),
}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{who}"}


@pytest.fixture
async def api(tmp_path: Any) -> Any:
    reg = build_registry(parse_document(SITES_YAML, HubConfig, "sites.yaml"))
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing(_API_KEYS.values())))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield client
    await store.close()
    db.close()


@pytest.mark.parametrize("path", ["/api/v1/sites", "/api/v1/sites/acme-chem/tank-farm"])
async def test_sites_need_a_key(api: httpx.AsyncClient, path: str) -> None:
    assert (await api.get(path)).status_code == 401
    assert (await api.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_site_with_its_computed_grade(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/sites/acme-chem/tank-farm", headers=auth("chem"))
    assert r.status_code == 200
    assert r.json() == {
        "tenant": "acme-chem",
        "id": "tank-farm",
        "kind": "chemical",
        "name": "液氯罐区",
        "declared_grade": 2,
        "hazard": {
            "s": 10.0,
            "is_major": True,
            "people_500m": 120,
            "alpha": 2.0,
            "r": 80.0,
            "grade": 2,
            "items": [
                {
                    "substance": "氯",
                    "name": "氯",
                    "cas": "7782-50-5",
                    "quantity_t": 50.0,
                    "critical_t": 5.0,
                    "q_over_q": 10.0,
                    "beta": 4.0,
                    "critical_source": "table1",
                    "beta_source": "table3",
                    "critical_t_given": None,
                }
            ],
        },
        "mismatch": False,
    }


async def test_a_declared_grade_that_differs_is_flagged(api: httpx.AsyncClient) -> None:
    # S = 1.2 + 2 = 3.2; Σβq/Q = 1.5*1.2 + 1.5*2 = 4.8; α 1 (10 people): R 4.8, grade 4, not 2
    site = (await api.get("/api/v1/sites/acme-chem/lpg-yard", headers=auth("admin"))).json()
    hz = site["hazard"]
    assert hz["s"] == pytest.approx(3.2) and hz["r"] == pytest.approx(4.8)
    assert (hz["alpha"], hz["grade"], site["mismatch"]) == (1.0, 4, True)
    assert [i["q_over_q"] for i in hz["items"]] == [1.2, 2.0]
    assert hz["items"][1]["beta_source"] == "W2" and hz["items"][1]["critical_source"] == "config"
    only = (await api.get("/api/v1/sites?mismatch=true", headers=auth("admin"))).json()
    assert [s["id"] for s in only] == ["lpg-yard"]


async def test_site_without_inventory(api: httpx.AsyncClient) -> None:
    site = (await api.get("/api/v1/sites/acme-chem/office", headers=auth("chem"))).json()
    assert (site["hazard"], site["declared_grade"], site["mismatch"]) == (None, None, False)


async def test_sites_are_tenant_scoped(api: httpx.AsyncClient) -> None:
    chem = (await api.get("/api/v1/sites", headers=auth("chem"))).json()
    assert [(s["tenant"], s["id"]) for s in chem] == [
        ("acme-chem", "tank-farm"),
        ("acme-chem", "lpg-yard"),
        ("acme-chem", "office"),
    ]
    coal = (await api.get("/api/v1/sites", headers=auth("coal"))).json()
    assert [s["id"] for s in coal] == ["face-1301"]
    everyone = (await api.get("/api/v1/sites", headers=auth("admin"))).json()
    assert len(everyone) == 4
    narrowed = await api.get("/api/v1/sites", params={"tenant": "north-coal"}, headers=auth("chem"))
    assert narrowed.status_code == 404  # as a tenant that does not exist
    # another tenant's site answers 404, exactly like a site that does not exist
    theirs = await api.get("/api/v1/sites/acme-chem/tank-farm", headers=auth("coal"))
    missing = await api.get("/api/v1/sites/north-coal/no-such-site", headers=auth("coal"))
    assert theirs.status_code == missing.status_code == 404


GIVEN_YAML = """
tenants:
  - id: acme-chem
    sites:
      - id: tank-farm
        major_hazard_grade: 2
        people_500m: 120
        inventory:
          - {substance: 液氯, quantity_t: 50, critical_t: 10}
          - {substance: 甲醇, quantity_t: 100, critical_t: 500}
          - {substance: H2S, quantity_t: 2, critical_t: 5}
"""


async def test_a_critical_t_that_differs_is_said_at_start_and_in_the_api(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The file's chlorine Q of 10 t is not the table's 5 t: the hub starts, grades the site by
    5 t, logs the difference at start, and shows it on the item; an equal one (methanol) and a
    toxic gas's Q the table lacks (H2S) are not told."""
    reg = build_registry(parse_document(GIVEN_YAML, HubConfig, "hub.yaml"))
    [said] = critical_t_notices(reg.config)
    assert said.startswith("tenants.0.sites.0.inventory.0 (acme-chem/tank-farm, 液氯): ")
    assert "critical_t 10 t differs from the critical quantity of 氯, 5 t" in said
    assert "the table's is used" in said
    rdb = RegistryDB(tmp_path / "registry.db")

    async def switch(new: Any, rev: int) -> None:
        return None

    caplog.set_level("WARNING", logger="api.configadmin")
    ConfigAdmin(rdb, build_registry, switch).startup(reg, "hub.yaml")
    rdb.close()
    assert [r.getMessage() for r in caplog.records if "critical_t" in r.getMessage()] == [said]
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing(_API_KEYS.values())))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        site = (await client.get("/api/v1/sites/acme-chem/tank-farm", headers=auth("chem"))).json()
    await store.close()
    db.close()
    items = site["hazard"]["items"]
    assert [(i["critical_t"], i["critical_source"], i["critical_t_given"]) for i in items] == [
        (5.0, "table1", 10.0),
        (500.0, "table1", None),
        (5.0, "config", None),
    ]
    # S = 50/5 + 100/500 + 2/5 = 10.6, by the table's 5 t
    assert site["hazard"]["s"] == pytest.approx(10.6)
