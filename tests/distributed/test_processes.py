"""Two serving consoles of one centre on one log: each sees the other's actions, one winner.

A real ``nats-server`` on loopback, the centre's ingest node fed by a real websocket feed,
and two consoles, each on its own DuckDB view (the serving processes' code, here in one
test process so their stores can be compared row for row).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.distributed.conftest import NEEDS_NATS

pytestmark = NEEDS_NATS

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))  # after site-packages: no bench script shadows a package

#: Tables every view of a centre must hold identically.
REPLICATED = ("readings", "alarms", "alarm_actions", "warnings", "dispatches", "stock_ledger",
              "command_incidents", "command_tasks", "command_task_states",
              "command_commitments", "quarantine")


@contextlib.contextmanager
def running_centre(county_log, registry, tmp_path, feed_url: str, **console_params):
    """County 370102 on ``feed_url``: its ingest node and two consoles A and B, started."""
    from sources.distributed.ingest import CentreIngest
    from sources.distributed.log import EventLog
    from sources.distributed.serving import distributed_console
    from sources.distributed.topology import Topology

    servers, centres = county_log
    topo = Topology.load(centres)
    admin = EventLog(servers=servers.urls).start()
    admin.ensure_streams(topo, "370102")
    admin.put_snapshot("SNAP_370102", registry)
    node = CentreIngest(topology=topo, code="370102", db=str(tmp_path / "ingest.duckdb"),
                        registry=str(registry), feeds=[feed_url]).start()
    params = dict(load_layers=False, snapshot_interval_s=0, malloc_trim_s=0, **console_params)
    a = distributed_console(centres, "370102", tmp_path / "a.duckdb", **params).start()
    b = distributed_console(centres, "370102", tmp_path / "b.duckdb", **params).start()
    try:
        yield a, b, node
    finally:
        for c in (a, b):
            c.stop()
        node.stop()
        admin.stop()


@pytest.fixture
def centre(county_log, registry, tmp_path):
    """County 370102: its ingest node on a feed, two consoles A and B, started."""
    from alarm_latency import BenchFeed

    feed = BenchFeed()
    try:
        with running_centre(county_log, registry, tmp_path, feed.url) as (a, b, node):
            yield a, b, node, feed
    finally:
        feed._stop.set()


def breach(feed, store, n: int = 3) -> list[str]:
    """Send one reading above hi_hi for ``n`` sensors; their ids."""
    rows = store.arrow("SELECT sensor_id, hi_hi FROM sensors WHERE hi_hi IS NOT NULL "
                       "ORDER BY sensor_id LIMIT ?", [n]).to_pylist()
    now = int(time.time() * 1000)
    feed.send([{"type": "reading", "seq": feed.next_seqs(1)[0], "ts": now,
                "sensor_id": r["sensor_id"], "value": r["hi_hi"] + 1.0} for r in rows])
    return [r["sensor_id"] for r in rows]


def wait_for(predicate, timeout=10.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def counts(store) -> dict[str, int]:
    return {t: store.scalar(f"SELECT count(*) FROM {t}") for t in REPLICATED}


def test_alarm_action_on_a_is_seen_on_b_within_a_second(centre):
    a, b, node, feed = centre
    sensors = breach(feed, a.store)
    ids = wait_for(lambda: b.store.arrow(
        "SELECT alarm_id FROM alarms WHERE sensor_id IN (SELECT unnest(?)) ORDER BY 1",
        [sensors]).column(0).to_pylist(), what="alarms raised on B")
    # the engine ran once, at the ingest node: the same ids everywhere, from the centre's range
    assert all(i // 10**9 == 370102 for i in ids) and len(ids) == 3
    wait_for(lambda: a.store.scalar("SELECT count(*) FROM alarms WHERE alarm_id IN "
                                    "(SELECT unnest(?))", [ids]) == 3, what="alarms on A")
    heard = threading.Event()
    sub = b.hub.subscribe(["alarm"], notify=heard.set)
    t0 = time.monotonic()
    change = a.alarms.acknowledge(ids[0], "officer-a")
    assert change["state"] == "acknowledged"
    assert heard.wait(1.0), "B's hub did not hear of A's acknowledgement within 1 s"
    assert time.monotonic() - t0 < 1.0
    messages, _ = sub.drain()
    assert any(d.get("alarm_id") == ids[0] and d.get("acked_by") == "officer-a"
               for m in messages for d in m.payload)
    assert b.store.scalar("SELECT acked_by FROM alarms WHERE alarm_id = ?", [ids[0]]) == "officer-a"
    # a warning issued on B is on A's wall (its hub) at once
    w = b.warnings.issue(event="rainstorm", level="orange", headline="暴雨橙色预警",
                         counties=["370102"], expires="2099-01-01T00:00:00+00:00",
                         sender="officer-b")
    assert w["warning_id"].startswith("W") and "-370102-" in w["warning_id"]
    wait_for(lambda: w["warning_id"] in set(a.warnings.active()["warning_id"]), 1.0,
             "B's warning active on A")


def test_two_officers_on_two_processes_one_wins(centre):
    from sources.alarms.desk import AlarmActionError
    from sources.command.common import CommandError

    a, b, node, feed = centre
    sensors = breach(feed, a.store, n=1)
    alarm_id = wait_for(lambda: b.store.scalar(
        "SELECT alarm_id FROM alarms WHERE sensor_id = ?", [sensors[0]]), what="alarm")
    wait_for(lambda: a.store.scalar("SELECT count(*) FROM alarms WHERE alarm_id = ?",
                                    [alarm_id]), what="alarm on A")

    def race(fa, fb):
        out, go = {}, threading.Barrier(2)

        def run(name, fn):
            go.wait()
            try:
                out[name] = ("won", fn())
            except (AlarmActionError, CommandError) as exc:
                out[name] = ("lost", exc)

        threads = [threading.Thread(target=run, args=(n, f)) for n, f in (("a", fa), ("b", fb))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return out

    out = race(lambda: a.alarms.acknowledge(alarm_id, "li"),
               lambda: b.alarms.acknowledge(alarm_id, "wang"))
    assert sorted(v[0] for v in out.values()) == ["lost", "won"], out
    winner = "li" if out["a"][0] == "won" else "wang"
    loser = next(v[1] for v in out.values() if v[0] == "lost")
    assert loser.key == "alarm.err.already_acknowledge" and loser.info["by"] == winner
    for c in (a, b):
        wait_for(lambda c=c: c.store.scalar("SELECT acked_by FROM alarms WHERE alarm_id = ?",
                                            [alarm_id]) == winner, what="winner everywhere")
        assert c.store.scalar("SELECT count(*) FROM alarm_actions WHERE alarm_id = ? AND "
                              "action = 'acknowledge'", [alarm_id]) == 1

    # the same team sent to an incident by two desks on two processes: one commitment
    inc = a.command.open_incident(subtype="flood", user="li", county_code="370102",
                                  title="内涝")
    wait_for(lambda: b.store.scalar("SELECT count(*) FROM command_incidents WHERE "
                                    "incident_id = ?", [inc["incident_id"]]), what="incident on B")
    out = race(lambda: a.command.assign_team(inc["incident_id"], 1, user="li"),
               lambda: b.command.assign_team(inc["incident_id"], 1, user="wang"))
    assert sorted(v[0] for v in out.values()) == ["lost", "won"], out
    lost = next(v[1] for v in out.values() if v[0] == "lost")
    assert lost.key == "command.error.team_taken"
    assert lost.fmt["who"] == ("li" if out["a"][0] == "won" else "wang")

    # a dispatch shipped by both: one ship, one stock movement
    did = a.materials.request_dispatch(kind_id=2, quantity=10, from_warehouse_id=1,
                                       destination="现场", requester="li")
    b.materials.approve(did, actor="wang")
    from sources.inventory.common import InventoryError

    def ship(c, who):
        try:
            return c.materials.ship(did, actor=who)
        except InventoryError as exc:
            raise CommandError(exc.key, str(exc)) from None

    out = race(lambda: ship(a, "li"), lambda: ship(b, "wang"))
    assert sorted(v[0] for v in out.values()) == ["lost", "won"], out
    for c in (a, b):
        wait_for(lambda c=c: c.store.scalar(
            "SELECT count(*) FROM stock_ledger WHERE dispatch_id = ? AND reason = 'ship'",
            [did]) == 1, what="one ship everywhere")
    # every view of the centre holds the same rows
    wait_for(lambda: counts(a.store) == counts(b.store), what="the same rows on A and B")
    assert a.store.df("SELECT * FROM alarms ORDER BY alarm_id").equals(
        b.store.df("SELECT * FROM alarms ORDER BY alarm_id"))


#: Tables an incident's whole command workflow writes (beside ``REPLICATED``).
COMMAND_TABLES = ("incidents", "command_incidents", "command_plan_items", "command_notes",
                  "command_plan_ticks", "command_reports", "command_tasks",
                  "command_task_states", "command_commitments", "dispatches", "stock",
                  "stock_ledger", "expert_tasks", "expert_draws", "expert_draw_members",
                  "expert_ratings", "expert_fees", "experts")


def table(store, name: str):
    """Every row of ``name`` in a fixed order (all columns), for a row-for-row comparison."""
    return store.df(f"SELECT * FROM {name} ORDER BY ALL")


def test_every_command_and_inventory_action_is_replicated(centre):
    """An incident's whole workflow, its steps alternating between two processes: each step
    is heard on the other process, refusals are the embedded console's own, and at the end
    both views hold the same rows in every table the workflow writes."""
    from sources.command.common import CommandError
    from sources.inventory.common import InventoryError

    a, b, node, feed = centre
    missing = [t for t in COMMAND_TABLES if not a.store.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [t])]
    assert not missing, missing

    def on_both(sql, params, what):  # a step taken on one process, seen on the other
        for c in (a, b):
            wait_for(lambda c=c: c.store.scalar(sql, params), what=f"{what} on both")

    inc = a.command.open_incident(subtype="flood", user="li", county_code="370102",
                                  title="城区内涝", deaths=0)
    iid = inc["incident_id"]
    on_both("SELECT count(*) FROM command_incidents WHERE incident_id = ?", [iid], "intake")
    v2 = b.command.correct(iid, user="wang", deaths=2, note="续报伤亡")
    assert v2["version"] == 2
    on_both("SELECT max(version) = 2 FROM command_incidents WHERE incident_id = ?", [iid], "correction")
    with pytest.raises(CommandError) as e:  # the embedded refusal, from the other process
        a.command.set_grade(iid, "II", user="zhao", reason="")
    assert e.value.key == "command.error.need_reason"
    v3 = a.command.set_grade(iid, "II", user="zhao", reason="主城区大面积积水")
    assert (v3["grade"], v3["grade_reason"]) == ("II", "主城区大面积积水")
    r = b.command.launch_response(iid, "III", user="wang")
    assert r["response_level"] == "III"
    on_both("SELECT count(*) FROM command_plan_items WHERE incident_id = ?", [iid], "checklist")
    a.command.tick_item(iid, 1, user="li")
    with pytest.raises(CommandError) as e:  # ticked on A: B's officer is told by whom
        b.command.tick_item(iid, 1, user="zhao")
    assert e.value.key == "command.error.already_ticked" and e.value.fmt["who"] == "li"
    note_id = b.command.add_note(iid, "现场排涝泵车已到位", user="wang")
    on_both("SELECT count(*) FROM command_notes WHERE note_id = ?", [note_id], "note")

    support = a.command.support(iid)
    shelter = int(support["shelters"].shelter_id.iloc[0])
    t_shelter = b.command.open_shelter(iid, shelter, people=10, user="wang")
    wh = int(support["warehouses"].warehouse_id.iloc[0])
    kind = a.command.warehouse_stock(wh).query("countable and quantity >= 3").iloc[0]
    t_mat = a.command.request_materials(iid, kind_id=int(kind.kind_id), quantity=2,
                                        warehouse_id=wh, user="li")
    t_exp = b.command.draw_experts(iid, n=1, user="wang", type=None)  # no seed given
    on_both("SELECT count(*) FROM expert_draws WHERE draw_id = ?", [t_exp["draw_id"]],
            "the draw")  # B returns once B applied it; A may still be behind
    seeds = {c.store.scalar("SELECT seed FROM expert_draws WHERE draw_id = ?",
                            [t_exp["draw_id"]]) for c in (a, b)}
    assert len(seeds) == 1 and None not in seeds  # fixed once, when published

    # the expert desk: a draw, a redraw, a rating and a fee, alternating
    draw = a.experts.draw(n=2, title="会商专家", tags=[], type=None, actor="li")
    on_both("SELECT count(*) FROM expert_draw_members WHERE task_id = ?", [draw["task_id"]],
            "draw")
    assert b.experts.replay(draw["draw_id"]) == list(draw["result"])  # B drew the same
    new = b.experts.redraw(draw["task_id"], draw["result"][0], actor="wang", reason="出差")
    assert new["result"][0] not in draw["result"]
    kept = draw["result"][1]
    rating = a.experts.rate(draw["task_id"], kept, professionalism=5, conduct=4,
                            timeliness=3, actor="li")
    with pytest.raises(InventoryError) as e:
        b.experts.rate(draw["task_id"], kept, professionalism=1, conduct=1, timeliness=1)
    assert e.value.key == "inventory.error.already_rated"
    on_both("SELECT rating = ? FROM experts WHERE expert_id = ?", [rating, kept], "rating")
    fee_id = b.experts.record_fee(draw["task_id"], kept, days=2, daily_rate=800, travel=150,
                                  actor="wang")
    on_both("SELECT amount = 1750 FROM expert_fees WHERE fee_id = ?", [fee_id], "fee")

    # stock taken in on A, written off on B; a write-off beyond the stock refused on both
    held = a.materials.adjust(warehouse_id=wh, kind_id=int(kind.kind_id), delta=5, actor="li")
    assert b.materials.adjust(warehouse_id=wh, kind_id=int(kind.kind_id), delta=-1,
                              actor="wang") == held - 1
    with pytest.raises(InventoryError) as e:
        a.materials.adjust(warehouse_id=wh, kind_id=int(kind.kind_id), delta=-1e9, actor="li")
    assert e.value.key == "inventory.error.short_adjust"

    # reports: submitted on B, revised on A
    rep = b.command.submit_report(iid, "first", "首报：城区内涝，死亡 2 人", user="wang",
                                  recipient="市应急管理局")
    rev = a.command.revise_report(rep["report_id"], "首报（更正）：死亡 2 人，转移 10 人",
                                  user="li")
    assert rev["version"] == 2
    # tasks ended on either process, then closed on B: refused on A while one is active
    for task, c in ((t_shelter, a), (t_mat, b)):
        c.command.advance_task(task["task_id"], "cancelled", user="li")
    with pytest.raises(CommandError) as e:
        a.command.close_incident(iid, user="li")
    assert e.value.key == "command.error.active_tasks"
    b.command.advance_task(t_exp["task_id"], "cancelled", user="wang")
    closed = b.command.close_incident(iid, user="wang", note="积水排除")
    assert closed["status"] == "closed"
    on_both("SELECT count(*) FROM command_incidents WHERE incident_id = ? AND "
            "status = 'closed'", [iid], "closed")

    # both views hold the same rows, row for row, in every table the workflow wrote
    wait_for(lambda: a.materialiser.position == b.materialiser.position,
             what="A and B at the same position")
    for name in COMMAND_TABLES:
        ta, tb = table(a.store, name), table(b.store, name)
        assert len(ta) > 0 or name in ("stock",), name
        assert ta.equals(tb), f"{name} differs between A and B"
    assert a.command.timeline(iid, nearby=False).kind.tolist() == \
        b.command.timeline(iid, nearby=False).kind.tolist()


def test_a_write_that_is_no_event_is_refused_and_writes_nothing(centre):
    from sources.distributed.viewstore import NotReplicated

    a, b, node, feed = centre
    before = counts(a.store), a.store.scalar("SELECT count(*) FROM drills")
    with pytest.raises(NotReplicated, match="not replicated in distributed mode"):
        with a.store.transaction() as cur:  # a write from code that publishes no event
            cur.execute("INSERT INTO drills (drill_id, scenario, title, started_at, "
                        "started_by) VALUES ('D1', 's', 't', now(), 'li')")
    assert (counts(a.store), a.store.scalar("SELECT count(*) FROM drills")) == before
    # drills are not available here: no scenario player behind a serving process
    from sources.drills.desk import DrillError

    with pytest.raises(DrillError, match="no feed here plays drills"):
        a.drills.start("linyi_rainstorm", actor="li")
    # a hostile event on the log naming a method that is not an action changes nothing
    from sources.distributed.log import subject

    a.materialiser.log.publish(subject("370102", "dispatch", 1, scope="local"),
                               {"source": "experts", "method": "_record_draw", "args": [],
                                "kwargs": {"task_id": 1, "n": 1}},
                               kind="call")
    wait_for(lambda: a.materialiser.refused >= 1 and b.materialiser.refused >= 1,
             what="refused on both")
    assert counts(a.store) == before[0]


def test_the_walls_of_a_serving_process_hear_the_centres_feeds(centre):
    """A serving process has no feed of its own: its wall says "live" from the ingest node's
    announcements (not "no feed"), and "disconnected" once they stop; junk on the subject
    changes nothing."""
    from sources.distributed.feeds import CentreFeeds, status_subject
    from sources.situation.kpis import freshness
    from views.board import SituationBoard
    from views.board_live import statuses_of

    a, b, node, feed = centre
    feeds = next(i for i in a.ingests if isinstance(i, CentreFeeds))
    wait_for(lambda: feeds.status()["connected"], what="the ingest node's feed heard on A")
    breach(feed, a.store, n=1)
    st = wait_for(lambda: (s := feeds.status())["stored"] > 0 and s, what="counters")
    assert st["url"] == "ingest node 370102 (1 feeds)" and st["last_message_at"] is not None
    assert a.health()["feeds"][0]["connected"] is True
    wall = SituationBoard(source=a.situation, ingests=list(a.ingests), lang="zh")
    wall.heartbeat(statuses_of(wall.ingests))
    assert (wall.clock.feeds_total, wall.clock.feeds_connected) == (1, 1)
    assert freshness(statuses_of(b.ingests))["connected"] == 1  # B hears it too

    heard = feeds.heard  # hostile or stray announcements: ignored
    log = a.materialiser.log
    for junk in ({"code": "370102", "feeds": "x"}, {"code": "999999", "feeds": []}, {"x": 1}):
        log.announce(status_subject("370102"), junk)
    log.call(log._nc.publish(status_subject("370102"), b"\xff\x00not msgpack"))
    time.sleep(1.5)
    assert feeds.status()["connected"] and feeds.heard > heard  # the node's own still count

    node.stop()  # the ingest node goes silent: disconnected after silent_s, said why
    wait_for(lambda: not feeds.status()["connected"], timeout=feeds.silent_s + 5,
             what="silent node reads as disconnected")
    assert "no status from the ingest node" in feeds.status()["last_error"]
    wall.heartbeat(statuses_of(wall.ingests))
    assert (wall.clock.feeds_total, wall.clock.feeds_connected) == (1, 0)


def test_a_serving_process_serves_its_risk_layer_from_dask_workers(centre, county_log,
                                                                   tmp_path):
    """``serve.py --distributed … --risk-workers N``: the view's points on the workers."""
    pytest.importorskip("distributed", reason="the [scale] extra (Dask) is not installed")
    import psutil

    import serve

    _servers, centres = county_log  # the centre's log, snapshot published by ``centre``
    args = serve.parse_args(["--distributed", str(centres), "--centre", "370102",
                             "--db", str(tmp_path / "c.duckdb"), "--risk-workers", "1"])
    serve.check_options(args)  # once refused: "not options of a --distributed process yet"
    c = serve.build_console(args).start()
    try:
        status = c.risk_layer_status()
        n = c.store.arrow("SELECT count(*) AS n FROM risk_points").to_pylist()[0]["n"]
        assert status["kind"] == "partitioned" and status["cluster"] == "local:1"
        assert status["points"] == n > 0 and status["workers"] == 1
        pts = c.risk_layer().points
        assert pts.counts_in(pts.extent)  # the workers answer for the whole view
        workers = [p for p in psutil.Process().children(recursive=True)
                   if "spawn" in " ".join(p.cmdline())]
        assert workers
    finally:
        c.stop()
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_the_ingest_node_forgets_a_purged_drills_alarms(centre):
    """A drill's alarms purged on a serving process are forgotten by the centre's one alarm
    engine (on the ingest node): the next real breach of those sensors raises new alarms."""
    a, _b, node, feed = centre
    rows = a.store.arrow("SELECT sensor_id, hi_hi FROM sensors WHERE hi_hi IS NOT NULL "
                         "ORDER BY sensor_id LIMIT 2").to_pylist()
    sensors = [r["sensor_id"] for r in rows]

    def breach_all(drill: str | None = None) -> None:
        now = int(time.time() * 1000)
        tag = {"exercise": True, "drill_id": drill} if drill else {}
        feed.send([{"type": "reading", "seq": s, "ts": now, "sensor_id": r["sensor_id"],
                    "value": r["hi_hi"] + 1.0, **tag}
                   for s, r in zip(feed.next_seqs(len(rows)), rows, strict=True)])

    def open_alarms(drill: bool) -> set:
        return set(a.store.arrow(
            "SELECT alarm_id FROM alarms WHERE list_contains(?, sensor_id) AND state <> 'closed' "
            f"AND drill_id IS {'NOT ' if drill else ''}NULL", [sensors]).column(0).to_pylist())

    def tracked() -> set:
        return {x.alarm_id for x in node.engine._open.values()}

    breach_all("d-purge")
    wait_for(lambda: len(open_alarms(drill=True)) == 2, what="the drill's two alarms on A")
    drilled = open_alarms(drill=True)
    assert drilled <= tracked()  # the engine holds them open
    a.drills.record_stop("d-purge")
    a.drills.purge("d-purge", actor="li")
    wait_for(lambda: not drilled & tracked(), what="the ingest node forgot the purged alarms")
    assert sum(node.materialiser.targets.drills.counts("d-purge").values()) == 0
    breach_all()  # a real breach of the same sensors
    wait_for(lambda: len(open_alarms(drill=False)) == 2,
             what="the real breach raised two new alarms")
    assert not open_alarms(drill=False) & drilled
