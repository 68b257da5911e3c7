"""The situation of the province for the command-hall board: KPIs, events, incidents, layers.

:meth:`SituationSource.situation` bundles everything one board page shows and is shared by
every open page: ten pages on the wall cost one set of queries. It is read part by part
(``PARTS``): a part is read again only after the hub published an event of one of its
topics, or when it is ``max_age`` seconds old — the caching of :class:`sources.base.Source`.
Queries live in three mixins: :mod:`~sources.situation.kpis`,
:mod:`~sources.situation.layers` and :mod:`~sources.situation.incidents`.
"""
from __future__ import annotations

import threading
import time
from typing import ClassVar

import pandas as pd
import param

from sources.base import Source, query
from sources.geo import CountyGeometry
from sources.situation.incidents import IncidentQueries
from sources.situation.kpis import KpiQueries, freshness
from sources.situation.layers import LayerQueries

__all__ = ["PARTS", "SituationSource", "freshness"]

# The parts of the situation and the hub topics whose events change them. Feed status
# arrives every second and re-reads nothing; an alarm re-reads the alarms, the ticker and the
# incident panels, whose timelines hold every kind of event near the incident; the ingest
# publishes ``quarantine`` when it stores rejected messages.
PARTS: dict[str, frozenset[str]] = {
    "warnings": frozenset({"warning"}),
    "alarms": frozenset({"alarm"}),
    "hotspots": frozenset({"hotspot"}),
    "quakes": frozenset({"quake"}),
    "ticker": frozenset({"alarm", "warning", "incident", "quake"}),
    "incidents": frozenset({"incident", "alarm", "warning", "quake", "hotspot", "command"}),
    "rejected": frozenset({"quarantine"}),
}

# LATEST_NOTE: the queries the board repeats twice a second avoid window functions and hash
# joins. DuckDB 2.0 keeps bookkeeping for every buffer such an operator used until its buffer
# pool's eviction queue is purged, which a console with little memory pressure rarely does:
# 10,000 ``row_number() OVER (...)`` or join queries grew the heap by 28 MB (arg_max and
# plain aggregates: 0.5 MB), and a wall page made the server grow ≈ 1.2 MB a minute. So
# "latest row of each" is ``arg_max``, registry lookups (names, positions) are pandas
# reindexing of registries read once (``places()``), and the store turns off late
# materialization (it makes a small ``ORDER BY … LIMIT`` a row-id join: sources/store/store.py).


def _part(name: str):
    """A part of the situation: read with ``now``, cached until an event of its topics."""
    return query(topics=PARTS[name], max_age="max_age", maxsize=1, table=False, name=name)


class SituationSource(KpiQueries, LayerQueries, IncidentQueries, Source):
    """Live situation of the province: what the board shows, computed in one place."""

    source_type: ClassVar[str] = "situation"

    ticker_size = param.Integer(default=40, bounds=(1, 500), doc="Events kept in the ticker.")
    max_incidents = param.Integer(default=3, bounds=(0, 12), doc="Incidents detailed in panels.")
    nearest_k = param.Integer(default=3, bounds=(1, 20), doc="Nearest resources of each kind.")
    max_age = param.Number(
        default=10.0, bounds=(0, None),
        doc="Seconds a part of the situation is shared by every page when no event of its "
            "topics arrives (time moves on: 24-hour windows, expiry).")
    rate_window_s = param.Number(default=60.0, bounds=(1, None),
                                 doc="Window of the readings-per-second figure.")
    outline_tolerance = param.Number(default=0.004, bounds=(0, None),
                                     doc="Simplification of county outlines (degrees).")
    point_layer = param.Callable(
        default=None, allow_None=True,
        doc="Returns the risk map's shared point layer (None: build one from risk_points).")
    geography = param.ClassSelector(class_=CountyGeometry, default=None, allow_None=True,
                                    doc="The province's counties (built from the store when None).")
    command = param.Parameter(default=None, doc="The console's command source "
                              "(sources.command.source.CommandSource): grade, response, tasks "
                              "and report deadlines of the incidents under command.")

    def __init__(self, **params):
        super().__init__(**params)
        if self.geography is None:
            self.geography = CountyGeometry(self.store)
        self._lock = threading.Lock()
        self._snapshot: tuple[tuple, dict] | None = None  # (what it was built from, situation)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def _df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        return self.store.df(sql, params or {})

    # ------------------------------------------------------------------ the parts
    @_part("warnings")
    def _warnings_part(self):
        now = self.now_ms()
        active = self.active_warnings(now)
        return self._warning_kpis(now, active), self.warning_shapes(now, active)

    @_part("alarms")
    def _alarms_part(self):
        return self._alarm_kpis(self.now_ms()), self.open_alarms()

    @_part("hotspots")
    def _hotspots_part(self):
        now = self.now_ms()
        return self._window_kpis("hotspots", now), self.hotspots(now)

    @_part("quakes")
    def _quakes_part(self):
        now = self.now_ms()
        return self._window_kpis("quakes", now), self.quakes(now)

    @_part("ticker")
    def _ticker_part(self):
        return {}, self.ticker()

    @_part("incidents")
    def _incidents_part(self):
        now = self.now_ms()
        active = self.active_incidents(now)
        return self._incident_kpis(now, active), (active, self.incident_details(active))

    @_part("rejected")
    def _rejected_part(self):
        return self._rejected_kpis(self.now_ms()), None

    def situation(self, statuses: list[dict] | None = None, *, force: bool = False) -> dict:
        """Everything a board shows, shared by every page and read again part by part.

        A part (``PARTS``) is read again when the hub published an event of one of its
        topics after it was last read, or when it is older than ``max_age``; the feeds' own
        figures (readings per second, feeds connected) come from ``statuses`` at each call.
        ``force`` reads everything again. The same dict is returned while nothing changed.

        Keys: ``now_ms, kpis, ticker, warnings (patch data), alarms, hotspots, quakes,
        incidents, details`` (timeline and nearest resources of the first incidents).
        """
        with self._lock:
            if force:
                self.invalidate(*PARTS)
            parts = {"warnings": self._warnings_part(), "alarms": self._alarms_part(),
                     "hotspots": self._hotspots_part(), "quakes": self._quakes_part(),
                     "ticker": self._ticker_part(), "incidents": self._incidents_part(),
                     "rejected": self._rejected_part()}
            now = self.now_ms()
            feeds = self._feed_kpis(now, statuses)
            built_from = (*parts.values(), repr(feeds))
            snap = self._snapshot
            if snap is not None and all(a is b or (isinstance(a, str) and a == b)
                                        for a, b in zip(snap[0], built_from, strict=True)):
                return snap[1]
            kpis = {}
            for name in ("warnings", "alarms", "incidents", "hotspots", "quakes"):
                kpis.update(parts[name][0])
            kpis.update(feeds)
            kpis.update(parts["rejected"][0])
            incidents, details = parts["incidents"][1]
            data = {
                "now_ms": now,
                "kpis": kpis,
                "ticker": parts["ticker"][1],
                "warnings": parts["warnings"][1],
                "alarms": parts["alarms"][1],
                "hotspots": parts["hotspots"][1],
                "quakes": parts["quakes"][1],
                "incidents": incidents,
                "details": details,
            }
            self._snapshot = (built_from, data)
            return data
