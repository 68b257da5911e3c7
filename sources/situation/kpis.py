"""The board's KPIs: each figure now and 24 h ago, in a few aggregate queries.

Every query takes ``now`` in epoch milliseconds so tests and replays can ask "what did the
board show at time T". The queries the board repeats avoid window functions and joins
(LATEST_NOTE in :mod:`sources.situation.source`).
"""
from __future__ import annotations

import math
import time

import pandas as pd

from sources.base import query
from sources.levels import ALARM_LEVELS, LEVELS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class KpiQueries:
    """The KPI part of :class:`~sources.situation.source.SituationSource` (a mixin)."""

    def kpis(self, now_ms: int | None = None, statuses: list[dict] | None = None) -> dict:
        """Every KPI as ``{key: {"value": now, "before": 24 h ago}}``.

        Keys: ``warnings.<level>``, ``warnings``, ``alarms.<level>``, ``alarms``,
        ``alarms.unacked``, ``incidents``, ``hotspots``, ``quakes``, ``rate``,
        ``feeds`` (connected feeds; ``total`` says of how many), ``rejected``
        (quarantined messages in 24 h).
        """
        now = self.now_ms() if now_ms is None else int(now_ms)
        return {**self._warning_kpis(now, self.active_warnings(now)), **self._alarm_kpis(now),
                **self._incident_kpis(now, self.active_incidents(now)),
                **self._window_kpis("hotspots", now), **self._window_kpis("quakes", now),
                **self._feed_kpis(now, statuses), **self._rejected_kpis(now)}

    # Statistics leave drills out (an exercise is not a real warning, alarm or incident);
    # ``drill.<kind>`` counts what a running drill shows, so the wall can say so beside them.
    def _warning_kpis(self, now: int, active: pd.DataFrame) -> dict:
        """Warnings in force by level, now (``active``: :meth:`active_warnings`) and 24 h ago."""
        drill = active.drill_id.notna() if len(active) else active.level.isna()
        real = active[~drill]
        w_now = real.level.value_counts().to_dict() if len(real) else {}
        w_before = self._warning_levels_at(self._step(now - DAY_MS))
        out = {f"warnings.{lvl}": {"value": w_now.get(lvl, 0), "before": w_before.get(lvl, 0)}
               for lvl in LEVELS}
        out["warnings"] = {"value": sum(w_now.values()), "before": sum(w_before.values())}
        out["drill.warnings"] = {"value": int(drill.sum()), "before": None}
        return out

    def _alarm_kpis(self, now: int) -> dict:
        """Open alarms by level, unacknowledged and escalated ones, now and 24 h ago."""
        a = self._df(
            """
            SELECT level, drill_id IS NOT NULL AS drill,
              count(*) FILTER (WHERE state <> 'closed') AS open_now,
              count(*) FILTER (WHERE state = 'raised') AS unacked_now,
              count(*) FILTER (WHERE state = 'raised' AND escalated_at IS NOT NULL)
                 AS escalated_now,
              count(*) FILTER (WHERE epoch_ms(raised_at) <= $b
                 AND (closed_at IS NULL OR epoch_ms(closed_at) > $b)
                 AND (acked_at IS NULL OR epoch_ms(acked_at) > $b)
                 AND epoch_ms(escalated_at) <= $b) AS escalated_before,
              count(*) FILTER (WHERE epoch_ms(raised_at) <= $b
                 AND (closed_at IS NULL OR epoch_ms(closed_at) > $b)) AS open_before,
              count(*) FILTER (WHERE epoch_ms(raised_at) <= $b
                 AND (closed_at IS NULL OR epoch_ms(closed_at) > $b)
                 AND (acked_at IS NULL OR epoch_ms(acked_at) > $b)) AS unacked_before
            FROM alarms
            WHERE state <> 'closed' OR closed_at IS NULL OR epoch_ms(closed_at) > $b
            GROUP BY level, drill
            """, {"b": now - DAY_MS})
        drills = int(a.open_now[a.drill].sum())
        a = a[~a.drill].set_index("level")
        out = {"drill.alarms": {"value": drills, "before": None}}
        for lvl in ALARM_LEVELS:
            row = a.loc[lvl] if lvl in a.index else None
            out[f"alarms.{lvl}"] = {"value": int(row.open_now) if row is not None else 0,
                                    "before": int(row.open_before) if row is not None else 0}
        out["alarms"] = {"value": int(a.open_now.sum()), "before": int(a.open_before.sum())}
        out["alarms.unacked"] = {"value": int(a.unacked_now.sum()),
                                 "before": int(a.unacked_before.sum())}
        # red alarms unacknowledged past the escalation time: flagged on the wall
        out["alarms.escalated"] = {"value": int(a.escalated_now.sum()),
                                   "before": int(a.escalated_before.sum())}
        return out

    def _incident_kpis(self, now: int, active: pd.DataFrame) -> dict:
        """Active incidents now (``active``: :meth:`active_incidents`) and 24 h ago."""
        before = self._incidents_at(self._step(now - DAY_MS))
        drill = int(active.drill_id.notna().sum()) if len(active) else 0
        return {"incidents": {"value": len(active) - drill, "before": before},
                "drill.incidents": {"value": drill, "before": None}}

    def _window_kpis(self, table: str, now: int) -> dict:
        """Rows of ``hotspots`` or ``quakes`` in the last 24 h and in the 24 h before."""
        counts = self.store.arrow(
            f"SELECT count(*) FILTER (WHERE epoch_ms(ts) > $n - {DAY_MS}) AS now_n, "
            f"count(*) FILTER (WHERE epoch_ms(ts) > $n - {2 * DAY_MS} "
            f"AND epoch_ms(ts) <= $n - {DAY_MS}) AS before_n "
            f"FROM {table} WHERE epoch_ms(ts) > $n - {2 * DAY_MS} AND drill_id IS NULL",
            {"n": now}).to_pylist()[0]
        return {table: {"value": int(counts["now_n"]), "before": int(counts["before_n"])}}

    def _feed_kpis(self, now: int, statuses: list[dict] | None) -> dict:
        """Readings per second (the feeds' own rates, else counted in the store) and feeds."""
        window = int(self.rate_window_s * 1000)
        rate_now = None
        if statuses:
            rates = [s.get("rate_per_s") for s in statuses if s.get("rate_per_s") is not None]
            rate_now = float(sum(rates)) if rates else None
        if rate_now is None:
            rate_now = self._readings_between(now - window, now) / self.rate_window_s
        statuses = statuses or []
        return {"rate": {"value": round(rate_now, 1),
                         "before": round(self._rate_before(now - DAY_MS, window), 1)},
                "feeds": {"value": sum(1 for s in statuses if s.get("connected")),
                          "before": None, "total": len(statuses)}}

    def _rejected_kpis(self, now: int) -> dict:
        """Messages quarantined in the last 24 h and in the 24 h before."""
        rej = self.store.arrow(
            f"SELECT count(*) FILTER (WHERE epoch_ms(received_at) > $n - {DAY_MS}) AS now_n, "
            f"count(*) FILTER (WHERE epoch_ms(received_at) <= $n - {DAY_MS}) AS before_n "
            f"FROM quarantine WHERE epoch_ms(received_at) > $n - {2 * DAY_MS}",
            {"n": now}).to_pylist()[0]
        return {"rejected": {"value": int(rej["now_n"]), "before": int(rej["before_n"])}}

    # The figures of 24 h ago are read at the 10 s step of that moment, at most once per step:
    # that past does not change, while the events of today re-read the parts that show it
    # (an alarm re-reads the incident panels, with their 24-hours-ago count).
    @staticmethod
    def _step(before_ms: int) -> int:
        return before_ms - before_ms % 10_000

    @query(maxsize=4, table=False)
    def _warning_levels_at(self, step: int) -> dict[str, int]:
        return self._warning_levels(step, step)

    @query(maxsize=4, table=False)
    def _incidents_at(self, step: int) -> int:
        past = self.active_incidents(step, step)
        return int(past.drill_id.isna().sum()) if len(past) else 0

    def _rate_before(self, before_ms: int, window_ms: int) -> float:
        """Readings per second in the window ending at ``before_ms`` (24 h ago)."""
        return self._rate_at(self._step(before_ms), window_ms)

    @query(maxsize=4, table=False)
    def _rate_at(self, end: int, window_ms: int) -> float:
        return self._readings_between(end - window_ms, end) / (window_ms / 1000)

    def _readings_between(self, start_ms: int, end_ms: int) -> int:
        return int(self.store.scalar(
            "SELECT count(*) FROM readings WHERE ts > to_timestamp($s / 1000.0) "
            "AND ts <= to_timestamp($e / 1000.0)", {"s": start_ms, "e": end_ms}) or 0)

    def _warning_levels(self, at_ms: int, created_upto: int | None) -> dict[str, int]:
        df = self._current_warnings(at_ms, created_upto, columns="level")
        return df.level.value_counts().to_dict() if len(df) else {}

    def _current_warnings(self, at_ms: int, created_upto: int | None = None,
                          columns: str = "*") -> pd.DataFrame:
        """Warnings in force at ``at_ms``: latest version not a Cancel and not expired."""
        return self._df(
            f"""
            WITH cur AS (  -- latest version of each (arg_max, not a window: LATEST_NOTE)
              SELECT unnest(arg_max(w, w.version)) FROM warnings w
              WHERE $u::BIGINT IS NULL OR epoch_ms(w.created_at) <= $u::BIGINT
              GROUP BY w.warning_id)
            SELECT {columns} FROM cur
            WHERE msg_type <> 'Cancel' AND epoch_ms(expires) > $t
              AND ($u::BIGINT IS NULL OR drill_id IS NULL)  -- the past: real ones only
            """, {"t": at_ms, "u": created_upto})


def freshness(statuses: list[dict], now_s: float | None = None) -> dict:
    """Liveness of the feeds: ``last_message_at`` (epoch s or None), ``connected``, ``total``.

    Accepts ``last_message_at`` as epoch seconds, epoch milliseconds or an ISO string.
    """
    last = None
    for s in statuses:
        v = _epoch_s(s.get("last_message_at"))
        if v is not None and (last is None or v > last):
            last = v
    return {"last_message_at": last,
            "connected": sum(1 for s in statuses if s.get("connected")),
            "total": len(statuses),
            "age_s": None if last is None else max(0.0, (now_s or time.time()) - last)}


def _epoch_s(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        return value / 1000.0 if value > 1e11 else float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return pd.Timestamp(str(value)).timestamp()
    except (ValueError, TypeError):
        return None
