"""Playing an exercise scenario (:mod:`data.scenario`) inside the demo province.

A :class:`DrillRun` advances with the province's simulated time (times ``speed``): it sends
the scenario's warnings, incidents, quakes and hotspots, drives its sensors along their
ramps instead of the model (so the console's alarm engine raises the hi / hi-hi alarms
itself), and rains its own cells on the model's gauges, rivers and reservoirs. The rest of
the province goes on as usual around it.

Every message born of a run carries ``"exercise": true``, ``"drill_id"`` and
``"scenario"`` (warnings also CAP's ``"status": "Exercise"``), travels in a frame of its
own (a reading of a driven sensor too), and its headline or title starts with 【演练】, so
exercise data is never taken for real. When the run ends (finished or stopped), what it
left open is closed: its warnings are cancelled, its incidents closed, its sensors and
rain handed back to the model.
"""
from __future__ import annotations

import math
import os
import time
import zlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson

from data.laws import CST, RESERVOIR_GAIN, RIVER_GAIN, SATELLITES, Cell, headline
from data.province_model import Province
from data.scenario import Scenario, Step, clock
from data.storm import Storm

MARK = "【演练】"
SENDER = "应急演练导调组"
DRIVEN_NOISE = 0.01  # noise of a driven sensor, in spans: it looks live, it stays scripted


def new_drill_id() -> str:
    """``DR-20261201T163000-3f9a``: when it started (China time) and four random hex digits."""
    return f"DR-{datetime.now(CST).strftime('%Y%m%dT%H%M%S')}-{os.urandom(2).hex()}"


def marked(text: str) -> str:
    return text if "演练" in text else MARK + text


@dataclass
class Ramp:
    """A driven sensor: from ``v0`` at ``t0`` to ``v1`` at ``t1`` (simulated time), then held;
    ``release``: towards the model's value instead, and handed back at ``t1``."""

    v0: float
    v1: float
    t0: float
    t1: float
    release: bool = False

    def weight(self, t: np.ndarray) -> np.ndarray:
        if self.t1 <= self.t0:
            return np.ones_like(t)
        return np.clip((t - self.t0) / (self.t1 - self.t0), 0.0, 1.0)


class DrillRun:
    """One play of a scenario (see the module docstring).

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.
    speed : float
        Scenario seconds per simulated second (the simulator's ``--speed`` applies too).
    drill_id : str, optional
        Unique per run (:func:`new_drill_id` by default).
    """

    def __init__(self, scenario: Scenario, *, speed: float = 1.0, drill_id: str | None = None):
        self.scenario = scenario
        self.speed = max(float(speed), 1e-6)
        self.drill_id = drill_id or new_drill_id()
        self.state = "running"
        self.position = 0.0
        self.next_step = 0
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.note = ""
        self.ramps: dict[int, Ramp] = {}
        self.cells: list[Cell] = []
        self.warnings: dict[str, dict] = {}     # sent and not cancelled, by scenario key
        self.incidents: dict[str, dict] = {}    # open, by scenario key
        self.pending: list[tuple[float, dict]] = []  # (position, message) still to send
        self.storms: list[Storm] = []
        self.sent = 0
        self.serial = 0
        self.rng = np.random.default_rng(zlib.crc32(self.drill_id.encode()))
        self.tag = (b',"exercise":true,"drill_id":' + orjson.dumps(self.drill_id)
                    + b',"scenario":' + orjson.dumps(scenario.name))

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")

    def status(self) -> dict:
        s = self.scenario
        return {"drill_id": self.drill_id, "name": s.name, "title": s.title,
                "state": self.state, "position_s": round(self.position, 1),
                "position": clock(self.position), "duration_s": s.duration,
                "duration": clock(s.duration), "steps_done": self.next_step,
                "steps_total": len(s.steps), "speed": self.speed, "note": self.note,
                "messages": self.sent,
                "started_at": datetime.fromtimestamp(self.started_at, CST).isoformat(
                    timespec="seconds"),
                "ended_at": None if self.ended_at is None else datetime.fromtimestamp(
                    self.ended_at, CST).isoformat(timespec="seconds")}

    def _message(self, p: Province, body: dict) -> tuple[int, bytes]:
        self.sent += 1
        return p.message({"ts": p.now_text(), **body, "exercise": True,
                          "drill_id": self.drill_id, "scenario": self.scenario.name})

    # ------------------------------------------------------------------ time
    def advance(self, p: Province, dt: float) -> list[tuple[int, bytes]]:
        """Move the run ``dt`` simulated seconds on; the messages it sends now."""
        if self.state == "paused":
            for c in self.cells:  # a paused exercise's rain stands still and keeps its strength
                c.lon -= c.vlon * dt
                c.lat -= c.vlat * dt
                c.born += dt
            for r in self.ramps.values():
                r.t0 += dt
                r.t1 += dt
            return []
        if self.state != "running":
            return []
        self.position += dt * self.speed
        out: list[tuple[int, bytes]] = []
        steps = self.scenario.steps
        while self.next_step < len(steps) and steps[self.next_step].at <= self.position:
            out.extend(self._do(p, steps[self.next_step]))
            self.next_step += 1
        due = [m for m in self.pending if m[0] <= self.position]
        if due:
            self.pending = [m for m in self.pending if m[0] > self.position]
            out.extend(self._message(p, body) for _, body in sorted(due, key=lambda m: m[0]))
        for storm in self.storms:
            out.extend(self._message(p, body) for body in storm.advance(p, dt * self.speed))
        self.storms = [s for s in self.storms if not s.done]
        if (self.next_step >= len(steps) and not self.pending and not self.storms
                and self.position >= self.scenario.duration):
            out.extend(self.end(p, "finished"))
        return out

    def pause(self) -> None:
        self.state = "paused"

    def resume(self) -> None:
        self.state = "running"

    def end(self, p: Province, state: str = "stopped") -> list[tuple[int, bytes]]:
        """Finish or stop: close what the run left open and hand everything back."""
        out = []
        for key, w in list(self.warnings.items()):
            out.append(self._warning_message(p, key, {**w, "msg_type": "Cancel",
                                                      "headline": None}))
        for key, inc in list(self.incidents.items()):
            out.append(self._incident_message(p, key, {**inc, "status": "closed",
                                                       "note": "演练结束"}))
        self.warnings.clear()
        self.incidents.clear()
        self.ramps.clear()
        for c in self.cells:
            if c in p.cells:
                p.cells.remove(c)
        self.cells.clear()
        p.acc -= p.acc_drill  # the exercise's rain leaves the rivers with it
        p.acc_drill[:] = 0.0
        for storm in self.storms:
            out.extend(self._message(p, body) for body in storm.finish(p))
        self.pending.clear()
        self.storms.clear()
        self.state = state
        self.ended_at = time.time()
        return out

    # ------------------------------------------------------------------ steps
    def _do(self, p: Province, step: Step) -> list[tuple[int, bytes]]:
        a = step.args
        if step.do == "note":
            self.note = a["text"]
            return []
        if step.do in ("ramp", "release"):
            i = a["sensor"]
            v0 = self._current(p, i)
            t1 = p.t + a["over"] / self.speed
            self.ramps[i] = Ramp(v0, a.get("value", v0), p.t, t1, release=step.do == "release")
            return []
        if step.do == "rain":
            life = a["duration"] / self.speed
            c = Cell(a["lon0"], a["lat0"], (a["lon1"] - a["lon0"]) / life,
                     (a["lat1"] - a["lat0"]) / life, a["radius"], a["peak"], p.t, life,
                     drill=self)
            self.cells.append(c)
            p.cells.append(c)
            return []
        if step.do == "warning":
            return [self._warning_message(p, a["key"], a)]
        if step.do == "incident":
            return [self._incident_message(p, a["key"], a)]
        if step.do == "quake":
            out = [self._message(p, self._quake(a))]
            for shock in a["aftershocks"]:
                self.pending.append((step.at + shock["after"], self._quake(shock)))
            return out
        if step.do == "hotspots":
            return [self._message(p, body) for body in self._hotspots(a)]
        if step.do == "storm":
            self.storms.append(Storm(rate_per_min=a["rate"], duration=a["duration"],
                                     drill_id=self.drill_id, rng=self.rng))
            return []
        raise ValueError(f"unknown action {step.do!r}")  # pragma: no cover - validated

    def _warning_message(self, p: Province, key: str, w: dict) -> tuple[int, bytes]:
        msg_type = w["msg_type"]
        sent = self.warnings.get(key, {})
        effective = sent.get("effective", p.now_text())
        expires = (sent.get("expires") if msg_type == "Cancel" else
                   p.time_text(p.t + w["expires_in"] / self.speed))
        names = p.county_names_of(w["area"][:3])
        text = w.get("headline") or headline(w["event"], w["level"], msg_type, names,
                                             len(w["area"]))
        if msg_type == "Cancel" and w.get("headline") is None:
            text = headline(w["event"], w["level"], "Cancel", names, len(w["area"]))
        body = {"type": "warning", "id": f"{self.drill_id}-W-{key}", "msg_type": msg_type,
                "event": w["event"], "level": w["level"], "headline": marked(text),
                "area": w["area"], "effective": effective, "expires": expires,
                "sender_name": SENDER, "status": "Exercise"}
        if w.get("description"):
            body["description"] = marked(w["description"])
        if msg_type == "Cancel":
            self.warnings.pop(key, None)
        else:
            self.warnings[key] = {**w, "effective": effective, "expires": expires}
        return self._message(p, body)

    def _incident_message(self, p: Province, key: str, inc: dict) -> tuple[int, bytes]:
        status = "closed" if inc["status"] == "closed" else "open"
        body = {"type": "incident", "id": f"{self.drill_id}-INC-{key}", "kind": inc["kind"],
                "lon": round(inc["lon"], 5), "lat": round(inc["lat"], 5),
                "title": marked(inc["title"]), "level": inc["level"], "status": status,
                "deaths": inc["deaths"], "injured": inc["injured"], "missing": inc["missing"]}
        if inc.get("note"):
            body["note"] = inc["note"]
        if status == "closed":
            self.incidents.pop(key, None)
        else:
            self.incidents[key] = inc
        return self._message(p, body)

    def _quake(self, a: dict) -> dict:
        self.serial += 1
        return {"type": "quake", "id": f"{self.drill_id}-EQ-{self.serial}",
                "lon": round(a["lon"], 5), "lat": round(a["lat"], 5),
                "depth_km": a["depth_km"], "magnitude": a["magnitude"]}

    def _hotspots(self, a: dict) -> list[dict]:
        out = []
        for _ in range(a["count"]):
            r, th = a["radius"] * math.sqrt(self.rng.random()), self.rng.uniform(0, 2 * math.pi)
            self.serial += 1
            out.append({"type": "hotspot", "id": f"{self.drill_id}-HS-{self.serial}",
                        "lon": round(a["lon"] + r * math.cos(th) / math.cos(math.radians(a["lat"])),
                                     5),
                        "lat": round(a["lat"] + r * math.sin(th), 5),
                        "confidence": round(float(self.rng.uniform(60, 100)), 1),
                        "satellite": str(self.rng.choice(SATELLITES))})
        return out

    # ------------------------------------------------------------------ readings
    def _current(self, p: Province, i: int) -> float:
        """Where sensor ``i`` stands now: its ramp's value, else the model's (no noise)."""
        r = self.ramps.get(i)
        if r is not None:
            return float(self._ramp_value(p, i, r, np.array([p.t]))[0])
        return float(self._model(p, np.array([i]), np.array([p.t]))[0])

    def _model(self, p: Province, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        v = p.normal[idx] + p.drift[idx] + p.offset[idx]
        rain = p.is_rain[idx]
        if rain.any():
            v[rain] = p.rain_at(p.lon[idx][rain], p.lat[idx][rain])
        level = p.is_river[idx] | p.is_reservoir[idx]
        if level.any():
            gain = np.where(p.is_river[idx][level], RIVER_GAIN, RESERVOIR_GAIN)
            v[level] = p.normal[idx][level] + p.span[idx][level] * p.acc[idx][level] / gain
        return v

    def _ramp_value(self, p: Province, i: int, r: Ramp, t: np.ndarray,
                    model: np.ndarray | None = None) -> np.ndarray:
        w = r.weight(t)
        end = r.v1
        if r.release:
            end = self._model(p, np.full(len(t), i), t) if model is None else model
        return r.v0 + (end - r.v0) * w

    def apply(self, p: Province, idx: np.ndarray, due_t: np.ndarray,
              values: np.ndarray) -> np.ndarray | None:
        """Drive the scripted sensors among the readings due (``values`` in place); return
        which readings belong to the exercise (driven, or made by its rain)."""
        if not self.active:
            return None
        mask = np.zeros(len(idx), dtype=bool)
        if self.ramps:
            for k in np.flatnonzero(np.isin(idx, list(self.ramps))):
                i = int(idx[k])
                r = self.ramps[i]
                t = due_t[k:k + 1]
                v = self._ramp_value(p, i, r, t, model=values[k:k + 1])[0]
                v += p.rng.normal(0, DRIVEN_NOISE) * p.span[i]
                values[k] = round(max(v, 0.0) if p.nonneg[i] else v, 3)
                mask[k] = True
                if r.release and due_t[k] >= r.t1:
                    del self.ramps[i]  # handed back to the model
        if self.cells:
            rain = p.is_rain[idx]
            if rain.any():
                mask[rain] |= p.rain_at(p.lon[idx][rain], p.lat[idx][rain],
                                        drill_only=True) > 0.05
        level = p.is_river[idx] | p.is_reservoir[idx]
        if level.any() and p.acc_drill.any():
            gain = np.where(p.is_river[idx], RIVER_GAIN, RESERVOIR_GAIN)
            mask |= level & (p.span[idx] * p.acc_drill[idx] / gain > 0.01)
        self.sent += int(mask.sum())
        return mask
