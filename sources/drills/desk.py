"""Exercises (应急演练) on the real console: which drill runs, its rows, the officers'
response, and one purge that leaves real records untouched.

A drill's messages come through a feed like any other, each marked ``"exercise": true`` with
its ``drill_id``; the ingest stores the drill on every row (readings, hotspots, quakes,
warnings, incidents), the alarm engine on the alarms those readings raise, and the writer
records the drill (first and last message) in ``drills``. Officers' own warnings made for a
drill carry it too. So a drill is one key across the store: :meth:`DrillSource.counts`
finds its rows, :meth:`DrillSource.review` measures the response, :meth:`DrillSource.purge`
deletes exactly those rows. The demo feed plays scenarios and is started, paused, resumed
and stopped through :meth:`DrillSource.control` (its exercise desk on loopback).
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import pandas as pd
import param

from sources.base import Source, query

#: Tables whose rows carry the drill they were born of.
DRILL_TABLES = ("readings", "hotspots", "quakes", "warnings", "incidents", "alarms")
#: The command tables of an exercise's incidents (``command_incidents.drill_id``), children
#: first; ``command_task_states`` goes with ``command_tasks``.
COMMAND_TABLES = ("command_plan_ticks", "command_plan_items", "command_commitments",
                  "command_reports", "command_notes", "command_task_states", "command_tasks",
                  "command_incidents")
_DRILL_INCIDENTS = "SELECT incident_id FROM command_incidents WHERE drill_id = ?"
#: A drill whose last message is older than this (s) is over, unless the desk says it runs.
ACTIVE_S = 120.0


class DrillError(ValueError):
    """A drill action refused; ``key`` is an i18n label, ``fmt`` its values."""

    def __init__(self, key: str, message: str, **fmt):
        super().__init__(message.format(**fmt) if fmt else message)
        self.key, self.fmt = key, fmt


class DrillSource(Source):
    """Drills: the running one, every past one, their rows, review and purge."""

    source_type: ClassVar[str] = "drills"

    control = param.Callable(
        default=None, allow_None=True,
        doc="``control(path, method=..., **params) -> dict``: the demo feed's exercise desk "
            "(:meth:`sources.ingest.demo.DemoFeed.control`); None when no feed plays drills.")
    active_s = param.Number(default=ACTIVE_S, bounds=(0, None),
                            doc="Seconds after its last message a drill counts as over.")

    # ------------------------------------------------------------------ what runs
    @query(topics=("drill",))
    def drills(self) -> pd.DataFrame:
        """Every drill seen, newest first."""
        return self.store.df(
            "SELECT drill_id, scenario, title, started_at, started_by, last_seen_at, "
            "ended_at, purged_at, purged_by, purged_rows FROM drills "
            "ORDER BY started_at DESC")

    @query(max_age=2.0, table=False)
    def _desk_status(self) -> dict | None:
        if self.control is None:
            return None
        try:
            return self.control("scenario/status")
        except Exception:  # noqa: BLE001 - a desk that does not answer plays nothing
            return None

    def active(self) -> dict | None:
        """The drill running now: ``drill_id, scenario, title, state, position_s,
        duration_s`` (from the demo feed's desk, else from the last messages), or None."""
        desk = self._desk_status()
        if desk and desk.get("state") in ("running", "paused") and desk.get("drill_id"):
            return {"drill_id": desk["drill_id"], "scenario": desk.get("name"),
                    "title": desk.get("title") or desk.get("name"),
                    "state": desk["state"], "position_s": desk.get("position_s"),
                    "duration_s": desk.get("duration_s")}
        # the desk said this drill is over (stopped, finished): its last messages are not
        # a sign of life (they may be only seconds old)
        over = {desk["drill_id"]} if desk and desk.get("drill_id") else set()
        df = self.drills()
        if not len(df):
            return None
        now = pd.Timestamp.now(tz="UTC")
        live = df[df.purged_at.isna() & df.ended_at.isna() & df.last_seen_at.notna()
                  & ~df.drill_id.isin(over)
                  & ((now - df.last_seen_at).dt.total_seconds() < self.active_s)]
        if not len(live):
            return None
        row = live.iloc[0]
        return {"drill_id": row.drill_id, "scenario": row.scenario,
                "title": row.title or row.scenario or row.drill_id, "state": "running",
                "position_s": (now - row.started_at).total_seconds(), "duration_s": None}

    def scenarios(self) -> list[dict]:
        """The scenarios the desk can play (``name, title, steps, duration_s, ok, error``)."""
        if self.control is None:
            return []
        return self.control("scenarios").get("scenarios", [])

    # ------------------------------------------------------------------ control
    def start(self, name: str, *, actor: str, speed: float = 1.0) -> dict:
        """Start scenario ``name`` on the desk; the drill is recorded as ``actor``'s."""
        status = self._act("scenario/start", name=name, speed=speed)
        drill = status.get("drill_id")
        if drill:  # recording it tells the pages (on every process, in distributed mode)
            self.record_start(drill, status.get("name"), status.get("title"), actor=str(actor))
        return status

    def record_start(self, drill_id: str, scenario: str | None, title: str | None, *,
                     actor: str, now: datetime | None = None) -> None:
        """Record who started drill ``drill_id`` (the desk started it; its first messages
        may have recorded the drill already)."""
        with self.store.transaction() as cur:
            cur.execute(
                "INSERT INTO drills (drill_id, scenario, title, started_at, started_by) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (drill_id) DO UPDATE SET "
                "started_by = excluded.started_by, title = excluded.title",
                [drill_id, scenario, title, now or datetime.now(UTC), str(actor)])
        self._published({"drill_id": drill_id, "state": "started"})  # on every process

    def pause(self) -> dict:
        return self._published(self._act("scenario/pause"))

    def resume(self) -> dict:
        return self._published(self._act("scenario/resume"))

    def stop(self) -> dict:
        """Stop the running drill; it is over from now on (its last messages may follow)."""
        running = self.active()
        status = self._act("scenario/stop")
        drill = (running or {}).get("drill_id") or status.get("drill_id")
        if drill:  # recording it tells the pages
            self.record_stop(drill)
            return status
        return self._published(status)

    def record_stop(self, drill_id: str, *, now: datetime | None = None) -> None:
        """Record that drill ``drill_id`` is over (the desk stopped it)."""
        with self.store.transaction() as cur:
            cur.execute("UPDATE drills SET ended_at = ? WHERE drill_id = ?",
                        [now or datetime.now(UTC), drill_id])
        self._published({"drill_id": drill_id, "state": "stopped"})  # on every process

    def _act(self, path: str, **params) -> dict:
        if self.control is None:
            raise DrillError("drill.err.no_desk", "no feed here plays drills")
        from sources.ingest.demo import ControlError

        try:
            return self.control(path, method="POST", **params)
        except ControlError as exc:
            raise DrillError("drill.err.desk", "{message}", message=exc.message) from None

    def _published(self, status: dict) -> dict:
        self.invalidate()
        if self.hub is not None:
            self.hub.publish("drill", [status])
        return status

    # ------------------------------------------------------------------ rows
    def counts(self, drill_id: str) -> dict[str, int]:
        """Rows of each table born of ``drill_id`` (``alarm_actions``: on its alarms)."""
        out = {t: int(self.store.scalar(f"SELECT count(*) FROM {t} WHERE drill_id = ?",
                                        [drill_id]) or 0) for t in DRILL_TABLES}
        out["alarm_actions"] = int(self.store.scalar(
            "SELECT count(*) FROM alarm_actions WHERE alarm_id IN "
            "(SELECT alarm_id FROM alarms WHERE drill_id = ?)", [drill_id]) or 0)
        for table in COMMAND_TABLES:
            out[table] = int(self.store.scalar(_command_rows("count(*)", table),
                                               [drill_id]) or 0)
        return out

    def review(self, drill_id: str) -> pd.DataFrame:
        """How the officers responded, one row per thing the drill asked of them.

        Columns ``kind, what, level, at, by, response, response_s``: each alarm (time to
        acknowledge, and who; disposal and close), each officer warning issued for the
        drill (time from the drill's start), each incident (time from the drill's start).
        """
        start = self.store.scalar("SELECT started_at FROM drills WHERE drill_id = ?",
                                  [drill_id])
        alarms = self.store.df(
            "SELECT 'alarm' AS kind, sensor_id AS what, level, raised_at AS at, "
            "acked_by AS by, acked_at, disposed_at, closed_at, "
            "epoch(acked_at) - epoch(raised_at) AS response_s "
            "FROM alarms WHERE drill_id = ? ORDER BY raised_at", [drill_id])
        alarms["response"] = [
            "acknowledged" if pd.notna(a) else "not acknowledged" for a in alarms.acked_at]
        warnings = self.store.df(
            "SELECT 'warning' AS kind, headline AS what, level, created_at AS at, "
            "sender AS by, msg_type AS response, "
            "epoch(created_at) - epoch(CAST(? AS TIMESTAMPTZ)) AS response_s "
            "FROM warnings WHERE drill_id = ? AND source = 'officer' ORDER BY created_at",
            [start, drill_id])
        incidents = self.store.df(
            "SELECT 'incident' AS kind, arg_max(title, ts) AS what, "
            "arg_max(level, ts) AS level, min(ts) AS at, "
            "NULL::VARCHAR AS by, arg_max(status, ts) AS response, "
            "epoch(min(ts)) - epoch(CAST(? AS TIMESTAMPTZ)) AS response_s "
            "FROM incidents WHERE drill_id = ? AND feed <> 'command' GROUP BY incident_id "
            "ORDER BY 4", [start, drill_id])
        commanded = self.store.df(
            "SELECT 'command' AS kind, arg_min(title, version) AS what, "
            "arg_max(grade, version) AS level, min(acted_at) AS at, "
            "arg_min(actor, version) AS by, arg_max(status, version) AS response, "
            "epoch(min(acted_at)) - epoch(CAST(? AS TIMESTAMPTZ)) AS response_s "
            "FROM command_incidents WHERE drill_id = ? GROUP BY incident_id ORDER BY 4",
            [start, drill_id])
        dispatched = self.store.df(
            "SELECT 'dispatch' AS kind, t.kind || ': ' || t.resource_name AS what, "
            "NULL::VARCHAR AS level, t.created_at AS at, t.created_by AS by, "
            "(SELECT arg_max(s.state, s.seq) FROM command_task_states s "
            " WHERE s.task_id = t.task_id) AS response, "
            "epoch(t.created_at) - epoch(CAST(? AS TIMESTAMPTZ)) AS response_s "
            f"FROM command_tasks t WHERE t.incident_id IN ({_DRILL_INCIDENTS}) ORDER BY 4",
            [start, drill_id])
        cols = ["kind", "what", "level", "at", "by", "response", "response_s"]
        frames = [f[cols] for f in (alarms, warnings, incidents, commanded, dispatched)
                  if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)

    def summary(self, drill_id: str) -> dict[str, Any]:
        """Headline figures of the response: alarms raised and acknowledged, the median and
        longest time to acknowledge, officer warnings and their first time."""
        rv = self.review(drill_id)
        alarms = rv[rv.kind == "alarm"]
        acked = alarms.response_s.dropna()
        warned = rv[rv.kind == "warning"].response_s.dropna()
        return {"alarms": len(alarms), "acknowledged": len(acked),
                "ack_median_s": float(acked.median()) if len(acked) else None,
                "ack_max_s": float(acked.max()) if len(acked) else None,
                "officer_warnings": len(warned),
                "first_warning_s": float(warned.min()) if len(warned) else None,
                "incidents": int((rv.kind == "incident").sum()),
                "commanded": int((rv.kind == "command").sum()),
                "first_command_s": _first(rv, "command"),
                "dispatches": int((rv.kind == "dispatch").sum()),
                "first_dispatch_s": _first(rv, "dispatch")}

    def review_csv(self, drill_id: str) -> bytes:
        """The review as CSV (UTF-8 with BOM, opens in Excel)."""
        buf = io.StringIO()
        self.review(drill_id).to_csv(buf, index=False)
        return buf.getvalue().encode("utf-8-sig")

    # ------------------------------------------------------------------ purge
    def purge(self, drill_id: str, *, actor: str,
              on_alarms: Callable[[list[int]], None] | None = None,
              now: datetime | None = None) -> dict[str, int]:
        """Delete every row born of ``drill_id`` in one transaction; real rows stay.

        Refused while the drill runs (stop it first) and for a drill never seen. The
        drill's own record stays, marked purged (who, when, how many rows). Returns the
        rows deleted per table. ``on_alarms`` is told the purged alarm ids (the engine
        forgets them).
        """
        known = self.store.scalar("SELECT count(*) FROM drills WHERE drill_id = ?", [drill_id])
        if not known:
            raise DrillError("drill.err.unknown", "no drill {drill_id}", drill_id=drill_id)
        running = self.active()
        if running is not None and running["drill_id"] == drill_id:
            raise DrillError("drill.err.running", "stop drill {drill_id} before purging it",
                             drill_id=drill_id)
        alarm_ids = [] if on_alarms is None else self.store.arrow(
            "SELECT alarm_id FROM alarms WHERE drill_id = ?", [drill_id]).column(0).to_pylist()
        deleted = self.purge_rows(drill_id, actor=actor, now=now)
        if alarm_ids:
            on_alarms(alarm_ids)
        return deleted

    def purge_rows(self, drill_id: str, *, actor: str,
                   now: datetime | None = None) -> dict[str, int]:
        """The purge itself (:meth:`purge` checks first that the drill is not running: the
        desk's answer, which only the officer's own process asks): one transaction, then
        every page is told."""
        if not self.store.scalar("SELECT count(*) FROM drills WHERE drill_id = ?", [drill_id]):
            raise DrillError("drill.err.unknown", "no drill {drill_id}", drill_id=drill_id)
        deleted: dict[str, int] = {}
        with self.store.transaction() as cur:
            alarm_ids = [r[0] for r in cur.execute(
                "SELECT alarm_id FROM alarms WHERE drill_id = ?", [drill_id]).fetchall()]
            commanded = [r[0] for r in cur.execute(
                f"SELECT DISTINCT incident_id FROM ({_DRILL_INCIDENTS})", [drill_id]).fetchall()]
            deleted["alarm_actions"] = cur.execute(
                "DELETE FROM alarm_actions WHERE alarm_id IN "
                "(SELECT alarm_id FROM alarms WHERE drill_id = ?)", [drill_id]).fetchone()[0]
            for table in COMMAND_TABLES:  # before incidents: the ids come from there
                deleted[table] = cur.execute(_command_rows("DELETE", table),
                                             [drill_id]).fetchone()[0]
            for table in DRILL_TABLES:
                deleted[table] = cur.execute(f"DELETE FROM {table} WHERE drill_id = ?",
                                             [drill_id]).fetchone()[0]
            cur.execute("UPDATE drills SET purged_at = ?, purged_by = ?, purged_rows = ? "
                        "WHERE drill_id = ?", [now or datetime.now(UTC), str(actor),
                                               sum(deleted.values()), drill_id])
        self.invalidate()
        if self.hub is not None:  # every page re-reads what it showed of the drill
            gone = [{"alarm_id": a, "state": "closed", "change": "purge"} for a in alarm_ids]
            if gone:
                self.hub.publish("alarm", gone)
            for topic in ("warning", "incident", "quake", "hotspot"):
                self.hub.publish(topic, [{"drill_id": drill_id, "change": "purge"}])
            if commanded:  # the command pages showing them read again
                self.hub.publish("command", [{"incident_id": i, "change": "purge",
                                              "drill_id": drill_id} for i in commanded])
            self.hub.publish("drill", [{"drill_id": drill_id, "state": "purged",
                                        "at": time.time()}])
        return deleted


def _command_rows(verb: str, table: str) -> str:
    """``SELECT count(*)`` or ``DELETE`` of ``table``'s rows of a drill's command incidents
    (one parameter: the drill)."""
    head = f"SELECT {verb} FROM {table}" if verb != "DELETE" else f"DELETE FROM {table}"
    if table == "command_incidents":
        return f"{head} WHERE drill_id = ?"
    if table == "command_task_states":
        return (f"{head} WHERE task_id IN (SELECT task_id FROM command_tasks "
                f"WHERE incident_id IN ({_DRILL_INCIDENTS}))")
    return f"{head} WHERE incident_id IN ({_DRILL_INCIDENTS})"


def _first(review: pd.DataFrame, kind: str) -> float | None:
    """Seconds from the drill's start to the first row of ``kind``."""
    seconds = review[review.kind == kind].response_s.dropna()
    return float(seconds.min()) if len(seconds) else None
