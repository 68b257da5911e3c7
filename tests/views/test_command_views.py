"""The command views on a tiny store: what each one renders (rows, text, glyph data), their
actions, their refusals, and the same views on a read-only store as in a notebook."""
from __future__ import annotations

import contextlib
from datetime import timedelta

import panel as pn
import pytest

from sources.command import CommandSource
from sources.command.common import CHINA_TZ
from sources.hub import Hub
from sources.store.store import Store
from tests.sources.command_fixtures import Clock, hazchem_enterprise, open_leak
from views.command_desk import CommandDesk
from views.command_intake import IncidentIntake
from views.command_reports import ReportEditor
from views.command_support import DecisionSupportPanel
from views.command_tasks import TaskBoard
from views.command_timeline import IncidentTimeline, ReplayPlayer
from views.command_workspace import IncidentList, IncidentWorkspace


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def src(store, clock):
    return CommandSource(store=store, hub=Hub(), clock=clock)


@pytest.fixture
def leak(src, store, clock):
    """A level III hazchem leak under a level III response (4 dead)."""
    inc = open_leak(src, store, deaths=4)
    clock.step(minutes=2)
    src.launch_response(inc["incident_id"], "III", user="wang")
    clock.step(minutes=1)
    return inc


def test_incident_list_shows_grade_response_and_countdown(src, leak):
    view = IncidentList(source=src, lang="zh")
    rows = view.table.value
    assert len(rows) == len(src.wall_incidents()) == 1
    row = rows.iloc[0]
    assert "较大(Ⅲ级)" in row.grade and row.response_level == "Ⅲ级响应"
    assert row.next_report == "首报" and "剩余 52分钟" in row.countdown  # learned 5 + 3 min ago
    view.table.selection = [0]
    assert view.incident_id == leak["incident_id"]


def test_incident_list_with_a_feed_incident_beside_a_commanded_one(src, store, leak, clock):
    """A feed incident has no response and no report due: its cells say so (it broke the
    whole /command page once: the gaps came as NaN beside the commanded incident's text)."""
    store.execute("INSERT INTO incidents VALUES ('ws://feed', 7, ?, 'INC-1', 'fire', 117.0, "
                  "36.6, '仓库火灾', 'orange', 'open', '370102', NULL, NULL)", [clock()])
    df = src.wall_incidents()
    assert set(df.origin) == {"feed", "officer"}
    assert all(v is None or isinstance(v, str) for c in ("response_level", "next_report")
               for v in df[c])
    view = IncidentList(source=src, lang="zh")
    rows = view.table.value.set_index(df.incident_id)
    assert (rows.loc["INC-1", "response_level"], rows.loc["INC-1", "next_report"],
            rows.loc["INC-1", "countdown"]) == ("—", "—", "")
    assert rows.loc[leak["incident_id"], "next_report"] == "首报"


def test_workspace_card_rule_and_checklist(src, leak, clock):
    view = IncidentWorkspace(source=src, lang="zh", incident_id=leak["incident_id"])
    card = view.card.object
    assert "死亡 4 人 ≥ 3 人 → 较大(Ⅲ级)" in card and "Ⅲ级响应" in card
    plan = src.plans()["hazchem"].items_for("III")
    assert list(view.checklist.value.measure) == [it.measure for it in plan]
    clock.step(minutes=1)
    assert view.tick(1) is not None
    first = view.checklist.value.iloc[0]
    assert (first.done, first.done_by) == ("✔", "anonymous")
    # a refusal at the form: overriding without a reason
    view.grade.value, view.reason.value = "I", ""
    assert view.set_grade() is None
    assert "请填写定级的研判理由" in view.notice.pane.object
    view.reason.value = "周边有学校"
    assert view.set_grade() is not None and "值班员研判：周边有学校" in view.card.object
    # no station measures wind direction here: the officer enters it, the sector follows
    view.wind.value = 90.0  # wind from the east: the downwind sector lies west
    assert view.correct() is not None
    area = src.support(leak["incident_id"])["area"]
    assert (area["wind_source"], area["sector"]) == ("officer", (240.0, 300.0))
    en = IncidentWorkspace(source=src, lang="en", incident_id=leak["incident_id"])
    assert "Set by an officer" in en.card.object and "(the rule gives Major (III))" in en.card.object


def test_decision_support_map_tables_and_dispatch(src, leak):
    view = DecisionSupportPanel(source=src, lang="zh", incident_id=leak["incident_id"], k=5)
    ky = view.map.ky
    assert view.map.scene.data["x"] == [leak["lon"]]
    assert view.map.scene.data["y"] == [pytest.approx(leak["lat"] * ky)]
    teams = view.tables["teams"].value
    assert len(teams) == 5 and len(view.map.layers["teams"].data["x"]) == 5
    assert (teams.minutes.diff().dropna() >= 0).sum() >= 3  # matching ones ranked by time
    assert len(view.map.area.data["xs"][0]) > 10  # the affected circle
    assert "绕行系数 1.3" in view.summary.object and "60 km/h" in view.summary.object
    team = next(iter(view.team.options.values()))
    view.team.value = team
    assert view.assign_team() is not None and "已下达任务" in view.notice.pane.object
    assert team not in view.team.options.values()  # committed: no longer offered
    assert len(view.map.links.data["xs"]) == 1
    other = open_leak(src, src.store, title="另一起")
    second = DecisionSupportPanel(source=src, lang="zh", incident_id=other["incident_id"])
    shown = second.tables["teams"].value
    assert leak["incident_id"] in set(shown.committed_to.dropna())  # shown as committed
    assert second.source.assign_team  # refusal at the form names who has the team
    second.team.options = {**second.team.options, "x": team}
    second.team.value = team
    assert second.assign_team() is None
    assert f"已由 anonymous 派往事件 {leak['incident_id']}" in second.notice.pane.object
    wh = next(iter(view.warehouse.options.values()))
    view.warehouse.value = wh
    assert view.kind.options  # kinds with what is available
    view.kind.value = next(iter(view.kind.options.values()))
    view.quantity.value = 10**9
    assert view.request_materials() is None and "少于" in view.notice.pane.object


def test_task_board_columns_and_moves(src, leak, clock):
    team = int(src.support(leak["incident_id"])["teams"].team_id.iloc[0])
    task = src.assign_team(leak["incident_id"], team, user="wang")
    board = TaskBoard(source=src, lang="zh", incident_id=leak["incident_id"])
    assert "已下达 (1)" in board.board.object and task["resource_name"] in board.board.object
    assert f"救援队伍 · {task['quantity']}<" in board.board.object  # members, no unit: no "nan"
    assert "nan" not in board.board.object
    board.task.value = task["task_id"]
    assert board.move("on_scene") is None
    assert "当前为“已下达”（wang），不能改为“到达现场”" in board.notice.pane.object
    assert board.move("en_route") is not None
    assert "在途 (1)" in board.board.object and "已下达 (0)" in board.board.object


def test_report_editor_counts_down_then_turns_red(src, leak, clock):
    view = ReportEditor(source=src, lang="zh", incident_id=leak["incident_id"])
    assert "首报" in view.timers_pane.object and "剩余 52分钟" in view.timers_pane.object
    clock.step(minutes=60)
    view._tick()  # the page's 1 s callback: no query, the clock moved
    assert "cmd-overdue" in view.timers_pane.object and "已超时 8分钟" in view.timers_pane.object
    view.kind.value = "first"
    view.draft()
    assert "死亡 4 人" in view.body.value and "Ⅲ级应急响应" in view.body.value
    assert view.submit() is not None and len(view.list.value) == 1
    assert "迟报" in view.timers_pane.object
    view.body.value = "  "
    view.list.selection = []
    assert view.submit() is None and "报告没有内容" in view.notice.pane.object
    view.list.selection = [0]
    view.body.value = view.body.value + "更正"
    assert view.revise() is not None and view.list.value.version.iloc[0] == 2
    assert view._export("docx").getvalue()[:2] == b"PK"


def test_timeline_and_replay(src, leak, clock):
    team = int(src.support(leak["incident_id"])["teams"].team_id.iloc[0])
    task = src.assign_team(leak["incident_id"], team, user="wang")
    clock.step(minutes=10)
    src.advance_task(task["task_id"], "en_route", user="wang")
    clock.step(minutes=10)
    src.advance_task(task["task_id"], "on_scene", user="wang")
    clock.step(minutes=1)
    tl = IncidentTimeline(source=src, lang="zh", incident_id=leak["incident_id"])
    assert tl.pane.object.count("<li") == len(src.timeline(leak["incident_id"]))
    assert "到达现场" in tl.pane.object and "Ⅲ级响应" in tl.pane.object
    player = ReplayPlayer(source=src, lang="zh", incident_id=leak["incident_id"])
    ky = player.map.ky
    assert player.slider.value == player.slider.end
    assert player.map.layers["teams"].data["x"] == [pytest.approx(leak["lon"])]  # at the scene
    player.slider.value = int((task["created_at"] - player.start).total_seconds())
    assert player.map.layers["teams"].data["x"] == [pytest.approx(task["base_lon"])]  # at base
    assert player.map.layers["teams"].data["y"] == [pytest.approx(task["base_lat"] * ky)]
    assert "已下达 1" in player.state_pane.object
    player.slider.value = 0
    assert "事件尚未建档" in player.state_pane.object  # learned 5 min before it was entered
    player.step(1)
    assert player.at() == leak["acted_at"] and "未启动响应" in player.state_pane.object
    player.speed = 300
    player._advance()
    assert player.at() == leak["acted_at"] + timedelta(seconds=150)


def test_intake_form_from_alarm_preview_and_refusal(src, store, clock):
    s = store.df("SELECT sensor_id, installation_id, enterprise_id, county_code FROM sensors "
                 "WHERE kind = 'toxic_gas' ORDER BY sensor_id LIMIT 1").iloc[0]
    store.execute("INSERT INTO alarms (alarm_id, sensor_id, installation_id, enterprise_id, "
                  "county_code, kind, level, raised_at, trigger_value, peak_value, state) "
                  "VALUES (7, ?, ?, ?, ?, 'hi_hi', 'red', ?, 55.0, 61.5, 'raised')",
                  [s.sensor_id, int(s.installation_id), int(s.enterprise_id), s.county_code,
                   clock() - timedelta(minutes=3)])
    form = IncidentIntake(source=src, lang="zh", alarm_id=7)
    assert form.subtype.value == "hazchem_leak" and form.enterprise.value == int(s.enterprise_id)
    assert "61.5" in form.description.value
    form.deaths.value = 10
    assert "重大(Ⅱ级)" in form.preview.object and "死亡 10 人 ≥ 10 人" in form.preview.object
    opened = form.open()
    assert opened is not None and form.opened == opened["incident_id"]
    assert (opened["origin"], opened["alarm_id"]) == ("alarm", 7)
    bad = IncidentIntake(source=src, lang="zh")
    bad.lon.value, bad.lat.value = 126.6, 45.7  # Harbin: outside Shandong
    assert bad.open() is None and "不在本省范围内" in bad.notice.pane.object
    bad.lon.value = bad.lat.value = None
    bad.enterprise.options = {"x": int(hazchem_enterprise(store)["enterprise_id"])}
    bad.enterprise.value = int(hazchem_enterprise(store)["enterprise_id"])
    # the picker gives local (China) time without a zone
    bad.occurred.value = (clock() + timedelta(hours=3)).astimezone(CHINA_TZ).replace(tzinfo=None)
    assert bad.open() is None and "发生时间晚于当前时间" in bad.notice.pane.object


def test_intake_during_a_drill_opens_the_drills_incident(src, store, clock):
    """While a drill runs the form starts as an exercise; the incident is the drill's and
    says so in its title. A drill's alarm makes a drill's incident whatever the box says;
    unticked with no drill alarm, an incident is real."""
    from datetime import UTC, datetime

    from sources.drills.desk import DrillSource
    now = datetime.now(UTC)
    store.execute("INSERT INTO drills (drill_id, scenario, title, started_at, started_by, "
                  "last_seen_at) VALUES ('DR-1', 'dongying-leak', '演练', ?, 'x', ?)", [now, now])
    drills = DrillSource(store=store, active_s=3600)
    form = IncidentIntake(source=src, lang="zh", drills=drills)
    assert form.exercise.value is True
    form.county.value = hazchem_enterprise(store)["county_code"]
    opened = form.open()
    assert opened["drill_id"] == "DR-1" and opened["title"].startswith("【演练】")
    form.exercise.value = False
    real = form.open()
    assert real["drill_id"] is None and not real["title"].startswith("【演练】")
    s = store.df("SELECT sensor_id, county_code FROM sensors WHERE kind = 'toxic_gas' "
                 "ORDER BY sensor_id LIMIT 1").iloc[0]
    store.execute("INSERT INTO alarms (alarm_id, sensor_id, county_code, kind, level, raised_at, "
                  "trigger_value, peak_value, state, drill_id) VALUES (8, ?, ?, 'hi_hi', 'red', "
                  "?, 55.0, 61.5, 'raised', 'DR-1')", [s.sensor_id, s.county_code,
                                                       clock() - timedelta(minutes=3)])
    from_alarm = IncidentIntake(source=src, lang="zh", alarm_id=8)  # no drills wired: no box
    assert from_alarm.exercise.value is True
    from_alarm.exercise.value = False
    assert from_alarm.open()["drill_id"] == "DR-1"


def test_desk_links_the_selected_incident_everywhere(src, leak):
    desk = CommandDesk(source=src, lang="en")
    assert all(v.incident_id == "" for v in desk.views.values())
    desk.list.table.selection = [0]
    assert all(v.incident_id == leak["incident_id"] for v in desk.views.values())
    assert pn.panel(desk).get_root() is not None
    assert "Major (III)" in desk.views["workspace"].card.object


def test_views_on_a_read_only_store_as_in_a_notebook(tiny_db, clock):
    store = Store(tiny_db)
    src = CommandSource(store=store, clock=clock)
    inc = open_leak(src, store, deaths=4)
    src.launch_response(inc["incident_id"], "III", user="wang")
    store.close()
    ro = Store(tiny_db, read_only=True)
    try:
        src = CommandSource(store=ro, clock=clock)  # no hub: nothing live
        desk = CommandDesk(source=src, lang="zh", incident_id=inc["incident_id"])
        assert pn.panel(desk).get_root() is not None
        assert len(desk.views["workspace"].checklist.value) == 7
        assert len(desk.views["support"].tables["teams"].value) == 10
        ws = desk.views["workspace"]
        assert ws.tick(1) is None and ws.notice.pane.alert_type == "danger"  # read-only: said
        assert ro.scalar("SELECT count(*) FROM command_plan_ticks") == 0
    finally:
        with contextlib.suppress(Exception):
            ro.close()


def test_hidden_views_catch_up_when_shown_and_skip_what_they_read(src, leak, monkeypatch):
    from sources.hub import Message

    board = TaskBoard(source=src, lang="zh", incident_id=leak["incident_id"], live=False)
    calls = []
    monkeypatch.setattr(board, "refresh", lambda: calls.append(1))
    team = int(src.support(leak["incident_id"])["teams"].team_id.iloc[0])
    src.assign_team(leak["incident_id"], team, user="wang")
    news = Message("command", [{"incident_id": leak["incident_id"]}])
    other = Message("command", [{"incident_id": "SOMETHING-ELSE"}])
    board._on_hub([news, other], False)
    assert calls == [] and board._stale  # hidden: noted, not read
    board.live = True
    assert calls == [1] and not board._stale  # shown: caught up once
    board._on_hub([other], False)
    assert calls == [1]  # another incident's news
    board.mark_read()
    board._on_hub([news], False)  # published before the last read: already shown
    assert calls == [1]
    board._on_hub([Message("command", [{"incident_id": leak["incident_id"]}])], False)
    assert calls == [1, 1]
