"""An exercise on a distributed centre: started on one serving process, seen and stopped on
the other, purged everywhere alike.

The centre's ingest node reads the demo feed (a real ``data.simulate`` process on the tiny
registry), whose simulator plays the scenario; both consoles' ``/drills`` desks reach that
simulator (``drill_feed``); who started, stopped and purged a drill are events on the log.
"""
from __future__ import annotations

import time

import pytest

from tests.distributed.conftest import NEEDS_NATS
from tests.distributed.test_processes import running_centre, wait_for

pytestmark = NEEDS_NATS


def drill_rows(console, drill: str) -> dict[str, int]:
    return console.drills.counts(drill)


def test_a_drill_started_on_a_stopped_on_b_purged_everywhere(county_log, registry, tmp_path):
    from sources.drills.desk import DrillError
    from sources.ingest.demo import DemoFeed

    demo = DemoFeed(registry, port=0, speed=1.0).start()
    try:
        with running_centre(county_log, registry, tmp_path, demo.url,
                            drill_feed=demo.url) as (a, b, node):
            names = [s["name"] for s in a.drills.scenarios() if s.get("ok")]
            assert "dongying-leak" in names, names
            status = a.drills.start("dongying-leak", actor="li", speed=10)
            drill = status["drill_id"]
            for c in (a, b):  # who started it is an event: on every view
                wait_for(lambda c=c: c.store.scalar(
                    "SELECT started_by FROM drills WHERE drill_id = ?", [drill]) == "li",
                    what="the drill's record on both")
                wait_for(lambda c=c: sum(drill_rows(c, drill).values()) > 0, 30,
                         "the drill's messages on both (through the ingest node and the log)")
            assert b.drills.active()["drill_id"] == drill  # B's desk sees it running
            listed = {c: c.drills.drills() for c in (a, b)}  # each desk's list, now cached
            assert all(drill in set(df.drill_id) for df in listed.values())
            with pytest.raises(DrillError, match="before purging"):
                b.drills.purge(drill, actor="wang")  # refused while it runs, nothing written
            b.drills.stop()
            for c in (a, b):  # each desk's list says so too (not a stale cached read)
                wait_for(lambda c=c: c.drills.drills().set_index("drill_id")
                         .ended_at.notna().get(drill, False), what="stopped on both desks")
            time.sleep(3)  # the last messages the simulator had in flight
            wait_for(lambda: a.materialiser.position == b.materialiser.position
                     == node.materialiser.position, what="A, B and the node at one position")
            before = drill_rows(a, drill)
            assert sum(before.values()) > 0 and before == drill_rows(b, drill)
            real = {c: c.store.scalar("SELECT count(*) FROM readings WHERE drill_id IS NULL")
                    for c in (a, b)}
            deleted = a.drills.purge(drill, actor="li")
            assert sum(deleted.values()) == sum(before.values())
            for c in (a, b):
                wait_for(lambda c=c: c.store.scalar(
                    "SELECT purged_by FROM drills WHERE drill_id = ?", [drill]) == "li",
                    what="purged on both")
                assert sum(drill_rows(c, drill).values()) == 0
                assert c.store.scalar("SELECT count(*) FROM readings WHERE drill_id IS NULL"
                                      ) >= real[c]  # real rows stay (and keep coming)
            assert a.store.df("SELECT * FROM drills ORDER BY drill_id").equals(
                b.store.df("SELECT * FROM drills ORDER BY drill_id"))
    finally:
        demo.stop()
