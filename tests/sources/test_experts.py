"""The expert inventory: search, recommendation, the audited draw, ratings and fees."""
from __future__ import annotations

import io
import json
import random
from datetime import date, timedelta

import pandas as pd
import pytest

from sources.inventory.common import InventoryError, utc_now
from sources.inventory.experts import ExpertSource

from .inventory_fixtures import build_inventory_store

MINE = ("experts", "expert_tasks", "expert_draws", "expert_draw_members", "expert_ratings",
        "expert_fees")


@pytest.fixture
def inv_store(tmp_path):
    s = build_inventory_store(tmp_path / "inventory.duckdb")
    yield s
    s.close()


@pytest.fixture
def src(inv_store):
    return ExpertSource(store=inv_store)


def snapshot(store) -> dict[str, str]:
    return {t: store.df(f'SELECT * FROM "{t}"').astype(str).sort_values(
        by=list(store.df(f'SELECT * FROM "{t}" LIMIT 0').columns)).to_csv() for t in MINE}


# ---------------------------------------------------------------------- search
def test_search_filters_and_facets(src):
    everyone = src.search()
    assert len(everyone) == 30
    hazchem = src.search(tags=["危化品"])
    assert set(hazchem.expert_id) == set(range(1, 13))
    both = src.search(tags=["危化品", "综合"])
    assert set(both.expert_id) == {3, 6, 9, 12}
    assert set(src.search(name="专家1").expert_id) == set(range(10, 20))
    assert set(src.search(type="natural", county="370103").expert_id) == {
        i for i in range(1, 31) if i % 4 == 1}
    assert not src.search(available=True).expert_id.isin([10, 20, 30]).any()
    assert set(src.search(name="应急研究院0").expert_id) == {5, 10, 15, 20, 25, 30}
    facets = src.facets(hazchem)
    assert facets["type"]["count"].sum() == len(hazchem)
    assert dict(zip(facets["tag"]["tag"], facets["tag"]["count"], strict=True))["危化品"] == 12
    assert facets["available"].set_index("available")["count"][False] == 1  # expert 10


def test_expert_card(src):
    card = src.expert_card(4)
    assert card["name"] == "专家04" and card["tags"] == ["危化品", "矿山"]
    assert card["county"] == "历下区" and card["ratings"] == 0
    with pytest.raises(InventoryError, match="unknown expert"):
        src.expert_card(999)


# ---------------------------------------------------------------------- recommendation
def test_recommend_scores_and_exclusions(src):
    rec = src.recommend(["危化品", "综合"], county="370102", enterprise_id=1)
    assert not rec.expert_id.isin([1, 2, 3, 10]).any()  # tied to enterprise 1, or unavailable
    assert rec.score.is_monotonic_decreasing
    w = src.weights
    expected = (w["tags"] * rec.tag_score + w["distance"] * rec.distance_score
                + w["rating"] * rec.rating_score + w["workload"] * rec.workload_score)
    assert (expected - rec.score).abs().max() < 1e-12
    both = rec[rec.expert_id.isin([6, 9, 12])]
    assert (both.tag_score == 1.0).all() and (rec[~rec.expert_id.isin([6, 9, 12])].tag_score
                                               == 0.5).all()
    # same tags and rating, the nearer expert scores higher on distance
    near = rec.set_index("expert_id").distance_km
    assert near[4] < near[5]
    no_place = src.recommend(["危化品"])
    assert (no_place.distance_score == 0.5).all() and no_place.distance_km.isna().all()


def test_recommend_counts_recent_workload(src):
    before = src.recommend(["防汛"]).set_index("expert_id")
    drawn = src.draw(n=3, title="巡查", tags=["防汛"], seed=1)["result"]
    after = src.recommend(["防汛"]).set_index("expert_id")
    for eid in drawn:
        assert before.workload[eid] == 0 and after.workload[eid] == 1
        assert after.workload_score[eid] == 0.5


@pytest.mark.parametrize("tags, message", [([], "at least one tag"), (["无此标签"], "unknown tag")])
def test_recommend_bad_tags(src, tags, message):
    with pytest.raises(InventoryError, match=message):
        src.recommend(tags)


# ---------------------------------------------------------------------- draw
def test_draw_excludes_enterprise_and_is_audited(src, inv_store):
    r = src.draw(n=4, title="齐鲁化工泄漏", tags=["危化品"], enterprise_id=1, seed=42)
    # 1 and 2 work for enterprise 1, 3 has its name as employer, 10 is unavailable
    assert r["pool_size"] == 8
    assert not set(r["result"]) & {1, 2, 3, 10}
    assert len(set(r["result"])) == 4
    log = src.draws(r["task_id"]).iloc[0]
    assert log.drawn_by == "anonymous" and log.pool_size == 8 and log.seed == 42
    assert list(log.result) == r["result"]
    criteria = json.loads(log.criteria)
    assert criteria["enterprise_id"] == 1 and criteria["tags"] == ["危化品"]
    assert list(log.pool) == [4, 5, 6, 7, 8, 9, 11, 12]
    # reproducible: replaying the seed on the recorded pool gives the same experts
    assert src.replay(r["draw_id"]) == r["result"]
    assert random.Random(42).sample([4, 5, 6, 7, 8, 9, 11, 12], 4) == r["result"]
    members = src.members(r["task_id"])
    assert set(members.expert_id) == set(r["result"]) and (members.status == "drawn").all()


def test_draw_excludes_recent_draws(src):
    now = utc_now()
    first = src.draw(n=5, title="a", tags=["危化品"], seed=1, now=now, actor="王")
    second = src.draw(n=3, title="b", tags=["危化品"], seed=1, exclude_days=30,
                      now=now + timedelta(days=10))
    assert second["pool_size"] == 11 - 5
    assert not set(first["result"]) & set(second["result"])
    # after the window the first five are back in the pool
    third = src.draw(n=1, title="c", tags=["危化品"], exclude_days=30,
                     now=now + timedelta(days=35))
    assert third["pool_size"] == 11 - 3


def test_draw_asking_too_many_changes_nothing(src, inv_store):
    before = snapshot(inv_store)
    with pytest.raises(InventoryError, match="only 8 experts qualify") as err:
        src.draw(n=9, title="x", tags=["危化品"], enterprise_id=1)
    assert err.value.key == "inventory.error.pool_too_small"
    assert snapshot(inv_store) == before


@pytest.mark.parametrize("kwargs, key", [
    ({"n": 0}, "bad_n"), ({"n": 2.5}, "bad_n"), ({"n": True}, "bad_n"), ({"n": -1}, "bad_n"),
    ({"title": " "}, "no_title"), ({"enterprise_id": 99}, "unknown_enterprise"),
    ({"type": "space"}, "unknown_type"), ({"tags": ["无此标签"]}, "unknown_tag"),
    ({"exclude_days": -3}, "bad_days"),
])
def test_draw_bad_input_changes_nothing(src, inv_store, kwargs, key):
    before = snapshot(inv_store)
    args = {"n": 2, "title": "t", "tags": ["危化品"], **kwargs}
    with pytest.raises(InventoryError) as err:
        src.draw(**args)
    assert err.value.key == f"inventory.error.{key}"
    assert snapshot(inv_store) == before


def test_redraw_replaces_a_declining_expert(src):
    r = src.draw(n=3, title="t", tags=["危化品"], enterprise_id=1, seed=7)
    out = r["result"][0]
    new = src.redraw(r["task_id"], out, actor="李", reason="出差")
    assert len(new["result"]) == 1
    assert new["result"][0] not in {1, 2, 3, 10, *r["result"]}
    assert new["pool_size"] == 8 - 3
    members = src.members(r["task_id"]).set_index("expert_id")
    assert members.status[out] == "declined" and members.note[out] == "出差"
    assert members.status[new["result"][0]] == "drawn"
    log = src.draws(r["task_id"])
    redraw = log[log.draw_id == new["draw_id"]].iloc[0]
    assert redraw.parent_draw_id == r["draw_id"] and redraw.replaces_expert_id == out
    assert redraw.drawn_by == "李"
    assert src.replay(new["draw_id"]) == new["result"]


def test_redraw_without_candidates_changes_nothing(src, inv_store):
    r = src.draw(n=8, title="t", tags=["危化品"], enterprise_id=1)
    before = snapshot(inv_store)
    with pytest.raises(InventoryError, match="only 0 experts qualify"):
        src.redraw(r["task_id"], r["result"][0])
    assert snapshot(inv_store) == before
    with pytest.raises(InventoryError, match="not on task"):
        src.redraw(r["task_id"], 1)


# ---------------------------------------------------------------------- rating and fees
def test_rating_updates_the_running_mean(src, inv_store):
    r = src.draw(n=2, title="t", tags=["防汛"], seed=3)
    eid = r["result"][0]
    old = inv_store.scalar("SELECT rating FROM experts WHERE expert_id = ?", [eid])
    new = src.rate(r["task_id"], eid, professionalism=5, conduct=4, timeliness=3, actor="张")
    assert new == pytest.approx((old * 4 + 4.0) / 5)
    assert inv_store.scalar("SELECT rating FROM experts WHERE expert_id = ?", [eid]) == new
    before = snapshot(inv_store)
    with pytest.raises(InventoryError, match="already rated"):
        src.rate(r["task_id"], eid, professionalism=5, conduct=5, timeliness=5)
    with pytest.raises(InventoryError, match="from 1 to 5"):
        src.rate(r["task_id"], r["result"][1], professionalism=6, conduct=5, timeliness=5)
    with pytest.raises(InventoryError, match="not on task"):
        src.rate(r["task_id"], 1, professionalism=3, conduct=3, timeliness=3)
    assert snapshot(inv_store) == before


def test_fee_statement_and_exports(src, inv_store):
    r = src.draw(n=2, title="评估", tags=["防汛"], seed=3)
    a, b = r["result"]
    src.record_fee(r["task_id"], a, days=2, daily_rate=800, travel=150,
                   work_date=date(2026, 3, 1))
    src.record_fee(r["task_id"], b, days=1, daily_rate=600, work_date=date(2026, 4, 2))
    march = src.fee_statement(date(2026, 3, 1), date(2026, 3, 31))
    assert list(march.expert_id) == [a] and march.amount.iloc[0] == 1750
    both = src.fee_statement(date(2026, 1, 1), date(2026, 12, 31))
    assert both.amount.sum() == 2350
    assert list(src.fee_statement(date(2026, 1, 1), date(2026, 12, 31), b).expert_id) == [b]
    csv = src.fee_export(date(2026, 1, 1), date(2026, 12, 31)).decode("utf-8-sig")
    assert "评估" in csv and "1750.0" in csv
    xlsx = pd.read_excel(io.BytesIO(src.fee_export(date(2026, 1, 1), date(2026, 12, 31),
                                                   fmt="xlsx")), sheet_name=None)
    assert xlsx["totals"].amount.sum() == 2350
    before = snapshot(inv_store)
    for bad in ({"days": 0}, {"days": -1}, {"daily_rate": -5}, {"days": float("nan")}):
        with pytest.raises(InventoryError):
            src.record_fee(r["task_id"], a, **{"days": 1, "daily_rate": 500, **bad})
    assert snapshot(inv_store) == before
