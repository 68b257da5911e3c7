"""Exercise scenarios (应急演练) as data: one TOML file per scenario in ``data/scenarios/``.

A scenario is a title, named targets resolved against the registry
(:mod:`data.scenario_targets`) and a timeline of steps, each ``[[step]]`` with ``at``
(``"+mm:ss"`` or ``"+h:mm:ss"`` from the start, never going back) and ``do``:

=========  ===================================================================================
do         fields
=========  ===================================================================================
ramp       ``sensor`` (target, or ``installation.kind``), ``to`` (number or ``"hi_hi * 1.4"``),
           ``over`` (duration; the sensor then holds the value and follows the script, not the
           model, until released)
release    ``sensor``, ``over``: back to the model's value
rain       ``where`` (place), ``move_to``, ``peak`` (mm/h), ``radius_km``, ``duration``: a rain
           cell of the model, scripted
warning    ``id`` (the scenario's own key), ``msg_type`` (Alert, Update, Cancel), ``event``,
           ``level``, ``area`` (counties or cities), ``headline``, ``description``,
           ``expires_in``
incident   ``id``, ``status`` (open, update, closed), ``kind``, ``where``, ``title``, ``level``,
           ``deaths``, ``injured``, ``missing``, ``note``
quake      ``where``, ``magnitude``, ``depth_km``, ``aftershocks = {count, over,
           max_magnitude, min_magnitude, radius_km}``
hotspots   ``where``, ``count``, ``radius_km``
storm      ``rate`` (events a minute: warnings, incidents, quakes, hotspots), ``duration``
note       ``text``: a line of the exercise's narrative (shown in its status)
=========  ===================================================================================

``python -m data.scenario check NAME|PATH --db PATH`` validates a scenario against a store
and prints ``OK`` or every error with its file and line (exit code 1);
``python -m data.scenario list --db PATH`` lists the shipped ones.
"""
from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.laws import EVENT_ZH, INCIDENT_ZH
from data.province_model import Registry
from data.scenario_targets import Place, Resolver, Target, TargetError

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
LEVELS = ("blue", "yellow", "orange", "red")
EVENTS = tuple(EVENT_ZH)
INCIDENT_KINDS = (*INCIDENT_ZH, "earthquake")
FIELDS = {  # do: (required, optional)
    "ramp": ({"sensor", "to"}, {"over"}),
    "release": ({"sensor"}, {"over"}),
    "rain": ({"where", "peak"}, {"move_to", "radius_km", "duration"}),
    "warning": ({"id"}, {"msg_type", "event", "level", "area", "headline", "description",
                         "expires_in"}),
    "incident": ({"id"}, {"status", "kind", "where", "title", "level", "deaths", "injured",
                          "missing", "note"}),
    "quake": ({"where", "magnitude"}, {"depth_km", "aftershocks"}),
    "hotspots": ({"where"}, {"count", "radius_km"}),
    "storm": (set(), {"rate", "duration"}),
    "note": ({"text"}, set()),
}
_TIME = re.compile(r"^\+?(?:(\d+):)?(\d+):(\d{2})$")


class ScenarioError(ValueError):
    """A scenario that cannot run; ``errors`` lists every problem, each naming its line."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class Step:
    """One resolved step: ``at`` seconds from the start, ``do``, and ``args`` ready to play."""

    index: int
    line: int
    at: float
    do: str
    args: dict = field(hash=False)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    name: str
    title: str
    description: str
    path: Path
    steps: tuple[Step, ...]
    duration: float


def parse_duration(value, what: str = "time") -> float:
    """Seconds of ``"+mm:ss"``, ``"h:mm:ss"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"bad {what} {value!r}")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"bad {what} {value!r}: seconds must be ≥ 0")
        return float(value)
    m = _TIME.match(str(value).strip())
    if not m or int(m[3]) >= 60 or (m[1] is not None and int(m[2]) >= 60):
        raise ValueError(f"bad {what} {value!r}: write '+mm:ss' or '+h:mm:ss'")
    return int(m[1] or 0) * 3600 + int(m[2]) * 60 + int(m[3])


def clock(seconds: float) -> str:
    """``+mm:ss`` (``+h:mm:ss`` from an hour)."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"+{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"+{rest // 60:02d}:{rest % 60:02d}"


def _lines(text: str) -> tuple[list[int], dict[str, int]]:
    """Line numbers of the ``[[step]]`` headers and of the targets' definitions."""
    steps, targets, in_targets = [], {}, False
    for n, line in enumerate(text.splitlines(), start=1):
        if re.match(r"^\s*\[\[\s*step\s*\]\]", line):
            steps.append(n)
        if re.match(r"^\s*\[", line):
            in_targets = bool(re.match(r"^\s*\[\s*targets\s*\]", line))
        elif in_targets and (m := re.match(r"^\s*([A-Za-z_][\w-]*)\s*=", line)):
            targets[m[1]] = n
    return steps, targets


class _Compiler:
    """Validates and resolves one scenario file; collects every error."""

    def __init__(self, path: Path, text: str, resolver: Resolver):
        self.path, self.text, self.res = path, text, resolver
        self.errors: list[str] = []
        self.targets: dict[str, Target] = {}
        self.warnings: dict[str, dict] = {}
        self.incidents: dict[str, dict] = {}
        self.name = path.stem

    def error(self, line: int | None, message: str) -> None:
        self.errors.append(f"{self.path}:{line or 1}: {message}")

    def compile(self) -> Scenario:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            self.error(int(m[1]) if m else 1, f"not valid TOML: {exc}")
            raise ScenarioError(self.errors) from None
        step_lines, target_lines = _lines(self.text)
        unknown = sorted(set(data) - {"title", "description", "targets", "step"})
        for key in unknown:
            self.error(1, f"unknown top-level key {key!r} (title, description, targets, step)")
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            self.error(1, "a scenario needs a title")
        targets = data.get("targets", {})
        if not isinstance(targets, dict):
            self.error(1, "targets must be a table")
            targets = {}
        for name, spec in targets.items():
            try:
                self.targets[name] = self.res.target(spec)
            except TargetError as exc:
                self.error(target_lines.get(name), f"target {name!r}: {exc}")
        raw_steps = data.get("step", [])
        if not isinstance(raw_steps, list) or not raw_steps:
            self.error(1, "a scenario needs at least one [[step]]")
            raw_steps = []
        steps, last, end = [], 0.0, 0.0
        for i, raw in enumerate(raw_steps, start=1):
            line = step_lines[i - 1] if i - 1 < len(step_lines) else None
            step = self._step(i, line, raw, last)
            if step is not None:
                last = step.at
                steps.append(step)
                end = max(end, step.at + step.args.get("span", 0.0))
        if self.errors:
            raise ScenarioError(self.errors)
        return Scenario(self.name, title.strip(), str(data.get("description", "")).strip(),
                        self.path, tuple(steps), end)

    # ------------------------------------------------------------------ one step
    def _step(self, i: int, line: int | None, raw, last: float) -> Step | None:
        where = f"step {i}"
        if not isinstance(raw, dict):
            self.error(line, f"{where}: a step is a table")
            return None
        do = raw.get("do")
        try:
            at = parse_duration(raw.get("at"), "at")
        except ValueError as exc:
            self.error(line, f"{where}: {exc}")
            return None
        where = f"step {i} ({clock(at)}, do = {do!r})"
        if do not in FIELDS:
            self.error(line, f"{where}: unknown action {do!r} (one of {', '.join(FIELDS)})")
            return None
        if at < last:
            self.error(line, f"{where}: at {clock(at)} comes before the previous step's "
                             f"{clock(last)} (steps are in time order)")
            return None
        required, optional = FIELDS[do]
        fields = {k: v for k, v in raw.items() if k not in ("at", "do")}
        for key in sorted(set(fields) - required - optional):
            hint = difflib.get_close_matches(key, sorted(required | optional), 1)
            self.error(line, f"{where}: unknown key {key!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        for key in sorted(required - set(fields)):
            self.error(line, f"{where}: missing {key!r}")
        if (set(fields) - required - optional) or (required - set(fields)):
            return None
        try:
            args = getattr(self, f"_{do}")(fields, i, at)
        except (TargetError, ValueError, TypeError) as exc:
            self.error(line, f"{where}: {exc}")
            return None
        return Step(i, line or 0, at, do, args)

    def _ref(self, ref) -> Target:
        """A target by name, a place by name, ``[lon, lat]`` or an inline target table."""
        if isinstance(ref, dict):
            return self.res.target(ref)
        if isinstance(ref, list):
            return Target("place", self.res.place(ref))
        if isinstance(ref, str) and ref in self.targets:
            return self.targets[ref]
        if isinstance(ref, str) and "." not in ref:
            try:
                return Target("place", self.res.place(ref))
            except TargetError:
                raise TargetError(f"{ref!r} is neither a target of this scenario "
                                  f"({', '.join(self.targets) or 'none'}) nor a county or "
                                  f"city") from None
        raise TargetError(f"unknown target {ref!r}")

    def _sensor(self, ref) -> int:
        if isinstance(ref, str) and "." in ref:
            name, kind = ref.split(".", 1)
            if name not in self.targets:
                raise TargetError(f"unknown target {name!r} in {ref!r}")
            return self.res.sensor_of(self.targets[name], kind)
        if isinstance(ref, str) and ref not in self.targets:
            raise TargetError(f"unknown target {ref!r} (this scenario's targets: "
                              f"{', '.join(self.targets) or 'none'})")
        target = self._ref(ref)
        if target.kind != "sensor":
            raise TargetError(f"{ref!r} is not a sensor (name an installation's sensor as "
                              f"'{ref}.toxic_gas')")
        return self.res.sensor_of(target, None)

    def _number(self, value, what: str, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                lo <= value <= hi):
            raise ValueError(f"{what} must be a number from {lo:g} to {hi:g}, not {value!r}")
        return float(value)

    def _ramp(self, f: dict, i: int, at: float) -> dict:
        sensor = self._sensor(f["sensor"])
        over = parse_duration(f.get("over", 0), "over")
        return {"sensor": sensor, "sensor_id": self.res.sensor_ids[sensor],
                "value": self.res.value(sensor, f["to"]), "over": over, "span": over}

    def _release(self, f: dict, i: int, at: float) -> dict:
        sensor = self._sensor(f["sensor"])
        over = parse_duration(f.get("over", 60), "over")
        return {"sensor": sensor, "sensor_id": self.res.sensor_ids[sensor], "over": over,
                "span": over}

    def _rain(self, f: dict, i: int, at: float) -> dict:
        start = self._ref(f["where"]).place
        stop = self._ref(f["move_to"]).place if "move_to" in f else start
        duration = parse_duration(f.get("duration", "60:00"), "duration")
        if duration <= 0:
            raise ValueError("duration must be more than zero")
        return {"lon0": start.lon, "lat0": start.lat, "lon1": stop.lon, "lat1": stop.lat,
                "peak": self._number(f["peak"], "peak (mm/h)", 0.1, 300),
                "radius": self._number(f.get("radius_km", 25), "radius_km", 1, 300) / 111.2,
                "duration": duration, "span": duration}

    def _warning(self, f: dict, i: int, at: float) -> dict:
        key = str(f["id"])
        state = self.warnings.get(key)
        msg_type = f.get("msg_type", "Alert" if state is None else "Update")
        if msg_type not in ("Alert", "Update", "Cancel"):
            raise ValueError(f"msg_type must be Alert, Update or Cancel, not {msg_type!r}")
        if msg_type == "Alert" and state is not None:
            raise ValueError(f"warning {key!r} was already issued: Update or Cancel it")
        if msg_type != "Alert" and state is None:
            raise ValueError(f"warning {key!r} is not issued yet: the first message is an Alert")
        if state is not None and state["msg_type"] == "Cancel":
            raise ValueError(f"warning {key!r} was cancelled")
        w = dict(state or {})
        if "event" in f or state is None:
            if f.get("event") not in EVENTS:
                raise ValueError(f"event must be one of {', '.join(EVENTS)}, not "
                                 f"{f.get('event')!r}")
            w["event"] = f["event"]
        if "level" in f or state is None:
            if f.get("level") not in LEVELS:
                raise ValueError(f"level must be one of {', '.join(LEVELS)}, not "
                                 f"{f.get('level')!r}")
            w["level"] = f["level"]
        if "area" in f or state is None:
            if "area" not in f:
                raise ValueError("an Alert needs an area (counties or cities)")
            w["area"] = self.res.area(f["area"])
        w["expires_in"] = parse_duration(f.get("expires_in", w.get("expires_in", "6:00:00")),
                                         "expires_in")
        w.update(msg_type=msg_type, headline=f.get("headline"),
                 description=f.get("description", w.get("description")), key=key)
        self.warnings[key] = w
        return dict(w)

    def _incident(self, f: dict, i: int, at: float) -> dict:
        key = str(f["id"])
        state = self.incidents.get(key)
        status = f.get("status", "open" if state is None else "update")
        if status not in ("open", "update", "closed"):
            raise ValueError(f"status must be open, update or closed, not {status!r}")
        if state is None and status != "open":
            raise ValueError(f"incident {key!r} is not open yet: the first status is open")
        if state is not None and status == "open":
            raise ValueError(f"incident {key!r} is already open: use status update")
        if state is not None and state["status"] == "closed":
            raise ValueError(f"incident {key!r} was closed")
        inc = dict(state or {"deaths": 0, "injured": 0, "missing": 0, "level": "blue"})
        if state is None:
            if f.get("kind") not in INCIDENT_KINDS:
                raise ValueError(f"kind must be one of {', '.join(INCIDENT_KINDS)}, not "
                                 f"{f.get('kind')!r}")
            if "where" not in f:
                raise ValueError("an incident needs a place: where")
            inc["kind"] = f["kind"]
        elif "kind" in f or "where" in f:
            raise ValueError("an incident keeps its kind and place")
        if "where" in f:
            place = self._ref(f["where"]).place
            inc.update(lon=place.lon, lat=place.lat, label=place.label)
        if "level" in f:
            if f["level"] not in LEVELS:
                raise ValueError(f"level must be one of {', '.join(LEVELS)}")
            inc["level"] = f["level"]
        for k in ("deaths", "injured", "missing"):
            if k in f:
                inc[k] = int(self._number(f[k], k, 0, 100_000))
        inc["title"] = f.get("title", inc.get("title")) or \
            f"{inc['label']}{INCIDENT_ZH.get(inc['kind'], '地震灾害')}"
        inc.update(status=status, note=f.get("note", ""), key=key)
        self.incidents[key] = inc
        return dict(inc)

    def _quake(self, f: dict, i: int, at: float) -> dict:
        place: Place = self._ref(f["where"]).place
        mag = self._number(f["magnitude"], "magnitude", -2, 10)
        depth = self._number(f.get("depth_km", 10), "depth_km", 0, 700)
        out = {"lon": place.lon, "lat": place.lat, "magnitude": mag, "depth_km": depth,
               "aftershocks": []}
        a = f.get("aftershocks")
        if a is not None:
            if not isinstance(a, dict):
                raise ValueError("aftershocks is a table {count, over, max_magnitude, ...}")
            extra = sorted(set(a) - {"count", "over", "max_magnitude", "min_magnitude",
                                     "radius_km"})
            if extra:
                raise ValueError(f"unknown key {extra[0]!r} in aftershocks")
            n = int(self._number(a.get("count", 10), "aftershocks.count", 0, 10_000))
            over = parse_duration(a.get("over", "30:00"), "aftershocks.over")
            top = self._number(a.get("max_magnitude", round(mag - 1.2, 1)),
                               "aftershocks.max_magnitude", -2, mag)
            low = self._number(a.get("min_magnitude", min(1.0, top)),
                               "aftershocks.min_magnitude", -2, top)
            radius = self._number(a.get("radius_km", 8), "aftershocks.radius_km", 0, 200) / 111.2
            # Omori's law (rate ∝ 1 / (t + c)) and Gutenberg-Richter, from a seed of the file
            rng = np.random.default_rng(zlib.crc32(f"{self.name}/{i}".encode()))
            c = 60.0
            times = np.sort(c * ((1 + over / c) ** rng.random(n) - 1))
            b = np.log(10)
            u = rng.random(n)
            mags = low - np.log(1 - u * (1 - np.exp(-b * (top - low)))) / b
            for t, m in zip(times, mags, strict=True):
                r, th = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
                out["aftershocks"].append({
                    "after": float(t), "magnitude": round(float(m), 1),
                    "lon": round(place.lon + r * math.cos(th) / math.cos(math.radians(place.lat)),
                                 5),
                    "lat": round(place.lat + r * math.sin(th), 5),
                    "depth_km": round(float(max(1.0, depth + rng.normal(0, 2))), 1)})
            out["span"] = over
        return out

    def _hotspots(self, f: dict, i: int, at: float) -> dict:
        place = self._ref(f["where"]).place
        return {"lon": place.lon, "lat": place.lat,
                "count": int(self._number(f.get("count", 5), "count", 1, 10_000)),
                "radius": self._number(f.get("radius_km", 3), "radius_km", 0, 200) / 111.2}

    def _storm(self, f: dict, i: int, at: float) -> dict:
        duration = parse_duration(f.get("duration", "01:00"), "duration")
        return {"rate": self._number(f.get("rate", 400), "rate (events a minute)", 1, 1e6),
                "duration": duration, "span": duration}

    def _note(self, f: dict, i: int, at: float) -> dict:
        return {"text": str(f["text"])}


def compile_scenario(path: str | Path, registry: Registry, *, text: str | None = None) -> Scenario:
    """Validate a scenario file against ``registry``; raises :class:`ScenarioError`."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return _Compiler(path, text, Resolver(registry)).compile()


def available(directory: Path = SCENARIO_DIR) -> dict[str, Path]:
    """Shipped scenarios by name (file stem)."""
    return {p.stem: p for p in sorted(Path(directory).glob("*.toml"))}


def find(name_or_path: str, directory: Path = SCENARIO_DIR) -> Path:
    """The file of a scenario name or path; raises :class:`ScenarioError` when unknown."""
    known = available(directory)
    if name_or_path in known:
        return known[name_or_path]
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.is_file():
        if not p.is_file():
            raise ScenarioError([f"{p}: no such file"])
        return p
    if name_or_path not in known:
        raise ScenarioError([f"unknown scenario {name_or_path!r} (available: "
                             f"{', '.join(known) or 'none'})"])
    return known[name_or_path]


def load(name_or_path: str, registry: Registry, directory: Path = SCENARIO_DIR) -> Scenario:
    """Find and validate a scenario."""
    return compile_scenario(find(name_or_path, directory), registry)


def main(argv: list[str] | None = None) -> int:
    """``python -m data.scenario check NAME|PATH... --db PATH`` / ``list --db PATH``."""
    p = argparse.ArgumentParser(description="Check exercise scenarios against a store.")
    p.add_argument("command", choices=["check", "list"])
    p.add_argument("scenarios", nargs="*", help="names or paths (check: default all)")
    p.add_argument("--db", default="var/console.duckdb", help="store holding the registry")
    args = p.parse_args(argv)
    from data.simulate import read_registry

    if not Path(args.db).exists():
        sys.stderr.write(f"no store at {args.db}: build one with python -m data.generate\n")
        return 2
    registry = read_registry(args.db)
    names = args.scenarios or list(available())
    bad = 0
    for name in names:
        try:
            s = load(name, registry)
        except ScenarioError as exc:
            bad += 1
            sys.stdout.write(f"{exc}\n")
            continue
        line = f"OK {s.name}: {len(s.steps)} steps, {clock(s.duration)}"
        sys.stdout.write((f"{line}  {s.title}" if args.command == "list" else line) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
