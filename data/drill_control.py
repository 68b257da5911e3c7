"""The demo feed's exercise desk: which scenarios there are, and one run at a time — started,
paused, resumed, stopped — through a small loopback HTTP interface on the feed's own port.

======  =====================================  =============================================
method  path                                   answer (JSON)
======  =====================================  =============================================
GET     ``/scenarios``                         ``{"scenarios": [{name, title, steps,
                                               duration_s, ok, error}]}``
GET     ``/scenario/status``                   the run's status (``state`` ``idle`` before
                                               any): drill_id, name, title, state, position,
                                               position_s, duration_s, steps_done,
                                               steps_total, speed, note, messages
POST    ``/scenario/start?name=N[&speed=X]``   status of the new run; 400 with the
                                               validator's message for an unknown or bad
                                               scenario; 409 while another run is on
POST    ``/scenario/pause`` / ``resume`` /     status; 409 when the run is not in a state
        ``stop``                               that allows it
======  =====================================  =============================================

Only loopback clients may use it (403 otherwise); the feed keeps serving whatever happens.
The desk is the province's ``drill`` (:class:`~data.province_model.Province` calls
:meth:`advance` and :meth:`apply` on every step, in the feed's own thread).
"""
from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson

from data.drill import DrillRun
from data.province_model import Province, Registry
from data.scenario import SCENARIO_DIR, Scenario, ScenarioError, Step, available, load

REPEAT_AFTER_S = 600.0  # --demo-scenario: simulated seconds between two runs
CONTROL_PATHS = frozenset(("/scenarios", "/scenario/status", "/scenario/start", "/scenario/pause",
                           "/scenario/resume", "/scenario/stop"))


class DrillStateError(Exception):
    """An action the current run's state does not allow (HTTP 409)."""


def storm_scenario(rate: float = 400.0, minutes: float = 1.0) -> Scenario:
    """The storm of issue #18 as a one-step scenario: ``rate`` events a minute."""
    duration = float(minutes) * 60.0
    step = Step(1, 0, 0.0, "storm", {"rate": float(rate), "duration": duration,
                                     "span": duration})
    return Scenario("storm", "事件风暴压力测试", f"{rate:g} events a minute for {minutes:g} min",
                    Path("<storm>"), (step,), duration)


class DrillControl:
    """Runs one exercise at a time in ``province`` (see the module docstring).

    Parameters
    ----------
    province : Province
        The simulated province the runs play in.
    registry : Registry
        The registry scenarios are validated against.
    directory : Path
        Where the scenario files are.
    """

    def __init__(self, province: Province, registry: Registry, *,
                 directory: Path = SCENARIO_DIR):
        self.province, self.registry, self.directory = province, registry, Path(directory)
        self.run: DrillRun | None = None
        self.repeat: tuple[Scenario, float] | None = None  # --demo-scenario: (scenario, speed)
        self._restart_at: float | None = None
        province.drill = self

    # ------------------------------------------------------------------ the province's hooks
    @property
    def tag(self) -> bytes:
        return self.run.tag if self.run is not None else b""

    def advance(self, p: Province, dt: float) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        if self.run is not None and self.run.active:
            out = self.run.advance(p, dt)
        if self.repeat is not None and (self.run is None or not self.run.active):
            if self._restart_at is None:
                self._restart_at = p.t + REPEAT_AFTER_S
            elif p.t >= self._restart_at:
                self._restart_at = None
                self.run = DrillRun(self.repeat[0], speed=self.repeat[1])
                out.extend(self.run.advance(p, 0.0))
        return out

    def apply(self, p: Province, idx: np.ndarray, due_t: np.ndarray,
              values: np.ndarray) -> np.ndarray | None:
        if self.run is None or not self.run.active:
            return None
        return self.run.apply(p, idx, due_t, values)

    # ------------------------------------------------------------------ actions
    def scenarios(self) -> list[dict]:
        """Every scenario file with whether it validates against the registry."""
        out = []
        for name, path in available(self.directory).items():
            try:
                s = load(str(path), self.registry, self.directory)
                out.append({"name": name, "title": s.title, "steps": len(s.steps),
                            "duration_s": s.duration, "ok": True, "error": None})
            except ScenarioError as exc:
                out.append({"name": name, "title": None, "steps": None, "duration_s": None,
                            "ok": False, "error": str(exc)})
        return out

    def start(self, name: str | Scenario, *, speed: float = 1.0, repeat: bool = False) -> dict:
        """Start a scenario (a name, a path or a :class:`Scenario`); returns its status.

        Raises :class:`ScenarioError` when it does not validate, :class:`DrillStateError`
        while another run is on.
        """
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ScenarioError([f"speed must be a positive number, not {speed!r}"])
        scenario = name if isinstance(name, Scenario) else load(name, self.registry,
                                                                self.directory)
        if self.run is not None and self.run.active:
            raise DrillStateError(f"exercise {self.run.drill_id} ({self.run.scenario.name}) "
                                  f"is {self.run.state}: stop it first")
        self.run = DrillRun(scenario, speed=speed)
        self.repeat = (scenario, speed) if repeat else None
        self._restart_at = None
        return self.run.status()

    def pause(self) -> dict:
        if self.run is None or self.run.state != "running":
            raise DrillStateError(self._why("pause"))
        self.run.pause()
        return self.run.status()

    def resume(self) -> dict:
        if self.run is None or self.run.state != "paused":
            raise DrillStateError(self._why("resume"))
        self.run.resume()
        return self.run.status()

    def stop(self, *, publish=None) -> dict:
        """Stop the run; ``publish(messages)`` sends what closing it produces."""
        if self.run is None or not self.run.active:
            raise DrillStateError(self._why("stop"))
        self.repeat = None
        messages = self.run.end(self.province, "stopped")
        if publish is not None:
            publish(messages)
        return self.run.status()

    def _why(self, action: str) -> str:
        if self.run is None:
            return f"cannot {action}: no exercise has been started"
        return f"cannot {action}: exercise {self.run.drill_id} is {self.run.state}"

    def status(self) -> dict:
        if self.run is None:
            return {"state": "idle", "drill_id": None, "name": None}
        return {**self.run.status(), "repeat": self.repeat is not None}

    # ------------------------------------------------------------------ HTTP
    def handle(self, method: str, target: str, publish) -> tuple[int, dict] | None:
        """Answer a control request (:data:`CONTROL_PATHS`): ``(status, body)``, or None when
        the path is not one of them. The caller checks that the client is on loopback."""
        url = urlsplit(target)
        path = url.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        routes = {"/scenarios": ("GET", self.scenarios_body),
                  "/scenario/status": ("GET", self.status),
                  "/scenario/start": ("POST", lambda: self._start(query)),
                  "/scenario/pause": ("POST", self.pause),
                  "/scenario/resume": ("POST", self.resume),
                  "/scenario/stop": ("POST", lambda: self.stop(publish=publish))}
        if path not in routes:
            return None
        allowed, action = routes[path]
        if method != allowed:
            return 405, {"error": f"{path} takes {allowed}"}
        try:
            return 200, action()
        except ScenarioError as exc:
            return 400, {"error": str(exc), "errors": exc.errors}
        except DrillStateError as exc:
            return 409, {"error": str(exc)}

    def scenarios_body(self) -> dict:
        return {"scenarios": self.scenarios()}

    def _start(self, query: dict) -> dict:
        name = query.get("name")
        if not name:
            raise ScenarioError(["start needs ?name=SCENARIO"])
        if "/" in name or name.endswith(".toml"):  # only the shipped files, by name
            raise ScenarioError([f"unknown scenario {name!r}: give a name from /scenarios"])
        try:
            speed = float(query.get("speed", 1.0))
        except ValueError:
            raise ScenarioError([f"speed must be a number, not {query['speed']!r}"]) from None
        return self.start(name, speed=speed)


def json_body(body: dict) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)
