"""Intake (接报) and corrections: an incident opened by hand, from an alarm or from a feed
incident; its facts validated (place inside the province, no time in the future, counts and
losses), graded by the rule where one exists. A mixin of
:class:`~sources.command.source.CommandSource`.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sources.drills import marked

from .catalog import GRADES, SUBTYPES
from .common import CHINA_TZ, COMMAND_FEED, CommandError, aware, clean_text, records
from .grading import check_amount, check_count, compute_grade

#: what an officer may correct after intake
CORRECTABLE = ("title", "place", "description", "reporter", "reporter_phone", "deaths",
               "missing", "injured", "loss_wan", "occurred_at", "learned_at", "wind_from_deg",
               "lon", "lat", "county_code", "enterprise_id")


class Intake:
    """Mixin: opening incidents and correcting their facts."""

    def open_incident(self, *, subtype: str, user: str | None, title: str = "",
                      lon: float | None = None, lat: float | None = None,
                      enterprise_id: int | None = None, county_code: str | None = None,
                      place: str = "", occurred_at: datetime | None = None,
                      learned_at: datetime | None = None, deaths: int = 0, missing: int = 0,
                      injured: int = 0, loss_wan: float = 0.0, reporter: str = "",
                      reporter_phone: str = "", description: str = "",
                      grade: str | None = None, grade_reason: str = "",
                      installation_id: int | None = None, alarm_id: int | None = None,
                      origin: str = "officer", origin_ref: str | None = None,
                      incident_id: str | None = None, jurisdiction: str | None = None,
                      drill_id: str | None = None, now: datetime | None = None) -> dict:
        """接报: open an incident. Returns its first version (a dict).

        The place is ``lon``/``lat`` (inside the province), else the enterprise's position,
        else the county's representative point. ``learned_at`` (default now) starts the
        report clock; neither it nor ``occurred_at`` may lie in the future. The grade is
        the rule's (production-safety accidents) unless ``grade`` differs, which needs a
        ``grade_reason``; types without a rule take ``grade`` (default IV). ``drill_id``
        marks an exercise's incident (演练): the wall, the statistics and the reports tell it
        apart, and the drill's purge removes it.
        """
        now = aware(now) if now is not None else self.now()
        st = SUBTYPES.get(str(subtype))
        if st is None:
            raise CommandError("command.error.unknown_subtype", "unknown incident type: {type}",
                               type=subtype)
        row = {"category": st.category, "subtype": st.key, "origin": origin,
               "origin_ref": origin_ref, "installation_id": installation_id,
               "alarm_id": alarm_id, "jurisdiction": jurisdiction or None,
               "status": "open", "closed_at": None, "response_level": None, "plan_id": None,
               "note": None, "wind_from_deg": None, "drill_id": drill_id or None}
        row.update(self._facts({
            "title": title, "place": place, "description": description, "reporter": reporter,
            "reporter_phone": reporter_phone, "deaths": deaths, "missing": missing,
            "injured": injured, "loss_wan": loss_wan, "lon": lon, "lat": lat,
            "county_code": county_code, "enterprise_id": enterprise_id,
            "occurred_at": occurred_at, "learned_at": learned_at}, now, st))
        if drill_id:  # an exercise's incident says so wherever its title shows
            row["title"] = marked(row["title"])
        row.update(self._grade(st.key, row, grade, grade_reason))
        with self.store.transaction() as cur:
            if incident_id is None:
                n = int(cur.execute("SELECT nextval('command_ids')").fetchone()[0])
                incident_id = f"CMD-{now.astimezone(CHINA_TZ):%Y%m%d}-{n}"
            elif cur.execute("SELECT count(*) FROM command_incidents WHERE incident_id = ?",
                             [incident_id]).fetchone()[0]:
                raise CommandError("command.error.already_open",
                                   "incident {id} is already under command", id=incident_id)
            row.update(incident_id=incident_id, version=0)
            new = self._append(cur, row, "intake", user, now)
        self._published(new)
        return new

    def take_over(self, feed_incident_id: str, *, user: str | None, subtype: str | None = None,
                  now: datetime | None = None, **facts) -> dict:
        """Take a feed incident under command (same id); ``facts`` as for open_incident."""
        t = self.store.df(
            "SELECT * FROM incidents WHERE incident_id = ? AND feed <> ? ORDER BY ts DESC, "
            "seq DESC LIMIT 1", [str(feed_incident_id), COMMAND_FEED])
        if t.empty:
            raise CommandError("command.error.unknown_incident", "unknown incident: {id}",
                               id=feed_incident_id)
        f = records(t)[0]
        from .catalog import COLOR_GRADE
        kind = subtype or f["kind"]
        facts.setdefault("title", f["title"])
        facts.setdefault("lon", f["lon"])
        facts.setdefault("lat", f["lat"])
        facts.setdefault("learned_at", f["ts"])
        # the feed's level stands as the grade until the figures or an officer say otherwise
        facts.setdefault("grade", COLOR_GRADE.get(f["level"], "IV"))
        facts.setdefault("grade_reason", f"level reported by the feed: {f['level']}")
        facts.setdefault("drill_id", f.get("drill_id"))  # a drill's incident stays the drill's
        return self.open_incident(subtype=kind, user=user, origin="feed",
                                  origin_ref=f"{f['feed']}:{f['seq']}",
                                  incident_id=str(feed_incident_id), now=now, **facts)

    def alarm_intake(self, alarm_id: int, *, readings_minutes: int = 60) -> dict:
        """What an alarm brings to the intake form: place, enterprise, installation, readings.

        Returns a dict of open_incident arguments (``subtype`` guessed from the sensor) and
        ``readings``: the installation's sensors with their last values and the alarm's peak.
        """
        a = self.store.df(
            "SELECT a.*, s.kind AS sensor_kind, s.unit, i.name AS installation, "
            "coalesce(i.lon, s.lon) AS lon, coalesce(i.lat, s.lat) AS lat, e.name AS enterprise, "
            "e.address FROM alarms a JOIN sensors s USING (sensor_id) "
            "LEFT JOIN installations i ON i.installation_id = a.installation_id "
            "LEFT JOIN enterprises e ON e.enterprise_id = a.enterprise_id WHERE a.alarm_id = ?",
            [_int(alarm_id)])
        if a.empty:
            raise CommandError("command.error.unknown_alarm", "unknown alarm: {id}", id=alarm_id)
        r = records(a)[0]
        readings = self.store.df(
            "SELECT s.sensor_id, s.kind, s.unit, s.hi, s.hi_hi, arg_max(x.value, x.ts) AS value, "
            "max(x.ts) AS ts FROM sensors s LEFT JOIN readings x ON x.sensor_id = s.sensor_id "
            "AND x.ts >= $since WHERE (s.installation_id = $inst AND $inst IS NOT NULL) "
            "OR s.sensor_id = $sensor GROUP BY ALL ORDER BY s.sensor_id",
            {"since": r["raised_at"] - timedelta(minutes=readings_minutes),
             "inst": r["installation_id"], "sensor": r["sensor_id"]})
        subtype = {"toxic_gas": "hazchem_leak", "flammable_gas": "hazchem_leak",
                   "temperature": "fire", "pressure": "explosion",
                   "tank_level": "hazchem_leak", "river_level": "flood",
                   "reservoir_level": "flood", "rain": "flood"}.get(r["sensor_kind"], "hazchem_leak")
        lines = [f"{x['sensor_id']} {x['kind']} = {x['value']:g} {x['unit']}"
                 for x in records(readings) if x["value"] is not None]
        desc = (f"alarm {r['alarm_id']} {r['kind']} on {r['sensor_id']} ({r['sensor_kind']}): "
                f"trigger {r['trigger_value']}, peak {r['peak_value']} {r['unit']}")
        return {"subtype": subtype, "alarm_id": int(r["alarm_id"]), "origin": "alarm",
                "origin_ref": str(r["alarm_id"]), "enterprise_id": r["enterprise_id"],
                "installation_id": r["installation_id"], "lon": r["lon"], "lat": r["lat"],
                "title": f"{r['enterprise'] or ''}{r['installation'] or r['sensor_id']}",
                "place": r["address"] or "", "occurred_at": r["raised_at"],
                "description": "\n".join([desc, *lines]), "readings": readings,
                "drill_id": r.get("drill_id")}

    def open_from_alarm(self, alarm_id: int, *, user: str | None,
                        now: datetime | None = None, **overrides) -> dict:
        """Open an incident from an alarm (the /alarms "open incident" button)."""
        prefill = self.alarm_intake(alarm_id)
        prefill.pop("readings")
        prefill.update(overrides)
        return self.open_incident(user=user, now=now, **prefill)

    # ------------------------------------------------------------------ changes
    def correct(self, incident_id: str, *, user: str | None, now: datetime | None = None,
                note: str = "", jurisdiction: str | None = None, **changes) -> dict:
        """Correct reported facts (casualties, loss, place, times, text): a new version.

        A grade that follows the rule follows the new figures; an officer's override stands.
        """
        unknown = sorted(set(changes) - set(CORRECTABLE))
        if unknown:
            raise CommandError("command.error.bad_field", "cannot change {field}",
                               field=", ".join(unknown))
        if not changes:
            raise CommandError("command.error.nothing", "nothing to change")
        now = aware(now) if now is not None else self.now()
        with self.store.transaction() as cur:
            cur_row = self._current(cur, incident_id, open_only=True)
            st = SUBTYPES[cur_row["subtype"]]
            merged = {k: cur_row[k] for k in CORRECTABLE}
            if any(k in changes for k in ("lon", "lat", "enterprise_id", "county_code")):
                merged.update(lon=None, lat=None, county_code=None)
            merged.update(changes)
            facts = self._facts(merged, now, st)
            row = {**cur_row, **facts, "note": clean_text(note) or None}
            if jurisdiction:
                row["jurisdiction"] = jurisdiction
            # an officer's grade (an override, or a type without a rule) stands
            keep = cur_row["grade_reason"] is not None or cur_row["grade_computed"] is None
            row.update(self._grade(st.key, row, cur_row["grade"] if keep else None,
                                   cur_row["grade_reason"] or ""))
            new = self._append(cur, row, "correct", user, now)
        self._published(new)
        return new

    def _facts(self, f: dict, now: datetime, st) -> dict:
        """Validated facts of an intake or a correction (raises :class:`CommandError`)."""
        out = {}
        for k in ("deaths", "missing", "injured"):
            try:
                out[k] = check_count(f.get(k), k)
            except ValueError:
                raise CommandError("command.error.bad_count",
                                   "{field} must be a whole number, 0 or more", field=k) from None
        try:
            out["loss_wan"] = check_amount(f.get("loss_wan"), "loss_wan")
        except ValueError:
            raise CommandError("command.error.bad_count", "{field} must be a number, 0 or more",
                               field="loss_wan") from None
        learned = aware(f.get("learned_at"), "learned_at") or now
        occurred = aware(f.get("occurred_at"), "occurred_at") or learned
        limit = now + timedelta(seconds=self.future_tolerance_s)
        for name, value in (("occurred_at", occurred), ("learned_at", learned)):
            if value > limit:
                raise CommandError("command.error.future", "{field} lies in the future: {value}",
                                   field=name, value=value.isoformat(timespec="minutes"))
        if occurred > learned:
            raise CommandError("command.error.order",
                               "the incident cannot occur after the bureau learned of it")
        out.update(occurred_at=occurred, learned_at=learned)
        out.update(self._place(f.get("lon"), f.get("lat"), f.get("enterprise_id"),
                               f.get("county_code")))
        wind = f.get("wind_from_deg")
        if wind not in (None, ""):
            try:
                wind = float(wind)
            except (TypeError, ValueError):
                wind = float("nan")
            if not 0 <= wind <= 360:
                raise CommandError("command.error.bad_wind",
                                   "the wind direction must be 0–360 degrees")
            out["wind_from_deg"] = wind % 360
        for k in ("place", "description", "reporter", "reporter_phone"):
            out[k] = clean_text(f.get(k)) or None
        out["title"] = clean_text(f.get("title"), 200) or self._default_title(st, out)
        return out

    def _place(self, lon, lat, enterprise_id, county_code) -> dict:
        ent = None
        if enterprise_id not in (None, ""):
            ent = self.store.df("SELECT enterprise_id, name, lon, lat, county_code FROM "
                                "enterprises WHERE enterprise_id = ?", [_int(enterprise_id)])
            if ent.empty:
                raise CommandError("command.error.unknown_enterprise",
                                   "unknown enterprise: {id}", id=enterprise_id)
            ent = records(ent)[0]
        if lon not in (None, "") and lat not in (None, ""):
            try:
                lon, lat = float(lon), float(lat)
            except (TypeError, ValueError):
                lon = lat = float("nan")
            code = self.county_of(lon, lat) if lon == lon and lat == lat else None
            if code is None:
                raise CommandError("command.error.outside",
                                   "the place ({lon}, {lat}) is outside the province",
                                   lon=lon, lat=lat)
        elif ent is not None:
            lon, lat, code = ent["lon"], ent["lat"], ent["county_code"]
        elif county_code not in (None, ""):
            c = self.counties()
            hit = c[c["county_code"] == str(county_code)]
            if hit.empty:
                raise CommandError("command.error.unknown_county", "unknown county: {code}",
                                   code=county_code)
            lon, lat, code = float(hit.lon.iloc[0]), float(hit.lat.iloc[0]), str(county_code)
        else:
            raise CommandError("command.error.no_place",
                               "give the place: a map point, an enterprise or a county")
        return {"lon": float(lon), "lat": float(lat), "county_code": code,
                "enterprise_id": None if ent is None else int(ent["enterprise_id"])}

    def _default_title(self, st, facts: dict) -> str:
        c = self.counties()
        name = c.loc[c.county_code == facts["county_code"], "name"]
        return f"{name.iloc[0] if len(name) else ''}{st.zh}"

    @staticmethod
    def _grade(subtype: str, row: dict, grade: str | None, reason: str) -> dict:
        """Grade columns: the rule's grade unless ``grade`` differs (then ``reason`` needed)."""
        computed = compute_grade(subtype, row["deaths"], row["injured"], row["loss_wan"])
        if grade is not None and grade not in GRADES:
            raise CommandError("command.error.bad_grade", "unknown grade: {grade}", grade=grade)
        reason = clean_text(reason)
        if computed.computed:
            if grade is None or grade == computed.grade:
                return {"grade": computed.grade, "grade_computed": computed.grade,
                        "grade_rule": computed.rule, "grade_reason": None}
            if not reason:
                raise CommandError("command.error.no_reason",
                                   "the rule gives {computed}: give the reason for {grade}",
                                   computed=computed.grade, grade=grade)
            return {"grade": grade, "grade_computed": computed.grade,
                    "grade_rule": computed.rule, "grade_reason": reason}
        # no rule for this type: the officer's grade (一般 until set), reason kept if given
        return {"grade": grade or "IV", "grade_computed": None, "grade_rule": None,
                "grade_reason": reason or None}


def _int(value) -> int:
    """An id as int; anything that is not one becomes -1 (matches nothing)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
