"""Distributed mode: centres and serving processes linked by a replicated event log.

The embedded default (one process, one DuckDB file, the in-process hub) does not import
this package. In distributed mode an ordered, replicated event log on NATS JetStream is the
source of truth for what happens; every serving process keeps its own DuckDB as a view of
it (docs/DISTRIBUTED.md):

* :mod:`.topology` — the centres (county, city, province), their log servers and links;
* :mod:`.log` — the event log: streams, subjects by jurisdiction, publishing with
  ``Nats-Msg-Id`` and ``Nats-Expected-Last-Subject-Sequence``, snapshots;
* :mod:`.viewstore` — the view store: one transaction per applied event, and the guard that
  refuses local writes that would make a process diverge from the log;
* :mod:`.materialise` — the service that applies the log to a process's store;
* :mod:`.actions` — officers' actions published instead of written, one winner per object;
* :mod:`.ingest` — a centre's ingest node (its feeds and its one alarm engine);
* :mod:`.serving` — a serving console built on a view store (``serve.py --distributed``);
* :mod:`.centre` — the command that starts a centre: its ingest node, N serving processes
  and the nginx configuration in front of them.
"""
