"""An event storm (issue #18): a crisis load of warnings, incidents, quakes and hotspots at a
fixed rate, so anyone can reproduce what the console meets on a bad night (157 warnings in
one day in the 2021-11-08 blizzard; hundreds of messages a minute when it all comes at once).

The rate is exact, not random: by scenario time ``t`` it has sent ``floor(rate × t / 60)`` events, so a
minute of scenario time holds ``rate`` events (±1). Warnings and incidents have a life:
issued, updated, cancelled (closed), at most :data:`POOL` open at once; the storm closes what
it left open when it ends.
"""
from __future__ import annotations

import numpy as np

from data.laws import INCIDENT_ZH, OTHER_EVENTS, SATELLITES, headline, quake_magnitude

MIX = (("hotspot", 0.30), ("warning", 0.25), ("incident", 0.25), ("quake", 0.20))
POOL = 30
LEVELS = ("blue", "yellow", "orange", "red")
MARK = "【演练】"


class Storm:
    """Events of a storm; :meth:`advance` returns message bodies (without seq and tags)."""

    def __init__(self, *, rate_per_min: float, duration: float, drill_id: str,
                 rng: np.random.Generator):
        self.rate, self.duration, self.drill_id, self.rng = rate_per_min, duration, drill_id, rng
        self.elapsed = 0.0
        self.due = 0  # events of the rate sent so far
        self.serial = 0
        self.sent = 0
        self.warnings: dict[str, dict] = {}
        self.incidents: dict[str, dict] = {}
        self.finished = False

    @property
    def done(self) -> bool:
        return self.finished

    def advance(self, p, dt: float) -> list[dict]:
        """Events of the next ``dt`` scenario seconds (and the closing ones at the end)."""
        if self.finished:
            return []
        self.elapsed = min(self.duration, self.elapsed + max(0.0, dt))
        # from the time elapsed, not a sum of small steps: no rounding drift over a long storm
        n = int(self.rate / 60.0 * self.elapsed + 1e-6) - self.due
        self.due += n
        kinds = self.rng.choice([k for k, _ in MIX], size=n, p=[w for _, w in MIX])
        out = [getattr(self, f"_{k}")(p) for k in kinds]
        if self.elapsed >= self.duration:
            out.extend(self.finish(p))
        self.sent += len(out)
        return out

    def finish(self, p) -> list[dict]:
        """Cancel the storm's warnings and close its incidents."""
        out = [self._warning_body(p, wid, w, "Cancel") for wid, w in self.warnings.items()]
        out += [{**inc, "status": "closed"} for inc in self.incidents.values()]
        self.warnings.clear()
        self.incidents.clear()
        self.finished = True
        return out

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"{self.drill_id}-S-{kind}-{self.serial}"

    def _hotspot(self, p) -> dict:
        lon, lat, _ = p.random_point()
        return {"type": "hotspot", "id": self._id("HS"), "lon": lon, "lat": lat,
                "confidence": round(float(self.rng.uniform(30, 100)), 1),
                "satellite": str(self.rng.choice(SATELLITES))}

    def _quake(self, p) -> dict:
        lon, lat, _ = p.random_point()
        return {"type": "quake", "id": self._id("EQ"), "lon": lon, "lat": lat,
                "depth_km": round(float(self.rng.uniform(5, 25)), 1),
                "magnitude": round(float(quake_magnitude(self.rng)), 1)}

    def _warning_body(self, p, wid: str, w: dict, msg_type: str) -> dict:
        names = p.county_names_of(w["area"][:3])
        return {"type": "warning", "id": wid, "msg_type": msg_type, "event": w["event"],
                "level": w["level"],
                "headline": MARK + headline(w["event"], w["level"], msg_type, names,
                                            len(w["area"])),
                "area": w["area"], "effective": w["effective"],
                "expires": p.time_text(p.t + 1800), "sender_name": "应急演练导调组",
                "status": "Exercise"}

    @property
    def closing(self) -> bool:
        """In the last quarter the storm winds down: it closes rather than opens."""
        return self.elapsed >= 0.75 * self.duration

    def _warning(self, p) -> dict:
        r = self.rng
        if not self.warnings or (not self.closing and len(self.warnings) < POOL
                                 and r.random() < 0.5):
            codes = p.county_codes
            k = min(int(r.integers(1, 6)), len(codes))
            w = {"event": str(r.choice(("rainstorm", *OTHER_EVENTS))),
                 "level": str(r.choice(LEVELS, p=[.4, .35, .2, .05])),
                 "area": sorted(str(c) for c in r.choice(codes, k, replace=False)),
                 "effective": p.now_text()}
            wid = self._id("W")
            self.warnings[wid] = w
            return self._warning_body(p, wid, w, "Alert")
        wid = list(self.warnings)[int(r.integers(len(self.warnings)))]
        w = self.warnings[wid]
        if not self.closing and r.random() < 0.6:
            w["level"] = LEVELS[min(3, max(0, LEVELS.index(w["level"]) + int(r.choice([-1, 1]))))]
            return self._warning_body(p, wid, w, "Update")
        del self.warnings[wid]
        return self._warning_body(p, wid, w, "Cancel")

    def _incident(self, p) -> dict:
        r = self.rng
        if not self.incidents or (not self.closing and len(self.incidents) < POOL
                                  and r.random() < 0.5):
            lon, lat, _ = p.random_point()
            kind = str(r.choice(list(INCIDENT_ZH)))
            iid = self._id("INC")
            inc = {"type": "incident", "id": iid, "kind": kind, "lon": lon, "lat": lat,
                   "title": f"{MARK}{INCIDENT_ZH[kind]}（{iid[-6:]}）",
                   "level": str(r.choice(LEVELS, p=[.45, .35, .15, .05])), "status": "open"}
            self.incidents[iid] = inc
            return dict(inc)
        iid = list(self.incidents)[int(r.integers(len(self.incidents)))]
        inc = self.incidents[iid]
        if not self.closing and r.random() < 0.5:
            inc["level"] = LEVELS[min(3, LEVELS.index(inc["level"]) + 1)]
            return dict(inc)
        del self.incidents[iid]
        return {**inc, "status": "closed"}
