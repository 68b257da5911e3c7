"""Concurrency and replay: two officers on one team (real threads, a real DuckDB file), and
replay from the store alone reproducing every state the live incident went through."""
from __future__ import annotations

import threading

from sources.command import CommandError, CommandSource
from sources.hub import Hub
from sources.store.store import Store
from tests.sources.command_fixtures import (  # noqa: F401 - fixtures
    Clock,
    clock_fixture,
    cmd_fixture,
    open_leak,
)


def race(sources: list[CommandSource], incidents: list[str], team: int, users: list[str]):
    """Every officer assigns ``team`` at the same moment; returns (wins, refusals)."""
    barrier = threading.Barrier(len(users))
    wins, refusals, errors = [], [], []

    def officer(i: int) -> None:
        src = sources[i % len(sources)]
        barrier.wait()
        try:
            wins.append((users[i], src.assign_team(incidents[i], team, user=users[i])))
        except CommandError as exc:
            refusals.append((users[i], exc))
        except Exception as exc:  # noqa: BLE001 - anything else fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=officer, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return wins, refusals


def test_two_officers_one_team_exactly_one_wins(cmd, store):
    incidents = [open_leak(cmd, store, title=f"事件{i}")["incident_id"] for i in range(8)]
    team = int(cmd.support(incidents[0])["teams"].team_id.iloc[0])
    users = [f"officer{i}" for i in range(8)]
    wins, refusals = race([cmd], incidents, team, users)
    assert len(wins) == 1 and len(refusals) == 7
    winner, task = wins[0]
    for _user, exc in refusals:  # each loser is told who has the team
        assert exc.key == "command.error.team_taken"
        assert (exc.fmt["who"], exc.fmt["incident"]) == (winner, task["incident_id"])
    assert store.scalar("SELECT count(*) FROM command_commitments WHERE resource = 'team' "
                        "AND resource_id = ?", [team]) == 1
    assert store.scalar("SELECT count(*) FROM command_tasks WHERE kind = 'team'") == 1


def test_two_desks_on_separate_connections_still_one_winner(tiny_db, clock):
    """Two stores (two DuckDB connections, two write locks) on one file: the store's
    uniqueness rule (primary key of command_commitments) decides, not a Python lock."""
    a, b = Store(tiny_db), Store(tiny_db)
    try:
        ca = CommandSource(store=a, hub=Hub(), clock=clock)
        cb = CommandSource(store=b, hub=Hub(), clock=clock)
        incidents = [open_leak(ca, a, title=f"事件{i}")["incident_id"] for i in range(2)]
        teams = ca.support(incidents[0])["teams"].team_id.astype(int).tolist()[:5]
        for team in teams:  # several rounds: the commits really overlap in some
            wins, refusals = race([ca, cb], incidents, team, ["desk-a", "desk-b"])
            assert len(wins) == 1 and len(refusals) == 1, team
            assert refusals[0][1].key in ("command.error.team_taken", "command.error.conflict")
            assert a.scalar("SELECT count(*) FROM command_commitments WHERE resource_id = ?",
                            [team]) == 1
    finally:
        b.close()
        a.close()


def test_replay_reproduces_every_live_state(tiny_db, clock):
    store = Store(tiny_db)
    cmd = CommandSource(store=store, hub=Hub(), clock=clock)
    seen: list[tuple] = []

    def snap():
        seen.append((clock(), cmd.incident_state(iid)))
        clock.step(minutes=4)

    inc = open_leak(cmd, store, deaths=2)
    iid = inc["incident_id"]
    clock.step(minutes=1)
    snap()
    cmd.correct(iid, user="li", deaths=4, injured=12)
    snap()
    cmd.launch_response(iid, "III", user="wang")
    snap()
    cmd.tick_item(iid, 1, user="li")
    snap()
    sup = cmd.support(iid)
    team = cmd.assign_team(iid, int(sup["teams"].team_id.iloc[0]), user="wang")
    snap()
    wh = int(sup["warehouses"].warehouse_id.iloc[0])
    kind = cmd.warehouse_stock(wh).query("countable").iloc[0]
    mats = cmd.request_materials(iid, kind_id=int(kind.kind_id), quantity=1, warehouse_id=wh,
                                 user="wang")
    snap()
    cmd.draw_experts(iid, n=1, user="zhao", type=None, seed=3)
    snap()
    report = cmd.submit_report(iid, "first", cmd.draft_report(iid, "first")["body"], user="li")
    snap()
    for state in ("en_route", "on_scene", "done"):
        cmd.advance_task(team["task_id"], state, user="wang")
        cmd.advance_task(mats["task_id"], state, user="wang")
        snap()
    cmd.set_grade(iid, "II", user="zhao", reason="影响扩大")
    snap()
    cmd.revise_report(report["report_id"], "首报更正", user="li")
    cmd.add_note(iid, "现场指挥部已成立", user="wang")
    snap()
    experts = cmd.tasks(iid).query("kind == 'experts'").task_id.iloc[0]
    cmd.advance_task(int(experts), "cancelled", user="zhao")
    cmd.close_incident(iid, user="wang")
    snap()
    store.close()

    # from the store alone: a new process would open the file and read it back
    reopened = Store(tiny_db)
    try:
        replay = CommandSource(store=reopened, clock=Clock(clock()))
        assert replay.incident_state(iid, at=seen[0][0].replace(year=2000)) is None
        states = [s for _, s in seen]
        assert len({(s["versions"], len(s["tasks"]), len(s["reports"])) for s in states}) > 8
        for at, live in seen:
            assert replay.incident_state(iid, at=at) == live, at
        times = replay.replay_times(iid)
        assert times[0] == inc["acted_at"] and len(times) >= len(seen)
    finally:
        reopened.close()
