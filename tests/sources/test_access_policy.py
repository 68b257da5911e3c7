"""The policy table: per role and jurisdiction, what each may do and open; separation of duties."""
from __future__ import annotations

import pytest

from sources.access import jurisdiction as jur
from sources.access.policy import ACTIONS, PAGES, ROLES, Access, Decision
from sources.access.sessions import Principal
from views.i18n import LABELS

ACCESS = Access()


def who(role: str, code: str = "370000", name: str | None = None) -> Principal:
    return Principal(name=name or f"{role}.{code}", role=role, jurisdiction=code)


# Expected answers for the whole table, written out by hand (not derived from ACTIONS).
OFFICER_ONLY = {"alarm.acknowledge", "alarm.dispose", "alarm.close", "warning.issue",
                "warning.update", "warning.cancel", "incident.create", "incident.update",
                "incident.close", "dispatch.request", "dispatch.approve", "dispatch.reject",
                "dispatch.ship", "dispatch.receive", "stock.adjust", "expert.draw",
                "expert.redraw", "expert.rate", "expert.fee"}
EXPECTED = {
    "wall": set(),
    "officer": OFFICER_ONLY | {"export", "drill.start", "drill.control"},
    "analyst": {"console.query", "console.save", "notebook.open", "snapshot.write", "export"},
    "admin": {"console.overwrite_any", "console.pin", "snapshot.write", "export", "user.manage",
              "drill.start", "drill.control", "drill.purge",
              "feed.manage", "retention.manage", "audit.view", "audit.export", "cap.manage",
              "health.detail"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_role_may_take_exactly_its_actions(role, action):
    decision = ACCESS.can(who(role), action)
    assert bool(decision) == (action in EXPECTED[role]), (role, action, decision)
    if not decision:
        assert decision.reason_key == "access.denied.role"


def test_the_expectation_covers_every_action():
    assert set().union(*EXPECTED.values()) == set(ACTIONS)


def test_county_officer_acts_in_the_county_only():
    county = who("officer", "371302")
    assert ACCESS.can(county, "alarm.acknowledge", county="371302")
    refused = ACCESS.can(county, "alarm.acknowledge", county="371311")
    assert not refused and refused.reason_key == "access.denied.jurisdiction"
    assert refused.detail == {"jurisdiction": "371302", "target": "371311"}
    # no target = the whole province: a county may not export the province's enterprises
    assert not ACCESS.can(county, "export")
    assert ACCESS.can(county, "export", county="371302")


def test_city_officer_acts_in_its_counties_and_province_everywhere():
    city, province = who("officer", "371300"), who("officer", "370000")
    assert ACCESS.can(city, "alarm.close", county="371302")
    assert ACCESS.can(city, "alarm.close", county="371300")
    assert not ACCESS.can(city, "alarm.close", county="370102")
    for code in ("370102", "371302", "371700"):
        assert ACCESS.can(province, "alarm.close", county=code)
    assert ACCESS.can(province, "warning.issue")  # province-wide


def test_a_warning_area_must_lie_wholly_in_the_jurisdiction():
    county = who("officer", "371302")
    assert ACCESS.can(county, "warning.issue", counties=["371302"])
    refused = ACCESS.can(county, "warning.issue", counties=["371302", "371311"])
    assert not refused and refused.detail["target"] == "371311"


@pytest.mark.parametrize("target", ["", "abc", "99999", "1234567", "37130'", None])
def test_garbage_targets_are_refused_not_crashed(target):
    assert not ACCESS.can(who("officer", "371302"), "alarm.close", counties=[target])


def test_separation_of_duties_for_material_dispatch():
    li, zhao = who("officer", "370000", "li.si"), who("officer", "370000", "zhao.wu")
    same = ACCESS.can(li, "dispatch.approve", county="371302", requested_by="li.si")
    assert not same and same.reason_key == "access.denied.separation"
    assert ACCESS.can(zhao, "dispatch.approve", county="371302", requested_by="li.si")
    assert not ACCESS.can(li, "dispatch.reject", requested_by="li.si")
    assert not ACCESS.can(zhao, "dispatch.receive", shipped_by="zhao.wu")
    assert ACCESS.can(li, "dispatch.receive", shipped_by="zhao.wu")


def test_disabled_unknown_and_anonymous_are_refused():
    from sources.access.users import User

    off = User(name="x", role="officer", jurisdiction="370000", disabled=True)
    assert ACCESS.can(off, "alarm.close").reason_key == "access.denied.login"
    assert ACCESS.can(None, "alarm.close").reason_key == "access.denied.login"
    assert ACCESS.can(who("admin"), "self.destruct").reason_key == "access.denied.unknown_action"


PAGE_EXPECTED = {  # role -> pages it may open (by hand)
    "wall": {"/", "/board", "/warnings", "/risk", "/alarms", "/inventory", "/pinned",
             "/command", "/health", "/cap"},
    "officer": {"/", "/board", "/warnings", "/risk", "/alarms", "/inventory", "/pinned",
                "/command", "/drills", "/health", "/cap"},
    "analyst": {"/", "/board", "/warnings", "/risk", "/alarms", "/inventory", "/pinned",
                "/console", "/drills", "/health", "/cap"},
    "admin": {"/", "/board", "/warnings", "/risk", "/alarms", "/inventory", "/pinned",
              "/command", "/drills", "/admin", "/health", "/cap"},
}


@pytest.mark.parametrize("role", ROLES)
def test_pages_per_role(role):
    for page in PAGES:
        base = page.rstrip("/")
        for path in (page, f"{base}/ws", f"{base}/autoload.js", f"{base}/metadata",
                     f"{page}?lang=en"):
            decision = ACCESS.can_open(who(role), path)
            assert bool(decision) == (page in PAGE_EXPECTED[role]), (role, path)
    assert ACCESS.can_open(who(role), "/static/js/bokeh.min.js")
    assert ACCESS.can_open(who(role), "/components/panel/x/__css__/y.css")
    unknown = ACCESS.can_open(who(role), "/new-page")
    assert not unknown and unknown.reason_key == "access.denied.page"


def test_nobody_opens_anything_without_signing_in():
    for path in [*PAGES, "/static/x.js", "/components/x"]:
        assert ACCESS.can_open(None, path).reason_key == "access.denied.login"


def test_refusal_reasons_are_translated_in_both_languages():
    keys = {"access.denied.role", "access.denied.jurisdiction", "access.denied.separation",
            "access.denied.page", "access.denied.unknown_action", "access.denied.login"}
    for key in keys:
        zh, en = LABELS[key]
        assert zh and en
    d = Decision(False, "access.denied.jurisdiction", {"jurisdiction": "371302",
                                                       "target": "371311"})
    from views.i18n import t

    assert t(d.reason_key, "en", **d.detail) == "371311 is outside your jurisdiction 371302"


# ---------------------------------------------------------------------- jurisdictions
@pytest.mark.parametrize("code, level", [("370000", "province"), ("371300", "city"),
                                         ("371302", "county"), ("370102", "county")])
def test_levels(code, level):
    assert jur.level(code) == level


@pytest.mark.parametrize("bad", ["", "37", "3713020", "037000", "370012", "37a302", None])
def test_bad_codes(bad):
    with pytest.raises(jur.JurisdictionError):
        jur.check_code(bad)


def test_containment_by_prefix_matches_the_generated_store(tiny_db_template):
    """Every county of the demo registry lies in its city by code, and in no other city."""
    from sources.store.store import Store

    store = Store(tiny_db_template, read_only=True)
    try:
        counties = store.df("SELECT county_code, city_code FROM counties")
        cities = set(store.df("SELECT city_code FROM cities")["city_code"])
    finally:
        store.close()
    assert len(counties) > 50 and len(cities) > 10
    for row in counties.itertuples(index=False):
        assert jur.level(row.county_code) == "county"
        assert jur.level(row.city_code) == "city" and row.city_code in cities
        assert jur.contains(row.city_code, row.county_code)
        assert jur.contains("370000", row.county_code)
        assert sum(jur.contains(c, row.county_code) for c in cities) == 1
