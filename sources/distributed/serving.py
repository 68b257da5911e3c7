"""A serving console in distributed mode (``serve.py --distributed centres.json --centre C``).

The console is the embedded one — the same pages, sources and services — built on a
:class:`~.viewstore.ViewStore` and a :class:`~.viewstore.ViewHub`: its store starts from the
centre's newest published snapshot (registries and everything applied up to its position)
when the ``--db`` file does not exist yet, then follows the centre's view stream
(:class:`~.materialise.Materialiser`); officers' replicated actions go to the log
(:class:`~.actions.Actions`); it runs no feed and no alarm engine of its own (the ingest
node does, once per centre).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from sources.ingest.demo import desk_control

from .actions import Actions
from .feeds import CentreFeeds
from .log import EventLog, LogUnavailable
from .materialise import Materialiser, Targets
from .topology import Topology, TopologyError
from .viewstore import ViewHub, ViewStore


class DistributedStartError(RuntimeError):
    """The serving process cannot start (one line says why)."""


def distributed_console(centres: str | Path, code: str, db: str | Path, *,
                        snapshot_every_s: float | None = None, catch_up_s: float = 60.0,
                        drill_feed: str | None = None, **console_params):
    """A console of centre ``code`` on the view store ``db`` (not started).

    ``snapshot_every_s``: this process also publishes a snapshot of its view that often
    (one process per centre is enough). ``drill_feed``: the feed (read by the centre's
    ingest node) whose simulator plays exercises: the ``/drills`` desk starts and stops
    them there, and their records are events. ``console_params`` go to :class:`Console`.
    """
    from sources.console import Console

    if snapshot_every_s is None:  # the centre command asks one process per centre for it
        snapshot_every_s = float(os.environ.get("CONSOLE_VIEW_SNAPSHOT_S", 0)) or None
    try:
        topology = Topology.load(centres)
        centre = topology[code]
    except TopologyError as exc:
        raise DistributedStartError(str(exc)) from None
    event_log = EventLog(servers=list(centre.servers), client_name=f"serve {code} {os.getpid()}")
    try:
        event_log.start()
    except LogUnavailable as exc:
        raise DistributedStartError(str(exc)) from None
    try:
        db = Path(db)
        if not db.exists():
            db.parent.mkdir(parents=True, exist_ok=True)
            if not event_log.get_snapshot(centre.snapshots, db):
                raise DistributedStartError(
                    f"centre {code}: no snapshot published yet (start the centre with "
                    "python -m sources.distributed.centre first)")
        store = ViewStore(db)
        console = Console(store=store, hub=ViewHub(), feeds=[], demo=None, **console_params)
        # no feed of its own: the centre's ingest node announces its feeds' liveness
        console.ingests.append(CentreFeeds(log=event_log, code=code, hub=console.hub))
        if drill_feed:
            console.drills.control = functools.partial(desk_control, drill_feed)
        materialiser = Materialiser(
            log=event_log, stream=centre.view, targets=Targets.of_console(console),
            snapshot_bucket=centre.snapshots if snapshot_every_s else None,
            snapshot_every_s=snapshot_every_s or 300.0)
        materialiser.catch_up(timeout=catch_up_s)
        console.actions = Actions(log=event_log, topology=topology, me=code,
                                  materialiser=materialiser, store=store).install(console)
        console.materialiser = materialiser
        console.add_service(event_log)
        console.add_service(materialiser)
        return console
    except BaseException:
        event_log.stop()
        raise
