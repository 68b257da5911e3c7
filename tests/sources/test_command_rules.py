"""The pure rules of incident command: grades, plan files, report deadlines (fixed clock)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sources.command.catalog import SUBTYPES
from sources.command.deadlines import ReportRules, next_due, report_timers
from sources.command.grading import compute_grade, production_safety_grade
from sources.command.plans import PLANS_DIR, PlanError, load_plans, parse_plan, plan_for

# ---------------------------------------------------------------------- grade rule
# (deaths, seriously injured, loss in 10k yuan) -> grade; every band edge of the State
# Council rule, on each criterion alone ("以上" includes the number, "以下" excludes it)
EDGES = [
    ((0, 0, 0), "IV"), ((2, 0, 0), "IV"), ((3, 0, 0), "III"), ((9, 0, 0), "III"),
    ((10, 0, 0), "II"), ((29, 0, 0), "II"), ((30, 0, 0), "I"), ((300, 0, 0), "I"),
    ((0, 9, 0), "IV"), ((0, 10, 0), "III"), ((0, 49, 0), "III"), ((0, 50, 0), "II"),
    ((0, 99, 0), "II"), ((0, 100, 0), "I"),
    ((0, 0, 999.99), "IV"), ((0, 0, 1000), "III"), ((0, 0, 4999.99), "III"),
    ((0, 0, 5000), "II"), ((0, 0, 9999.99), "II"), ((0, 0, 10_000), "I"),
    # the highest band reached by any criterion decides
    ((2, 99, 1000), "II"), ((29, 10, 10_000), "I"), ((3, 50, 0), "II"),
]


@pytest.mark.parametrize(("figures", "grade"), EDGES, ids=[str(e[0]) for e in EDGES])
def test_production_safety_grade_at_every_boundary(figures, grade):
    result = production_safety_grade(*figures)
    assert result.grade == grade
    assert result.rule and result.rule_key.startswith("command.rule.")


def test_the_rule_names_the_criterion_that_fired():
    r = production_safety_grade(30, 0, 0)
    assert (r.rule_key, r.fmt["n"], r.fmt["min"]) == ("command.rule.deaths", 30, 30)
    r = production_safety_grade(0, 100, 0)
    assert (r.rule_key, r.fmt["min"]) == ("command.rule.injured", 100)
    r = production_safety_grade(0, 0, 10_000)
    assert (r.rule_key, r.fmt["min"]) == ("command.rule.loss", 10_000)
    assert production_safety_grade(2, 9, 999).rule_key == "command.rule.below"


def test_only_accidents_have_a_computed_grade():
    assert compute_grade("hazchem_leak", 30, 0, 0).grade == "I"
    for key, st in SUBTYPES.items():
        assert compute_grade(key, 30, 0, 0).computed == (st.category == "accident"), key


def test_catalogue_tags_and_team_kinds_exist_in_the_registry(store):
    tags = set(store.arrow("SELECT tag FROM expert_tags").column(0).to_pylist())
    kinds = set(store.arrow("SELECT DISTINCT kind FROM rescue_teams").column(0).to_pylist())
    cats = set(store.arrow("SELECT DISTINCT category FROM material_kinds").column(0).to_pylist())
    for st in SUBTYPES.values():
        assert set(st.expert_tags) <= tags, st.key
        assert set(st.teams) <= kinds | {"mine", "forest_fire", "power"}, st.key
        assert set(st.materials) <= cats, st.key


# ---------------------------------------------------------------------- plan files
def test_the_shipped_plans_load_and_cover_every_subtype():
    plans = load_plans(PLANS_DIR)
    assert {"hazchem", "fire", "flood", "general"} <= set(plans)
    for key in SUBTYPES:
        plan = plan_for(plans, key)
        assert plan is not None, key
        for level in ("I", "II", "III", "IV"):
            assert plan.items_for(level), (key, level)
    hz = plans["hazchem"]
    # a higher level opens at least the measures of a lower one
    assert len(hz.items_for("I")) > len(hz.items_for("III")) > len(hz.items_for("IV")) > 0
    assert plan_for(plans, "hazchem_leak").id == "hazchem"
    assert plan_for(plans, "traffic_accident").id == "general"


GOOD = """
id = "t"
title = "测试预案"
subtypes = ["fire"]
[[items]]
levels = ["I", "II", "III", "IV"]
measure = "核实情况"
unit = "值班室"
within_min = 15
"""

BROKEN = [
    ("id = \"t\"\ntitle = ", "not valid TOML"),
    (GOOD.replace('id = "t"', 'id = "bad id!"'), "'id' must be"),
    (GOOD.replace('"fire"', '"volcano"'), "unknown subtype(s) volcano"),
    (GOOD.replace('["I", "II", "III", "IV"]', '["I", "II", "III", "V"]'),
     "item 1: unknown level(s) 'V'"),
    (GOOD.replace('["I", "II", "III", "IV"]', '["I", "II"]'),
     "no measure for response level(s) III, IV"),
    (GOOD.replace('measure = "核实情况"', 'measure = ""'), "item 1: 'measure' must be"),
    (GOOD.replace("within_min = 15", "within_min = -5"), "'within_min' must be"),
    (GOOD.replace("within_min = 15", "deadline = 15"), "item 1: unknown key(s) deadline"),
    (GOOD.replace('subtypes = ["fire"]', ""), "say what the plan covers"),
    (GOOD.split("[[items]]")[0], "at least one [[items]]"),
    (GOOD.replace('title = "测试预案"', 'titel = "x"'), "unknown key(s) titel"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_a_broken_plan_file_is_refused_with_a_clear_message(text, message):
    with pytest.raises(PlanError) as info:
        parse_plan(text, "mine.toml")
    assert "mine.toml" in str(info.value) and message in str(info.value)


def test_a_broken_file_in_the_folder_stops_loading_it(tmp_path):
    (tmp_path / "a.toml").write_text(GOOD, encoding="utf-8")
    assert set(load_plans(tmp_path)) == {"t"}
    (tmp_path / "b.toml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(PlanError, match="b.toml: id 't' is also used by a.toml"):
        load_plans(tmp_path)
    (tmp_path / "b.toml").write_text(GOOD.replace('id = "t"', 'id = "u"'), encoding="utf-8")
    with pytest.raises(PlanError, match="subtype fire is also covered by a.toml"):
        load_plans(tmp_path)
    with pytest.raises(PlanError, match="no plan directory"):
        load_plans(tmp_path / "missing")


# ---------------------------------------------------------------------- report timers
T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def version(at, change="intake", grade="III", status="open", closed_at=None, learned=T0):
    return {"acted_at": at, "change": change, "grade": grade, "status": status,
            "learned_at": learned, "closed_at": closed_at}


def report(rid, kind, at):
    return {"report_id": rid, "kind": kind, "submitted_at": at}


def states(timers):
    return [(t.kind, t.n, t.state) for t in timers]


def test_first_report_due_within_an_hour():
    v = [version(T0 + 5 * M)]
    assert states(report_timers(v, [], T0 + 59 * M)) == [("first", 1, "pending")]
    t = report_timers(v, [], T0 + 60 * M)[0]
    assert t.due_at == T0 + 60 * M and t.state == "pending"  # due at the minute, not past it
    assert states(report_timers(v, [], T0 + 61 * M)) == [("first", 1, "overdue")]
    on_time = report_timers(v, [report(1, "first", T0 + 60 * M)], T0 + 70 * M)[0]
    late = report_timers(v, [report(1, "first", T0 + 61 * M)], T0 + 70 * M)[0]
    assert (on_time.state, late.state, late.report_id) == ("done", "late", 1)


def test_major_incidents_owe_a_telephone_notice_in_30_minutes():
    major = [version(T0 + 2 * M, grade="II")]
    timers = report_timers(major, [], T0 + 31 * M)
    assert states(timers)[0] == ("phone", 1, "overdue") and timers[0].due_at == T0 + 30 * M
    done = report_timers(major, [report(1, "phone", T0 + 20 * M)], T0 + 31 * M)
    assert states(done)[0] == ("phone", 1, "done")
    assert states(report_timers([version(T0)], [], T0))[0][0] == "first"  # III: no phone
    # upgraded later: 30 minutes from the upgrade
    up = [version(T0), version(T0 + 90 * M, "grade", grade="I")]
    assert report_timers(up, [], T0 + 100 * M)[0].due_at == T0 + 120 * M


def test_followups_follow_the_cadence_and_the_situation():
    rules = ReportRules(cadence_min=120, change_min=60)
    v = [version(T0)]
    first = [report(1, "first", T0 + 30 * M)]
    t = report_timers(v, first, T0 + 40 * M, rules)
    assert states(t) == [("first", 1, "done"), ("followup", 1, "pending")]
    assert t[1].due_at == T0 + 150 * M
    # a correction after the first report makes the follow-up due an hour after it
    v2 = [*v, version(T0 + 50 * M, "correct")]
    assert report_timers(v2, first, T0 + 60 * M, rules)[1].due_at == T0 + 110 * M
    assert report_timers(v2, first, T0 + 111 * M, rules)[1].state == "overdue"
    # filed: the next one counts from it
    filed = [*first, report(2, "followup", T0 + 100 * M)]
    t = report_timers(v2, filed, T0 + 101 * M, rules)
    assert states(t)[1:] == [("followup", 1, "done"), ("followup", 2, "pending")]
    assert t[2].due_at == T0 + 220 * M
    assert next_due(t).kind == "followup" and next_due(t).n == 2


def test_closure_owes_the_final_report_and_no_new_followups():
    rules = ReportRules(cadence_min=120, final_h=24)
    closed = T0 + 100 * M
    v = [version(T0), version(closed, "close", status="closed", closed_at=closed)]
    first = [report(1, "first", T0 + 30 * M)]
    t = report_timers(v, first, closed + M, rules)
    assert states(t) == [("first", 1, "done"), ("final", 1, "pending")]
    assert t[-1].due_at == closed + timedelta(hours=24)
    assert report_timers(v, first, closed + timedelta(hours=25), rules)[-1].state == "overdue"
    # a follow-up that fell due before closure and was never filed stays overdue
    v_late = [version(T0), version(T0 + 200 * M, "close", status="closed",
                                   closed_at=T0 + 200 * M)]
    t = report_timers(v_late, first, T0 + 201 * M, rules)
    assert ("followup", 1, "overdue") in states(t)
    done = [*first, report(3, "final", T0 + 300 * M)]
    assert report_timers(v_late, done, T0 + 400 * M, rules)[-1].state == "done"
    assert next_due(report_timers(v, [*first, report(3, "final", closed + M)],
                                  closed + 2 * M, rules)) is None
