"""Warnings of the past week besides the rain cells' own (:mod:`data.history.weather`):

- the weather service's other warnings (feed), by season: gale on the coast, fog on the
  plain, forest fire in the hills when it is dry, heat in summer, freezing and blizzard in
  winter — some lifted (Cancel), some left to expire, a few raised or lowered (Update);
- the duty officers' warnings (``source='officer'``, numbered ``WYYYYMMDD-NNNN`` per day as
  :mod:`sources.warnings` numbers them): flood warnings where a river or reservoir went
  over its limit (from the alarms of the history), and forest-fire warnings in dry spells.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from data.laws import CST, WARNING_SENDER, WARNINGS_PER_HOUR, headline

from .base import DAY_S, HOUR_S, MINUTE_S, FeedLog, Past, china_day, extra_json
from .duty import officer_on_duty
from .weather import WeatherPast

LEVELS = ("blue", "yellow", "orange", "red")
SEASON_EVENTS = {  # month -> (events, weights)
    "winter": (("gale", "fog", "freezing", "blizzard", "forest_fire"), (3, 3, 2, 1, 1)),
    "spring": (("gale", "forest_fire", "fog", "drought"), (3.5, 3.5, 1.5, 1.5)),
    "summer": (("heat", "thunderstorm", "gale"), (4.5, 3.5, 2)),
    "autumn": (("fog", "gale", "forest_fire"), (3.5, 3, 3.5)),
}
COAST = ("3702", "3705", "3706", "3707", "3710", "3711", "3716")
PLAIN = ("3714", "3715", "3716", "3717", "3701", "3705")
FLOOD_TEXT = "{station}水位超过{limit}，请沿河（库区）各地加强巡查防守，做好人员转移准备。"


def season(t: float) -> str:
    month = dt.datetime.fromtimestamp(t, CST).month
    return ("winter" if month in (12, 1, 2) else "spring" if month <= 5
            else "summer" if month <= 8 else "autumn")


class WarningPast:
    """Builds the warnings of the period into a :class:`FeedLog`."""

    def __init__(self, past: Past, weather: WeatherPast, log: FeedLog):
        self.past, self.weather, self.log = past, weather, log
        c = past.counties
        self.codes = c["county_code"].to_numpy(dtype=object)
        self.names = dict(zip(c["county_code"], c["name"], strict=True))
        slides = past.registry.landslides
        self.hills = (slides["county_code"].value_counts().index[:40].tolist()
                      if len(slides) else list(self.codes))
        self.officer: list[dict] = []

    def _area(self, rng, event: str) -> list[str]:
        """1–5 counties of one city, where such a warning is issued."""
        prefixes = {"gale": COAST, "fog": PLAIN}.get(event)
        pool = [c for c in self.codes if prefixes is None or c[:4] in prefixes]
        if event in ("forest_fire", "drought"):
            pool = [c for c in self.hills] or pool
        city = str(pool[int(rng.integers(len(pool)))])[:4]
        same = sorted(c for c in pool if c.startswith(city))
        k = min(int(rng.integers(1, 6)), len(same))
        return sorted(str(x) for x in rng.choice(same, k, replace=False))

    def _feed(self, wid, t, msg_type, event, level, area, expires) -> None:
        self.log.add("warnings", t, source="feed", warning_id=wid, msg_type=msg_type,
                     event=event, level=level, area_codes=area, effective=t, expires=expires,
                     headline=headline(event, level, msg_type,
                                       [self.names[a] for a in area[:3]], len(area)),
                     description=None, extra=extra_json({"sender_name": WARNING_SENDER}))

    def weather_service(self) -> None:
        """Other warnings of the weather service, at the simulator's rate."""
        rng, past = self.past.rng("warnings/feed"), self.past
        n = rng.poisson(WARNINGS_PER_HOUR * (past.end - past.start) / HOUR_S)
        for serial, t in enumerate(np.sort(rng.uniform(past.start, past.end, n)), start=1):
            t = float(t)
            events, weights = SEASON_EVENTS[season(t)]
            event = str(rng.choice(events, p=np.array(weights) / sum(weights)))
            if event == "forest_fire" and self.weather.raining(t) and rng.random() < 0.7:
                event = "gale"  # no fire danger under the rain
            level = str(rng.choice(LEVELS, p=[.4, .35, .2, .05]))
            area = self._area(rng, event)
            wid = f"W-{int(t)}-f{serial}"
            lasts = float(rng.uniform(1, 3)) * HOUR_S
            cancelled = rng.random() < 0.5  # else it runs out (expires) by itself
            expires = t + (6 * HOUR_S if cancelled else lasts)
            self._feed(wid, t, "Alert", event, level, area, expires)
            if rng.random() < 0.3 and t + lasts / 2 < past.end:
                level = LEVELS[min(3, max(0, LEVELS.index(level) + int(rng.choice([-1, 1]))))]
                self._feed(wid, t + lasts / 2, "Update", event, level, area,
                           t + lasts / 2 + (6 * HOUR_S if cancelled else lasts / 2))
            if cancelled and t + lasts < past.end:
                self._feed(wid, t + lasts, "Cancel", event, level, area, t + lasts + 6 * HOUR_S)

    # ------------------------------------------------------------------ officers
    def _issue(self, rng, t, event, level, area, hours, description, *, update=None,
               cancel=None, reason="") -> None:
        """An officer's warning: Alert at ``t``; ``update`` (time, level); ``cancel`` time."""
        expires = t + hours * HOUR_S
        versions = [("Alert", t, level, None)]
        if update is not None and update[0] < min(self.past.end, expires):
            versions.append(("Update", update[0], update[1], None))
        if cancel is not None and cancel < min(self.past.end, expires):
            versions.append(("Cancel", cancel, versions[-1][2], reason))
        key = len(self.officer)
        for msg_type, at, lv, why in versions:
            self.officer.append({"key": key, "ts": at, "msg_type": msg_type, "event": event,
                                 "level": lv, "area_codes": area, "effective": t,
                                 "expires": expires, "sender": officer_on_duty(at, rng),
                                 "description": description,
                                 "extra": extra_json({"reason": why} if why else {})})

    def floods(self, store) -> None:
        """Flood warnings where the history's rivers and reservoirs went over their limits."""
        rng = self.past.rng("warnings/flood")
        a = store.df(
            "SELECT a.county_code, a.kind, epoch_us(a.raised_at) / 1e6 AS raised, "
            "epoch_us(a.cleared_at) / 1e6 AS cleared, st.name AS station, s.kind AS sensor_kind "
            "FROM alarms a JOIN sensors s USING (sensor_id) JOIN stations st USING (station_id) "
            "WHERE s.kind IN ('river_level', 'reservoir_level') AND a.kind IN ('hi', 'hi_hi') "
            "ORDER BY a.raised_at")
        last: dict[str, float] = {}
        for row in a.itertuples(index=False):
            if row.raised - last.get(row.county_code, -np.inf) < 12 * HOUR_S:
                continue  # one warning per county and half day
            last[row.county_code] = row.raised
            t = row.raised + rng.uniform(15, 40) * MINUTE_S
            if t >= self.past.end:
                continue
            limit = "警戒水位" if row.sensor_kind == "river_level" else "汛限水位"
            cleared = None if pd.isna(row.cleared) else row.cleared + rng.uniform(1, 3) * HOUR_S
            self._issue(rng, t, "flood", "orange" if row.kind == "hi_hi" else "yellow",
                        [row.county_code], 24, FLOOD_TEXT.format(station=row.station, limit=limit),
                        cancel=cleared, reason=f"{row.station}水位回落至{limit}以下")

    def duty_desk(self) -> None:
        """The desk's own warnings: forest fire in dry spells and gales, about one a day, and
        one issued three hours before the end that is still in force."""
        rng, past = self.past.rng("warnings/officer"), self.past
        days = int((past.end - past.start) // DAY_S)
        times = [past.start + (d + rng.uniform(0.3, 0.7)) * DAY_S for d in range(days)]
        times.append(past.end - 3 * HOUR_S)
        for i, t in enumerate(times):
            last = i == len(times) - 1
            dry = not self.weather.raining(t)
            event = "forest_fire" if dry else "gale"
            area = self._area(rng, event)
            level = str(rng.choice(["blue", "yellow", "orange"], p=[.3, .5, .2]))
            text = ("森林火险气象等级高，严禁野外用火，各地加强巡山护林。" if event == "forest_fire"
                    else "沿海海面及内陆地区将有大风，请做好防风准备，海上作业船只回港避风。")
            hours = 24 if last else float(rng.uniform(12, 36))
            update = None if last or rng.random() < 0.5 else (
                t + rng.uniform(2, 8) * HOUR_S, LEVELS[min(3, LEVELS.index(level) + 1)])
            cancel = None if last or rng.random() < 0.6 else t + rng.uniform(6, 12) * HOUR_S
            self._issue(rng, t, event, level, area, hours, text, update=update, cancel=cancel,
                        reason="天气条件好转")

    def write_officers(self) -> None:
        """Number the officers' warnings per China day (as the console does) into the log."""
        alerts = sorted((w for w in self.officer if w["msg_type"] == "Alert"),
                        key=lambda w: w["ts"])
        ids, per_day = {}, {}
        for w in alerts:
            day = china_day(w["ts"])
            per_day[day] = per_day.get(day, 0) + 1
            ids[w["key"]] = f"W{day}-{per_day[day]:04d}"
        for w in sorted(self.officer, key=lambda w: w["ts"]):
            names = [self.names[a] for a in w["area_codes"][:3]]
            self.log.add("warnings", w["ts"], source="officer", warning_id=ids[w["key"]],
                         msg_type=w["msg_type"], event=w["event"], level=w["level"],
                         area_codes=w["area_codes"], effective=w["effective"],
                         expires=w["expires"], sender=w["sender"],
                         headline=headline(w["event"], w["level"], w["msg_type"], names,
                                           len(w["area_codes"])),
                         description=w["description"], extra=w["extra"])
