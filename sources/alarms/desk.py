"""The duty officers' alarm desk: lifecycle actions, the open-alarm queue, reports, quarantine.

Lifecycle: ``raised`` -> ``acknowledged`` (who, when) -> ``disposed`` (note required) ->
``closed``. Each step is one conditional ``UPDATE ... WHERE state = <previous>`` in a
transaction, so of two officers acting at once exactly one wins and the other gets an
:class:`AlarmActionError` naming who did it. Every action is stored in ``alarm_actions``
and published on the hub topic ``alarm`` (``change`` = the action) so every open page
sees it. A red alarm still ``raised`` (unacknowledged) ``escalate_after_min`` minutes after
it was raised is escalated: ``escalated_at`` set, action ``escalate`` by ``system``.

Report definitions (per enterprise or county, alarms raised in ``[start, end)``):

- *duration* (报警时长): raised -> cleared (the value came back and held); for an alarm not
  cleared, to its close, else to ``min(now, end)``;
- *time to acknowledge*: raised -> acknowledged, over acknowledged alarms;
- *time to clear* (消警时间): raised -> closed by an officer, over closed alarms.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import param
import pyarrow as pa

from sources.alarms.engine import ACTION_SCHEMA, SYSTEM
from sources.base import Source, query
from sources.levels import ALARM_SEVERITY

STEPS = {  # action: (from state, to state, by column, at column)
    "acknowledge": ("raised", "acknowledged", "acked_by", "acked_at"),
    "dispose": ("acknowledged", "disposed", "disposed_by", "disposed_at"),
    "close": ("disposed", "closed", "closed_by", "closed_at"),
}
ORDER = {"raised": 0, "acknowledged": 1, "disposed": 2, "closed": 3}

ALARM_SELECT = """
SELECT a.alarm_id, a.sensor_id, a.kind, a.level, a.state,
       CASE a.level WHEN 'red' THEN 3 WHEN 'orange' THEN 2 ELSE 1 END AS severity,
       a.raised_at, a.trigger_value, a.peak_value, a.peak_at, a.cleared_at,
       a.acked_by, a.acked_at, a.disposed_by, a.disposed_at, a.disposal_note,
       a.closed_by, a.closed_at, a.escalated_at, a.county_code, c.name AS county,
       coalesce(e.name, st.name, a.sensor_id) AS enterprise,
       coalesce(i.name, st.name, '') AS installation,
       s.kind AS sensor_kind, s.unit,
       CASE a.kind WHEN 'hi' THEN s.hi WHEN 'hi_hi' THEN s.hi_hi
                   WHEN 'lo' THEN s.lo WHEN 'lo_lo' THEN s.lo_lo END AS threshold
FROM alarms a
LEFT JOIN sensors s ON s.sensor_id = a.sensor_id
LEFT JOIN enterprises e ON e.enterprise_id = a.enterprise_id
LEFT JOIN installations i ON i.installation_id = a.installation_id
LEFT JOIN stations st ON st.station_id = s.station_id
LEFT JOIN counties c ON c.county_code = a.county_code
"""


class AlarmActionError(Exception):
    """An action that cannot be done: ``key`` names the label, ``info`` fills it in."""

    def __init__(self, key: str, **info: Any):
        self.key, self.info = key, info
        super().__init__(f"{key}: {info}")


def _now() -> datetime:
    return datetime.now(UTC)


class AlarmSource(Source):
    """Open alarms, officers' actions on them, alarm reports and the quarantine."""

    source_type: ClassVar[str] = "alarms"

    escalate_after_min = param.Number(
        default=15.0, bounds=(0, None),
        doc="Minutes after which a red alarm still unacknowledged is escalated.")
    max_rows = param.Integer(default=2000, bounds=(1, None),
                             doc="Most open alarms loaded into a queue.")

    # ------------------------------------------------------------------ queries
    def open_alarms(self, ids: list[int] | None = None) -> pd.DataFrame:
        """Alarms not closed (or the given ids, in any state), by severity then newest first."""
        if ids is not None:
            where, params = "WHERE list_contains(?, a.alarm_id)", [list(map(int, ids))]
        else:
            where, params = "WHERE a.state <> 'closed'", []
        return self.store.df(
            f"{ALARM_SELECT} {where} ORDER BY severity DESC, a.raised_at DESC LIMIT ?",
            [*params, self.max_rows],
        )

    @query()
    def sensor_info(self) -> pd.DataFrame:
        """Per sensor: enterprise (or station), installation, county, kind, unit, limits.

        The registry is static while the console runs: read once per source.
        """
        return self.store.df(
            "SELECT s.sensor_id, coalesce(e.name, st.name, s.sensor_id) AS enterprise, "
            "coalesce(i.name, st.name, '') AS installation, c.name AS county, "
            "s.kind AS sensor_kind, s.unit, s.hi, s.hi_hi, s.lo, s.lo_lo FROM sensors s "
            "LEFT JOIN enterprises e ON e.enterprise_id = s.enterprise_id "
            "LEFT JOIN installations i ON i.installation_id = s.installation_id "
            "LEFT JOIN stations st ON st.station_id = s.station_id "
            "LEFT JOIN counties c ON c.county_code = s.county_code"
        ).set_index("sensor_id")

    def rows_of_raised(self, changes: list[dict]) -> pd.DataFrame:
        """Queue rows (as :meth:`open_alarms`) of the engine's ``raise`` changes, without a
        query: the change carries the alarm, the cached registry the names and limits."""
        if not changes:
            return self.open_alarms([])
        df = pd.DataFrame(changes)
        info = self.sensor_info().reindex(df["sensor_id"])
        for col in ("enterprise", "installation", "county", "sensor_kind", "unit"):
            df[col] = info[col].to_numpy()
        kind = df["kind"].to_numpy()
        df["threshold"] = np.select([kind == k for k in ("hi", "hi_hi", "lo", "lo_lo")],
                                    [info[k].to_numpy() for k in ("hi", "hi_hi", "lo", "lo_lo")],
                                    default=np.nan)
        df["severity"] = df["level"].map(ALARM_SEVERITY).fillna(1).astype(int)
        for col in ("acked_by", "acked_at", "disposed_by", "disposed_at", "disposal_note",
                    "closed_by", "closed_at", "escalated_at", "cleared_at"):
            if col not in df:
                df[col] = None
        return df

    def alarm(self, alarm_id: int) -> dict | None:
        """One alarm as a dict (None when it does not exist)."""
        df = self.open_alarms([alarm_id])
        return None if df.empty else df.iloc[0].to_dict()

    def actions(self, alarm_id: int) -> pd.DataFrame:
        """The history of an alarm, oldest first."""
        return self.store.df(
            "SELECT action, actor, acted_at, note FROM alarm_actions WHERE alarm_id = ? "
            "ORDER BY acted_at, action", [int(alarm_id)])

    def counties(self) -> pd.DataFrame:
        """``county_code, name`` of every county, for filters."""
        return self.store.df("SELECT county_code, name FROM counties ORDER BY county_code")

    # ------------------------------------------------------------------ lifecycle
    def acknowledge(self, alarm_id: int, user: str, *, at: datetime | None = None) -> dict:
        """Acknowledge a raised alarm; raises :class:`AlarmActionError` if someone did first."""
        return self._step("acknowledge", alarm_id, user, None, at)

    def dispose(self, alarm_id: int, user: str, note: str, *, at: datetime | None = None) -> dict:
        """Record the disposal of an acknowledged alarm (a note saying what was done)."""
        if not (note or "").strip():
            raise AlarmActionError("alarm.err.note_required")
        return self._step("dispose", alarm_id, user, note.strip(), at)

    def close(self, alarm_id: int, user: str, *, at: datetime | None = None) -> dict:
        """Close (消警) a disposed alarm."""
        return self._step("close", alarm_id, user, None, at)

    def _step(self, action: str, alarm_id: int, user: str, note: str | None,
              at: datetime | None) -> dict:
        src, dst, by_col, at_col = STEPS[action]
        at = at or _now()
        user = user or "anonymous"
        extra = ", disposal_note = ?" if action == "dispose" else ""
        params: list[Any] = [dst, user, at, *([note] if action == "dispose" else []),
                             int(alarm_id), src]
        with self.store.transaction() as cur:
            won = cur.execute(
                f"UPDATE alarms SET state = ?, {by_col} = ?, {at_col} = ?{extra} "
                "WHERE alarm_id = ? AND state = ? RETURNING alarm_id", params).fetchall()
            if won:
                self.store.insert("alarm_actions", pa.Table.from_pylist(
                    [{"alarm_id": int(alarm_id), "action": action, "actor": user,
                      "acted_at": at, "note": note}], schema=ACTION_SCHEMA), cur=cur)
            else:
                row = cur.execute(
                    f"SELECT state, {by_col}, {at_col} FROM alarms WHERE alarm_id = ?",
                    [int(alarm_id)]).fetchone()
        if not won:
            if row is None:
                raise AlarmActionError("alarm.err.not_found", alarm_id=alarm_id)
            state, by, when = row
            if ORDER[state] >= ORDER[dst]:
                raise AlarmActionError(f"alarm.err.already_{action}", alarm_id=alarm_id,
                                       by=by, at=when, state=state)
            raise AlarmActionError("alarm.err.wrong_state", alarm_id=alarm_id, state=state,
                                   action=action)
        change = {"alarm_id": int(alarm_id), "change": action, "state": dst,
                  by_col: user, at_col: at}
        if action == "dispose":
            change["disposal_note"] = note
        self._publish([change])
        return change

    def escalate_overdue(self, now: datetime | None = None) -> list[int]:
        """Escalate red alarms unacknowledged for more than ``escalate_after_min`` minutes."""
        now = now or _now()
        cutoff = now - timedelta(minutes=self.escalate_after_min)
        with self.store.transaction() as cur:
            ids = [r[0] for r in cur.execute(
                "UPDATE alarms SET escalated_at = ? WHERE level = 'red' AND state = 'raised' "
                "AND escalated_at IS NULL AND raised_at < ? RETURNING alarm_id",
                [now, cutoff]).fetchall()]
            if ids:
                self.store.insert("alarm_actions", pa.Table.from_pylist(
                    [{"alarm_id": i, "action": "escalate", "actor": SYSTEM, "acted_at": now,
                      "note": None} for i in ids], schema=ACTION_SCHEMA), cur=cur)
        if ids:
            self._publish([{"alarm_id": i, "change": "escalate", "escalated_at": now}
                           for i in sorted(ids)])
        return sorted(ids)

    def _publish(self, changes: list[dict]) -> None:
        if self.hub is not None:
            self.hub.publish("alarm", changes)

    # ------------------------------------------------------------------ report
    def report(self, by: str = "enterprise", start: datetime | None = None,
               end: datetime | None = None, *, now: datetime | None = None,
               scope: str | None = None, drills: bool = False) -> pd.DataFrame:
        """Alarms raised in ``[start, end)`` per enterprise or county.

        Columns: ``name`` (and ``county`` per enterprise), ``alarms``, ``red``,
        ``total_duration_min``, ``mean_duration_min``, ``mean_ack_min``, ``mean_clear_min``
        (definitions in the module docstring). Largest count first. ``scope``: a county-code
        prefix (a city's or a county's alarms only); exercises are left out unless ``drills``.
        """
        if by not in ("enterprise", "county"):
            raise ValueError("by must be 'enterprise' or 'county'")
        now = now or _now()
        end = end or now
        start = start or (end - timedelta(days=7))
        group = ("enterprise, county" if by == "enterprise" else "county")
        name = "enterprise AS name, county" if by == "enterprise" else "county AS name"
        return self.store.df(
            f"""
            WITH a AS ({ALARM_SELECT} WHERE a.raised_at >= ? AND a.raised_at < ?
                       AND starts_with(coalesce(a.county_code, ''), ?)
                       AND (? OR a.drill_id IS NULL))
            SELECT {name}, count(*) AS alarms,
                   count(*) FILTER (WHERE level = 'red') AS red,
                   sum(dur) / 60 AS total_duration_min, avg(dur) / 60 AS mean_duration_min,
                   avg(ack) / 60 AS mean_ack_min, avg(clr) / 60 AS mean_clear_min
            FROM (SELECT *,
                    epoch(coalesce(cleared_at, closed_at, least(?::TIMESTAMPTZ, ?::TIMESTAMPTZ)))
                      - epoch(raised_at) AS dur,
                    epoch(acked_at) - epoch(raised_at) AS ack,
                    epoch(closed_at) - epoch(raised_at) AS clr
                  FROM a)
            GROUP BY {group} ORDER BY alarms DESC, name
            """,
            [start, end, scope or "", bool(drills), now, end],
        )

    # ------------------------------------------------------------------ quarantine
    def quarantine(self, reason: str | None = None, *, limit: int = 500) -> pd.DataFrame:
        """Rejected feed messages, latest first (``raw`` cut at 2,000 characters)."""
        return self.store.df(
            "SELECT received_at, feed, reason, left(raw, 2000) AS raw FROM quarantine "
            "WHERE ? IS NULL OR reason = ? ORDER BY received_at DESC LIMIT ?",
            [reason, reason, int(limit)])

    def quarantine_reasons(self) -> list[str]:
        """The distinct rejection reasons seen, most frequent first."""
        return self.store.arrow(
            "SELECT reason FROM quarantine GROUP BY reason ORDER BY count(*) DESC, reason"
        ).column(0).to_pylist()
