"""Timeline (事件时间线), case replay (案例推演) and the after-action review (总结评估).

Everything is read back from the store: the state of an incident at time T is its latest
version, checklist ticks, task states, reports and notes with ``acted_at <= T`` (rows written by
the command carry the acting time; the clock of the action). ``incident_state(id)`` with no
``at`` reads the latest rows whatever their time: that is what the live pages show, and
replaying any moment gives back what was shown then (tested).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from sources.geo import haversine_km

from .common import CommandError, aware, records
from .deadlines import report_timers

REPORTS_SQL = """
SELECT r.report_id, r.kind, f.first_at AS submitted_at, f.first_by, r.version, r.title, r.body,
       r.recipient, r.submitted_by AS version_by, r.submitted_at AS version_at
FROM (SELECT unnest(arg_max(r, r.version)) FROM command_reports r
      WHERE r.incident_id = $id AND ($at::TIMESTAMPTZ IS NULL OR r.submitted_at <= $at)
      GROUP BY r.report_id) r
JOIN (SELECT report_id, min(submitted_at) AS first_at, arg_min(submitted_by, version) AS first_by
      FROM command_reports WHERE incident_id = $id GROUP BY 1) f USING (report_id)
ORDER BY f.first_at, r.report_id
"""

PLAN_SQL = """
SELECT i.activation, i.item_no, i.plan_id, i.response_level, i.measure, i.measure_en, i.unit,
       i.within_min, i.opened_at, coalesce(t.done, FALSE) AS done, t.actor AS done_by,
       t.acted_at AS done_at
FROM command_plan_items i
LEFT JOIN (SELECT activation, item_no, arg_max(done, tick) AS done, arg_max(actor, tick) AS actor,
                  arg_max(acted_at, tick) AS acted_at
           FROM command_plan_ticks WHERE incident_id = $id
             AND ($at::TIMESTAMPTZ IS NULL OR acted_at <= $at) GROUP BY ALL) t
  USING (activation, item_no)
WHERE i.incident_id = $id AND i.activation = $activation
ORDER BY i.item_no
"""

#: fields whose change a timeline line names
WATCHED = ("title", "deaths", "missing", "injured", "loss_wan", "place", "county_code",
           "occurred_at", "learned_at", "wind_from_deg", "description")


class Replay:
    """Mixin of :class:`~sources.command.source.CommandSource`: state at T, timeline, review."""

    def versions(self, incident_id: str, at: datetime | None = None) -> list[dict]:
        """Every version of the incident (up to ``at``), oldest first."""
        return records(self.store.df(
            "SELECT * FROM command_incidents WHERE incident_id = $id "
            "AND ($at::TIMESTAMPTZ IS NULL OR acted_at <= $at) ORDER BY version",
            {"id": str(incident_id), "at": at}))

    def reports(self, incident_id: str, at: datetime | None = None) -> pd.DataFrame:
        """Reports of the incident, latest version of each (as they stood at ``at``)."""
        return self.store.df(REPORTS_SQL, {"id": str(incident_id), "at": at})

    def plan_items(self, incident_id: str, at: datetime | None = None,
                   activation: int | None = None) -> pd.DataFrame:
        """The checklist of the latest response launch (at ``at``) with who ticked what."""
        if activation is None:
            activation = self.store.scalar(
                "SELECT max(version) FROM command_incidents WHERE incident_id = $id AND "
                "change = 'response' AND ($at::TIMESTAMPTZ IS NULL OR acted_at <= $at)",
                {"id": str(incident_id), "at": at})
        return self.store.df(PLAN_SQL, {"id": str(incident_id), "at": at,
                                        "activation": -1 if activation is None
                                        else int(activation)})

    def notes(self, incident_id: str, at: datetime | None = None) -> pd.DataFrame:
        return self.store.df(
            "SELECT note_id, text, actor, acted_at FROM command_notes WHERE incident_id = $id "
            "AND ($at::TIMESTAMPTZ IS NULL OR acted_at <= $at) ORDER BY acted_at, note_id",
            {"id": str(incident_id), "at": at})

    def timers(self, incident_id: str, now: datetime | None = None, *,
               at: datetime | None = None) -> list:
        """The report timers of the incident at ``now`` (rows up to ``at``)."""
        now = aware(now) if now is not None else (at or self.now())
        reports = records(self.reports(incident_id, at)[["report_id", "kind", "submitted_at"]])
        return report_timers(self.versions(incident_id, at), reports, now, self.rules)

    def incident_state(self, incident_id: str, at: datetime | None = None,
                       now: datetime | None = None) -> dict | None:
        """Everything about the incident as it stood at ``at`` (None: as it is now).

        A dict of plain values: ``incident`` (the version), ``versions``, ``plan``,
        ``tasks``, ``reports``, ``timers``, ``notes``. None before the intake.
        """
        at = aware(at) if at is not None else None
        versions = self.versions(incident_id, at)
        if not versions:
            if at is None:
                raise CommandError("command.error.unknown_incident", "unknown incident: {id}",
                                   id=incident_id)
            return None
        now = at if at is not None else (aware(now) if now is not None else self.now())
        reports = self.reports(incident_id, at)
        timers = report_timers(versions, records(reports[["report_id", "kind",
                                                          "submitted_at"]]), now, self.rules)
        return {"incident": versions[-1], "versions": len(versions),
                "plan": records(self.plan_items(incident_id, at)),
                "tasks": records(self.tasks(incident_id, at)),
                "reports": records(reports), "timers": [t.as_dict() for t in timers],
                "notes": records(self.notes(incident_id, at))}

    # ------------------------------------------------------------------ timeline
    def timeline(self, incident_id: str, at: datetime | None = None, *,
                 nearby: bool = True) -> pd.DataFrame:
        """Every fact about the incident on one timeline, oldest first.

        Columns: ``at, kind, code, subject, detail, actor``. Kinds: intake, correct, grade,
        response, close (the incident's versions), plan, task, report, note, and — with
        ``nearby`` — alarm, warning, quake, hotspot and feed (the feed's own rows).
        """
        versions = self.versions(incident_id, at)
        if not versions:
            raise CommandError("command.error.unknown_incident", "unknown incident: {id}",
                               id=incident_id)
        rows = []
        prev = None
        for v in versions:
            code, detail = {"intake": (v["subtype"], v["grade"]),
                            "grade": (v["grade"], v["grade_reason"] or v["note"] or ""),
                            "response": (v["response_level"], v["plan_id"]),
                            "close": (v["status"], v["note"] or ""),
                            "correct": (v["grade"], _diff(prev, v))}[v["change"]]
            rows.append((v["acted_at"], v["change"], code, v["title"], detail, v["actor"]))
            prev = v
        for p in records(self.store.df(
                "SELECT t.acted_at, t.done, t.actor, t.note, i.measure FROM command_plan_ticks t "
                "JOIN command_plan_items i USING (incident_id, activation, item_no) "
                "WHERE t.incident_id = $id AND ($at::TIMESTAMPTZ IS NULL OR t.acted_at <= $at)",
                {"id": str(incident_id), "at": at})):
            rows.append((p["acted_at"], "plan", "done" if p["done"] else "undone", p["measure"],
                         p["note"] or "", p["actor"]))
        for s in records(self.store.df(
                "SELECT s.acted_at, s.state, s.actor, s.note, t.kind, t.resource_name, t.quantity, "
                "t.unit FROM command_task_states s JOIN command_tasks t USING (task_id) "
                "WHERE t.incident_id = $id AND ($at::TIMESTAMPTZ IS NULL OR s.acted_at <= $at)",
                {"id": str(incident_id), "at": at})):
            qty = "" if s["quantity"] is None else f"{s['quantity']:g}{s['unit'] or ''}"
            rows.append((s["acted_at"], "task", s["state"], s["resource_name"],
                         f"{s['kind']} {qty}".strip(), s["actor"]))
        for r in records(self.store.df(
                "SELECT submitted_at, kind, title, version, submitted_by FROM command_reports "
                "WHERE incident_id = $id AND ($at::TIMESTAMPTZ IS NULL OR submitted_at <= $at)",
                {"id": str(incident_id), "at": at})):
            rows.append((r["submitted_at"], "report", r["kind"], r["title"],
                         f"v{r['version']}", r["submitted_by"]))
        for n in records(self.notes(incident_id, at)):
            rows.append((n["acted_at"], "note", "", n["text"], "", n["actor"]))
        if nearby:
            rows.extend(self._nearby(versions, at))
        df = pd.DataFrame(rows, columns=["at", "kind", "code", "subject", "detail", "actor"])
        df["at"] = pd.to_datetime(df["at"], utc=True)
        return df.sort_values("at", kind="stable").reset_index(drop=True)

    def _nearby(self, versions: list[dict], at: datetime | None) -> list[tuple]:
        """Alarms (10 km), quakes (50 km), hotspots (10 km), warnings over the county and the
        feed's own rows, from an hour before the bureau learned of it to closure."""
        inc = versions[-1]
        lon, lat = inc["lon"], inc["lat"]
        start = min(v["learned_at"] for v in versions) - timedelta(hours=1)
        end = at or inc["closed_at"] or self.now()
        box = {"lon": lon, "lat": lat, "dx": 0.6, "dy": 0.5, "s": start, "e": end}
        out = []
        a = self.store.df(
            "SELECT a.raised_at AS at, a.level, a.kind, coalesce(i.name, a.sensor_id) AS name, "
            "i.lon, i.lat FROM alarms a JOIN installations i USING (installation_id) "
            "WHERE a.raised_at BETWEEN $s AND $e AND i.lon BETWEEN $lon - $dx AND $lon + $dx "
            "AND i.lat BETWEEN $lat - $dy AND $lat + $dy", box)
        for r in records(a[haversine_km(lon, lat, a["lon"], a["lat"]) <= 10]):
            out.append((r["at"], "alarm", r["level"], r["name"], r["kind"], "system"))
        q = self.store.df("SELECT ts AS at, quake_id, magnitude, lon, lat FROM quakes WHERE ts "
                          "BETWEEN $s AND $e AND lon BETWEEN $lon - $dx AND $lon + $dx AND lat "
                          "BETWEEN $lat - $dy AND $lat + $dy", box)
        for r in records(q[haversine_km(lon, lat, q["lon"], q["lat"]) <= 50]):
            out.append((r["at"], "quake", f"{r['magnitude']:.1f}", r["quake_id"], "", "feed"))
        h = self.store.df("SELECT ts AS at, hotspot_id, confidence, lon, lat FROM hotspots WHERE "
                          "ts BETWEEN $s AND $e AND lon BETWEEN $lon - $dx AND $lon + $dx AND "
                          "lat BETWEEN $lat - $dy AND $lat + $dy", box)
        for r in records(h[haversine_km(lon, lat, h["lon"], h["lat"]) <= 10]):
            out.append((r["at"], "hotspot", f"{r['confidence']:.0f}", r["hotspot_id"], "",
                        "feed"))
        for r in records(self.store.df(
                "SELECT created_at AS at, level, headline, msg_type, sender FROM warnings "
                "WHERE created_at BETWEEN $s AND $e AND list_contains(area_codes, $county)",
                {"s": start, "e": end, "county": inc["county_code"]})):
            out.append((r["at"], "warning", r["level"], r["headline"], r["msg_type"],
                        r["sender"]))
        for r in records(self.store.df(
                "SELECT ts AS at, level, title, status FROM incidents WHERE incident_id = $id "
                "AND feed <> 'command' AND ($at::TIMESTAMPTZ IS NULL OR ts <= $at)",
                {"id": inc["incident_id"], "at": at})):
            out.append((r["at"], "feed", r["level"], r["title"], r["status"], "feed"))
        return out

    def replay_times(self, incident_id: str) -> list[datetime]:
        """The moments the incident's own state changed, for a replay player's steps."""
        df = self.timeline(incident_id, nearby=False)
        return sorted({t.to_pydatetime() for t in df["at"]})

    # ------------------------------------------------------------------ after-action review
    def after_action(self, incident_id: str, now: datetime | None = None) -> dict:
        """总结评估: milestones and durations, reports late or missing, resources used.

        Milestones: occurred, learned (reported to the bureau), response launched, first team
        on scene, closed; ``durations`` are minutes between consecutive ones (None when one
        is missing). Works on open incidents too (the review so far).
        """
        state = self.incident_state(incident_id, now=now)
        inc, tasks = state["incident"], pd.DataFrame(state["tasks"])
        versions = self.versions(incident_id)
        launched = next((v["acted_at"] for v in versions if v["change"] == "response"), None)
        on_scene = None
        if len(tasks):
            teams = tasks[(tasks.kind == "team") & tasks.on_scene_at.notna()]
            on_scene = None if teams.empty else pd.Timestamp(teams.on_scene_at.min()
                                                             ).to_pydatetime()
        milestones = [("occurred", inc["occurred_at"]), ("learned", inc["learned_at"]),
                      ("response", launched), ("first_on_scene", on_scene),
                      ("closed", inc["closed_at"])]
        durations = []
        for (a, ta), (b, tb) in zip(milestones, milestones[1:], strict=False):
            minutes = None if ta is None or tb is None else (tb - ta).total_seconds() / 60
            durations.append({"from": a, "to": b, "minutes": minutes})
        total = None if inc["closed_at"] is None else \
            (inc["closed_at"] - inc["learned_at"]).total_seconds() / 60
        used = []
        if len(tasks):
            for kind, grp in tasks.groupby("kind", sort=False):
                used.append({"kind": kind, "tasks": len(grp),
                             "done": int((grp.state == "done").sum()),
                             "cancelled": int((grp.state == "cancelled").sum()),
                             "quantity": float(np.nansum(grp.quantity.astype(float))),
                             "names": "、".join(grp.resource_name.astype(str))})
        plan = pd.DataFrame(state["plan"])
        return {"incident": inc, "milestones": milestones, "durations": durations,
                "total_minutes": total,
                "late_reports": [t for t in state["timers"]
                                 if t["state"] in ("overdue", "late")],
                "timers": state["timers"], "resources": used,
                "plan_done": int(plan.done.sum()) if len(plan) else 0,
                "plan_items": len(plan), "reports": len(state["reports"]),
                "notes": len(state["notes"])}


def _diff(prev: dict | None, new: dict) -> str:
    """What a correction changed, as ``field old→new`` pairs."""
    if prev is None:
        return ""
    parts = []
    for f in WATCHED:
        a, b = prev.get(f), new.get(f)
        if a != b:
            parts.append(f"{f} {_short(a)}→{_short(b)}")
    return "; ".join(parts)


def _short(v) -> str:
    if isinstance(v, datetime):
        return v.strftime("%m-%d %H:%M")
    if isinstance(v, float):
        return f"{v:g}"
    text = "" if v is None else str(v)
    return text if len(text) <= 24 else text[:23] + "…"
