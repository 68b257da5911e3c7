"""The command source: grade, response and plan, notes, closure, the incidents' versions, and
the wall's list.

Intake and corrections (:mod:`.intake`), tasks (:mod:`.tasks`), decision support
(:mod:`.support`), reports (:mod:`.reports`) and the timeline / replay / after-action review
(:mod:`.replay`) are mixins of the one :class:`CommandSource`, so a page or a notebook holds
one object.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import ClassVar

import duckdb
import pandas as pd
import param
import pyarrow as pa

from sources.base import Source, query
from sources.geo import CountyGeometry
from sources.inventory.common import actor_name, utc_now
from sources.inventory.experts import ExpertSource
from sources.inventory.materials import MaterialSource

from .catalog import GRADE_COLOR, GRADES, RESPONSE_LEVELS
from .common import COMMAND_FEED, CommandError, aware, clean_text, records
from .deadlines import ReportRules, next_due, report_timers
from .intake import Intake
from .plans import PLANS_DIR, PlanError, load_plans, plan_for
from .replay import Replay
from .reports import ReportActions
from .support import DecisionSupport
from .tasks import TaskActions

LATEST_VERSION = "SELECT * FROM command_incidents WHERE incident_id = ? ORDER BY version DESC LIMIT 1"


class CommandSource(Intake, TaskActions, ReportActions, DecisionSupport, Replay, Source):
    """Incidents under command: every action appends rows, publishes on the hub, names its user.

    Build one on the console's store (``CommandSource(store=console.store, hub=console.hub)``)
    or in a notebook (``CommandSource.from_path('var/console.duckdb')``: reads only).
    Actions take ``user`` (and optionally ``jurisdiction``; authorisation is the caller's)
    and ``now`` (default: ``clock()``). A refused action raises :class:`CommandError` and
    writes nothing.
    """

    source_type: ClassVar[str] = "command"

    materials = param.ClassSelector(class_=MaterialSource, default=None, allow_None=True,
                                    doc="Material inventory (dispatch ledger); built if None.")
    experts = param.ClassSelector(class_=ExpertSource, default=None, allow_None=True,
                                  doc="Expert inventory (audited draw); built if None.")
    geography = param.ClassSelector(class_=CountyGeometry, default=None, allow_None=True,
                                    doc="The province's counties (the materials' when None).")
    plans_dir = param.String(default=str(PLANS_DIR), doc="Folder of the plan files (*.toml).")
    clock = param.Callable(default=utc_now, doc="Returns the current time (fixed in tests).")
    rules = param.ClassSelector(class_=ReportRules, default=ReportRules(),
                                doc="Reporting deadlines (minutes/hours).")
    detour_factor = param.Number(default=1.3, bounds=(1, None), doc=(
        "Road distance ÷ straight-line distance used for travel times (no road network)."))
    speed_kmh = param.Number(default=60.0, bounds=(1, None), doc=(
        "Average speed of a response vehicle (km/h) used for travel times."))
    sector_half_deg = param.Number(default=30.0, bounds=(5, 180), doc=(
        "Half-width (degrees) of the downwind sector of a gas release."))
    calm_ms = param.Number(default=0.5, bounds=(0, None), doc=(
        "Wind speed (m/s) below which the air counts as calm: the whole circle is affected."))
    wind_max_age_min = param.Number(default=60.0, bounds=(1, None), doc=(
        "Oldest wind reading (minutes) used for the downwind sector."))
    future_tolerance_s = param.Number(default=120.0, bounds=(0, None), doc=(
        "How far in the future a reported time may lie (clock skew between desks) before it "
        "is refused."))

    def __init__(self, **params):
        super().__init__(**params)
        if self.materials is None:
            self.materials = MaterialSource(store=self.store, hub=self.hub)
        if self.experts is None:
            self.experts = ExpertSource(store=self.store, hub=self.hub)
        if self.geography is None:
            self.geography = self.materials.geography

    # ------------------------------------------------------------------ registries
    @query()
    def counties(self) -> pd.DataFrame:
        """Counties (code, name, city, lon, lat, population, area_km2), read once."""
        return self.store.df(
            "SELECT county_code, name, city, lon, lat, population, area_km2 FROM counties "
            "ORDER BY county_code")

    def county_of(self, lon: float, lat: float) -> str | None:
        """The county containing a point (None: outside the province)."""
        return self.geography.county_of(lon, lat)

    def plans(self) -> dict:
        """The plan files, validated (raises :class:`~.plans.PlanError`)."""
        return load_plans(self.plans_dir)

    def now(self) -> datetime:
        return aware(self.clock())

    # ------------------------------------------------------------------ reading
    def version(self, incident_id: str, at: datetime | None = None) -> dict | None:
        """The incident's latest version (at ``at``, if given) as a dict, or None."""
        df = self.store.df(
            "SELECT * FROM command_incidents WHERE incident_id = $id "
            "AND ($at::TIMESTAMPTZ IS NULL OR acted_at <= $at) ORDER BY version DESC LIMIT 1",
            {"id": str(incident_id), "at": at})
        return records(df)[0] if len(df) else None

    def incidents(self, *, status: str | None = None, limit: int = 500) -> pd.DataFrame:
        """Incidents under command (latest version of each), newest first."""
        return self.store.df(
            "WITH cur AS (SELECT unnest(arg_max(c, c.version)) FROM command_incidents c "
            "GROUP BY c.incident_id) SELECT * FROM cur "
            "WHERE ($status::VARCHAR IS NULL OR status = $status) "
            "ORDER BY CASE status WHEN 'open' THEN 0 ELSE 1 END, learned_at DESC LIMIT $n",
            {"status": status, "n": int(limit)})

    def feed_incidents(self, *, open_only: bool = True) -> pd.DataFrame:
        """Feed incidents not taken over yet (latest row of each), for the intake picker."""
        return self.store.df(
            "WITH cur AS (SELECT unnest(arg_max(x, (x.ts, x.seq))) FROM incidents x "
            "WHERE x.feed <> $feed GROUP BY x.incident_id) "
            "SELECT incident_id, kind, title, level, status, lon, lat, county_code, ts, feed, seq, "
            "drill_id FROM cur WHERE (NOT $open OR status = 'open') AND incident_id NOT IN "
            "(SELECT incident_id FROM command_incidents) ORDER BY ts DESC LIMIT 500",
            {"feed": COMMAND_FEED, "open": bool(open_only)})

    def wall_incidents(self, now: datetime | None = None) -> pd.DataFrame:
        """Active incidents for the wall: feed and command ones in one list, most severe first.

        Columns: incident_id, title, subtype, lon, lat, county_code, grade (I..IV), level
        (its colour), response_level, origin (feed / officer / alarm), commanded (taken over),
        tasks_assigned / tasks_en_route / tasks_on_scene / tasks_done / tasks_cancelled,
        next_report (kind), next_report_due (time), next_report_overdue, overdue_reports,
        learned_at, drill_id (an exercise's). A feed incident not taken over has its feed level
        as grade and no timers.
        """
        now = aware(now) if now is not None else self.now()
        cmd = self.incidents(status="open")
        feed = self.feed_incidents(open_only=True)
        states = ("assigned", "en_route", "on_scene", "done", "cancelled")
        rows = []
        counts = self._task_counts(list(cmd["incident_id"])) if len(cmd) else {}
        timers = self._timers_of(list(cmd["incident_id"]), now) if len(cmd) else {}
        for r in records(cmd):
            t = timers.get(r["incident_id"], [])
            nxt = next_due(t)
            c = counts.get(r["incident_id"], {})
            rows.append({
                "incident_id": r["incident_id"], "title": r["title"], "subtype": r["subtype"],
                "lon": r["lon"], "lat": r["lat"], "county_code": r["county_code"],
                "grade": r["grade"], "level": GRADE_COLOR[r["grade"]],
                "response_level": r["response_level"], "origin": r["origin"],
                "commanded": True,
                **{f"tasks_{s}": int(c.get(s, 0)) for s in states},
                "next_report": nxt.kind if nxt else None,
                "next_report_due": nxt.due_at if nxt else None,
                "next_report_overdue": bool(nxt and nxt.state == "overdue"),
                "overdue_reports": sum(x.state == "overdue" for x in t),
                "learned_at": r["learned_at"], "drill_id": r.get("drill_id")})
        from .catalog import COLOR_GRADE
        for r in records(feed):
            grade = COLOR_GRADE.get(r["level"], "IV")
            rows.append({
                "incident_id": r["incident_id"], "title": r["title"], "subtype": r["kind"],
                "lon": r["lon"], "lat": r["lat"], "county_code": r["county_code"],
                "grade": grade, "level": GRADE_COLOR[grade], "response_level": None,
                "origin": "feed", "commanded": False,
                **{f"tasks_{s}": 0 for s in states}, "next_report": None,
                "next_report_due": None, "next_report_overdue": False, "overdue_reports": 0,
                "learned_at": r["ts"], "drill_id": r.get("drill_id")})
        df = pd.DataFrame(rows, columns=[
            "incident_id", "title", "subtype", "lon", "lat", "county_code", "grade", "level",
            "response_level", "origin", "commanded", *[f"tasks_{s}" for s in states],
            "next_report", "next_report_due", "next_report_overdue", "overdue_reports",
            "learned_at", "drill_id"])
        if len(df):
            df["_g"] = df["grade"].map({g: i for i, g in enumerate(GRADES)})
            df = df.sort_values(["_g", "learned_at"], ascending=[True, False]).drop(columns="_g")
        for col in ("response_level", "next_report", "county_code", "drill_id"):
            # a text column with gaps: None, not the NaN pandas puts beside strings (a NaN is
            # truthy: "command.report." + NaN broke the incident list with a feed incident)
            df[col] = df[col].astype(object).where(df[col].notna(), None)
        return df.reset_index(drop=True)

    def _task_counts(self, ids: list[str]) -> dict[str, dict[str, int]]:
        df = self.store.df(
            "SELECT t.incident_id, s.state, count(*) AS n FROM command_tasks t JOIN ("
            "  SELECT task_id, arg_max(state, seq) AS state FROM command_task_states GROUP BY 1"
            ") s USING (task_id) WHERE list_contains($ids, t.incident_id) GROUP BY ALL",
            {"ids": ids})
        out: dict[str, dict[str, int]] = {}
        for r in df.itertuples():
            out.setdefault(r.incident_id, {})[r.state] = int(r.n)
        return out

    def _timers_of(self, ids: list[str], now: datetime) -> dict[str, list]:
        versions = records(self.store.df(
            "SELECT incident_id, version, change, grade, status, learned_at, closed_at, acted_at "
            "FROM command_incidents WHERE list_contains($ids, incident_id) AND acted_at <= $now "
            "ORDER BY incident_id, version", {"ids": ids, "now": now}))
        reports = records(self.store.df(
            "SELECT incident_id, report_id, any_value(kind) AS kind, "
            "min(submitted_at) AS submitted_at FROM command_reports "
            "WHERE list_contains($ids, incident_id) AND submitted_at <= $now GROUP BY ALL",
            {"ids": ids, "now": now}))
        by_v: dict[str, list] = {}
        for v in versions:
            by_v.setdefault(v["incident_id"], []).append(v)
        by_r: dict[str, list] = {}
        for r in reports:
            by_r.setdefault(r["incident_id"], []).append(r)
        return {i: report_timers(by_v.get(i, []), by_r.get(i, []), now, self.rules)
                for i in ids}

    def set_grade(self, incident_id: str, grade: str, *, user: str | None, reason: str,
                  now: datetime | None = None) -> dict:
        """研判: set the grade by hand, with a reason (an override of the rule where one exists).

        Setting the grade the rule gives returns the incident to following the rule.
        """
        reason = clean_text(reason)
        if grade not in GRADES:
            raise CommandError("command.error.bad_grade", "unknown grade: {grade}", grade=grade)
        if not reason:
            raise CommandError("command.error.need_reason", "give the reason for the grade")
        now = aware(now) if now is not None else self.now()
        with self.store.transaction() as cur:
            row = self._current(cur, incident_id, open_only=True)
            if row["grade"] == grade:
                raise CommandError("command.error.same_grade",
                                   "the incident is already graded {grade}", grade=grade)
            row.update(self._grade(row["subtype"], row, grade, reason))
            row["note"] = reason
            new = self._append(cur, row, "grade", user, now)
        self._published(new)
        return new

    def launch_response(self, incident_id: str, level: str, *, user: str | None,
                        note: str = "", now: datetime | None = None) -> dict:
        """启动响应: launch (or change) the response level; opens the plan's checklist."""
        if level not in RESPONSE_LEVELS:
            raise CommandError("command.error.bad_level", "unknown response level: {level}",
                               level=level)
        now = aware(now) if now is not None else self.now()
        try:
            plans = self.plans()
        except PlanError as exc:
            raise CommandError("command.error.plan", "the plan files are broken: {detail}",
                               detail=str(exc)) from None
        with self.store.transaction() as cur:
            row = self._current(cur, incident_id, open_only=True)
            if row["response_level"] == level:
                raise CommandError("command.error.same_level",
                                   "the level {level} response is already launched",
                                   level=level)
            plan = plan_for(plans, row["subtype"])
            if plan is None:
                raise CommandError("command.error.no_plan", "no plan covers {type}",
                                   type=row["subtype"])
            row.update(response_level=level, plan_id=plan.id, note=clean_text(note) or None)
            new = self._append(cur, row, "response", user, now)
            items = pd.DataFrame([{
                "incident_id": new["incident_id"], "activation": new["version"],
                "item_no": it.no, "plan_id": plan.id, "response_level": level,
                "measure": it.measure, "measure_en": it.measure_en or None, "unit": it.unit,
                "within_min": it.within_min, "opened_at": now} for it in plan.items_for(level)])
            self.store.insert("command_plan_items", items, cur=cur)
        self._published(new, items=len(items))
        return new

    def tick_item(self, incident_id: str, item_no: int, *, user: str | None, done: bool = True,
                  note: str = "", activation: int | None = None,
                  now: datetime | None = None) -> dict:
        """Tick (or untick) a measure of the open checklist, recording who and when."""
        now = aware(now) if now is not None else self.now()
        actor = actor_name(user)
        with self.store.transaction() as cur:
            row = self._current(cur, incident_id, open_only=True)
            if activation is None:
                activation = cur.execute(
                    "SELECT max(activation) FROM command_plan_items WHERE incident_id = ?",
                    [row["incident_id"]]).fetchone()[0]
            item = cur.execute(
                "SELECT measure FROM command_plan_items WHERE incident_id = ? AND activation = ? "
                "AND item_no = ?", [row["incident_id"], _int(activation), _int(item_no)]
            ).fetchall()
            if not item:
                raise CommandError("command.error.unknown_item", "no checklist item {no}",
                                   no=item_no)
            last = cur.execute(
                "SELECT tick, done, actor, acted_at FROM command_plan_ticks WHERE incident_id = ? AND "
                "activation = ? AND item_no = ? ORDER BY tick DESC LIMIT 1",
                [row["incident_id"], int(activation), int(item_no)]).fetchall()
            state = bool(last and last[0][1])
            if state == bool(done):
                who, when = (last[0][2], last[0][3]) if last else ("", None)
                raise CommandError("command.error.already_ticked" if done
                                   else "command.error.not_ticked",
                                   "item {no} is already in that state ({who} {at})",
                                   no=item_no, who=who, at=when)
            tick = {"incident_id": row["incident_id"], "activation": int(activation),
                    "item_no": int(item_no), "tick": (last[0][0] if last else 0) + 1,
                    "done": bool(done), "note": clean_text(note) or None, "actor": actor,
                    "acted_at": now}
            cur.execute("INSERT INTO command_plan_ticks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        list(tick.values()))
        self._publish_change(row["incident_id"], "plan", actor, now, item_no=int(item_no),
                             done=bool(done))
        return tick

    def add_note(self, incident_id: str, text: str, *, user: str | None,
                 now: datetime | None = None) -> int:
        """An officer's note on the timeline (also after closure, for the review)."""
        text = clean_text(text)
        if not text:
            raise CommandError("command.error.empty_note", "the note is empty")
        now = aware(now) if now is not None else self.now()
        actor = actor_name(user)
        with self.store.transaction() as cur:
            self._current(cur, incident_id, open_only=False)
            note_id = int(cur.execute("SELECT nextval('command_ids')").fetchone()[0])
            cur.execute("INSERT INTO command_notes VALUES (?, ?, ?, ?, ?)",
                        [note_id, str(incident_id), text, actor, now])
        self._publish_change(str(incident_id), "note", actor, now, note_id=note_id)
        return note_id

    def close_incident(self, incident_id: str, *, user: str | None, note: str = "",
                       now: datetime | None = None) -> dict:
        """处置结束: close the incident (response ends). Refused while tasks are active."""
        now = aware(now) if now is not None else self.now()
        with self.store.transaction() as cur:
            row = self._current(cur, incident_id, open_only=True)
            active = cur.execute(
                "SELECT t.resource_name FROM command_tasks t JOIN (SELECT task_id, "
                "arg_max(state, seq) AS state FROM command_task_states GROUP BY 1) s "
                "USING (task_id) WHERE t.incident_id = ? AND s.state IN "
                "('assigned', 'en_route', 'on_scene') ORDER BY t.task_id",
                [row["incident_id"]]).fetchall()
            if active:
                raise CommandError("command.error.active_tasks",
                                   "{n} tasks are still active ({names}): finish or cancel them "
                                   "first", n=len(active), names="、".join(r[0] for r in active))
            row.update(status="closed", closed_at=now, note=clean_text(note) or None)
            new = self._append(cur, row, "close", user, now)
        self._published(new)
        return new

    # ------------------------------------------------------------------ helpers
    def _current(self, cur, incident_id, *, open_only: bool) -> dict:
        t = cur.execute(LATEST_VERSION, [str(incident_id)]).fetch_df()
        if t.empty:
            raise CommandError("command.error.unknown_incident", "unknown incident: {id}",
                               id=incident_id)
        row = records(t)[0]
        if open_only and row["status"] != "open":
            raise CommandError("command.error.closed", "incident {id} is closed",
                               id=incident_id)
        return row

    def _append(self, cur, row: dict, change: str, user, now: datetime) -> dict:
        """Insert the next version (and its mirror row in ``incidents``) in ``cur``."""
        new = {**row, "version": int(row["version"]) + 1, "change": change,
               "actor": actor_name(user), "acted_at": now}
        cols = [c[0] for c in cur.execute("SELECT * FROM command_incidents LIMIT 0").description]
        try:
            cur.execute(f"INSERT INTO command_incidents ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})", [new.get(c) for c in cols])
        except duckdb.ConstraintException:
            raise CommandError("command.error.conflict",
                               "someone changed incident {id} at the same moment: reload and "
                               "try again", id=row["incident_id"]) from None
        seq = int(cur.execute("SELECT nextval('command_ids')").fetchone()[0])
        extra = json.dumps({"grade": new["grade"], "response_level": new["response_level"],
                            "origin": new["origin"], "version": new["version"],
                            "change": change}, ensure_ascii=False)
        mirror = [COMMAND_FEED, seq, now, new["incident_id"], new["subtype"], new["lon"],
                  new["lat"], new["title"], GRADE_COLOR[new["grade"]], new["status"],
                  new["county_code"], extra, new.get("drill_id")]
        cur.execute("INSERT INTO incidents (feed, seq, ts, incident_id, kind, lon, lat, title, "
                    "level, status, county_code, extra, drill_id) VALUES (?, ?, ?, ?, ?, ?, ?, "
                    "?, ?, ?, ?, ?, ?)", mirror)
        new["_mirror"] = mirror
        return new

    def _published(self, new: dict, **extra) -> None:
        """After a commit: the mirror row on 'incident' (the wall), the change on 'command'."""
        mirror = new.pop("_mirror", None)
        if self.hub is not None and mirror is not None:
            names = ["feed", "seq", "ts", "incident_id", "kind", "lon", "lat", "title", "level",
                     "status", "county_code", "extra", "drill_id"]
            self.hub.publish("incident", pa.Table.from_pylist([dict(zip(names, mirror,
                                                                        strict=True))]))
        self._publish_change(new["incident_id"], new["change"], new["actor"], new["acted_at"],
                             version=new["version"], **extra)

    def _publish_change(self, incident_id: str, change: str, actor: str, at: datetime,
                        **extra) -> None:
        if self.hub is not None:
            self.hub.publish("command", [{"incident_id": incident_id, "change": change,
                                          "actor": actor, "at": at, **extra}])


def _int(value) -> int:
    """An id as int; anything that is not one becomes -1 (matches nothing)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
