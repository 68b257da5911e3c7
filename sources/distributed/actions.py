"""Officers' actions in distributed mode: published to the log, one winner per object.

:meth:`Actions.install` puts, on the console's own source instances, an action path in
front of each replicated method (:data:`ACTIONS`); the classes and the embedded console are
untouched. An officer's call then:

1. reads the last event on the object's subject from the owner's stream (the centre whose
   jurisdiction the object belongs to: a province officer acknowledging a county alarm
   publishes into the county's stream) and waits until this process has applied it;
2. runs the method's own code on the view in a transaction that is rolled back
   (:meth:`ViewStore.dry_run`): a refusal is the embedded console's own, word for word
   ("already acknowledged by …", "team committed to … by …");
3. publishes the call, at a fixed time, with ``Nats-Expected-Last-Subject-Sequence`` set to
   that last event: if another officer's event on the object came first, JetStream refuses
   it, and the call goes back to step 1 — where step 2 now gives the loser the message that
   names the winner;
4. waits until this process has applied its own event and returns what the method returned
   (every process ran the same code on the same view: the same result everywhere).

Warnings are published as the version the officer's form produced (the row
:meth:`WarningSource._append` would write): a replica applying it later never checks the
expiry against its own clock. Calls inside an event being applied or tried go straight to
the method (a task's move ships its dispatch inside the same event).
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import secrets
from typing import Any

import param

from sources.warnings.cap import CHINA_TZ

from .log import EventLog, LogUnavailable, WrongLastSequence, new_id, subject
from .materialise import Materialiser
from .topology import Topology
from .viewstore import ViewStore, inside

log = logging.getLogger("console.distributed")

#: ``(source, method) -> (event subject kind, scope, object argument, time keyword)``; the
#: object argument (position or keyword) names the object whose subject decides the winner;
#: None: the call creates a new object (an id the apply order decides).
ACTIONS: dict[tuple[str, str], tuple[str, str, tuple[int, str] | None, str]] = {
    ("alarms", "acknowledge"): ("alarm", "up", (0, "alarm_id"), "at"),
    ("alarms", "dispose"): ("alarm", "up", (0, "alarm_id"), "at"),
    ("alarms", "close"): ("alarm", "up", (0, "alarm_id"), "at"),
    ("materials", "request_dispatch"): ("dispatch", "local", None, "now"),
    ("materials", "approve"): ("dispatch", "local", (0, "dispatch_id"), "now"),
    ("materials", "reject"): ("dispatch", "local", (0, "dispatch_id"), "now"),
    ("materials", "ship"): ("dispatch", "local", (0, "dispatch_id"), "now"),
    ("materials", "receive"): ("dispatch", "local", (0, "dispatch_id"), "now"),
    ("materials", "adjust"): ("stock", "local", None, "now"),
    ("experts", "draw"): ("expert_task", "local", None, "now"),
    ("experts", "redraw"): ("expert_task", "local", (0, "task_id"), "now"),
    ("experts", "rate"): ("expert_task", "local", (0, "task_id"), "now"),
    ("experts", "record_fee"): ("expert_task", "local", (0, "task_id"), "now"),
    ("command", "open_incident"): ("incident", "local", None, "now"),
    ("command", "take_over"): ("incident", "local", (0, "feed_incident_id"), "now"),
    ("command", "open_from_alarm"): ("incident", "local", None, "now"),
    ("command", "correct"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "set_grade"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "launch_response"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "tick_item"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "add_note"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "close_incident"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "open_shelter"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "request_materials"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "draw_experts"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "submit_report"): ("incident", "local", (0, "incident_id"), "now"),
    ("command", "revise_report"): ("report", "local", (0, "report_id"), "now"),
    ("command", "assign_team"): ("team", "local", (1, "team_id"), "now"),
    ("command", "advance_task"): ("task", "local", (0, "task_id"), "now"),
    ("drills", "record_start"): ("drill", "local", (0, "drill_id"), "now"),
    ("drills", "record_stop"): ("drill", "local", (0, "drill_id"), "now"),
    ("drills", "purge_rows"): ("drill", "local", (0, "drill_id"), "now"),
}
#: Random choices fixed when an action is published (the keyword, set when the officer left
#: it out): every replica then draws the same experts from the same pool.
SEEDED = {("experts", "draw"): "seed", ("experts", "redraw"): "seed",
          ("command", "draw_experts"): "seed"}
WARNING_ACTIONS = ("issue", "update", "cancel")
#: Alarm ids of a centre's engine start at ``int(code) * ALARM_ID_SPAN``.
ALARM_ID_SPAN = 10**9
_WARNING_ID = re.compile(r"^W\d{8}-(\d{6})-\d+$")


class _Captured(Exception):  # noqa: N818 - control flow: the version a form produced
    def __init__(self, row: dict, token: str | None):
        super().__init__("captured")
        self.row, self.token = row, token


def alarm_owner(alarm_id: Any, default: str) -> str:
    """The centre whose engine raised an alarm (from its id range)."""
    try:
        code = int(alarm_id) // ALARM_ID_SPAN
    except (TypeError, ValueError):
        return default
    return f"{code:06d}" if code >= 100000 else default


def warning_owner(warning_id: Any, default: str) -> str:
    """The centre that issued a warning (``W<day>-<centre>-<n>``; others: ``default``)."""
    hit = _WARNING_ID.match(str(warning_id))
    return hit.group(1) if hit else default


class Actions(param.Parameterized):
    """The distributed action path of one serving process (module docstring)."""

    log = param.ClassSelector(class_=EventLog, doc="The process's connection to the log.")
    topology = param.ClassSelector(class_=Topology, doc="Every centre.")
    me = param.String(doc="This process's centre.")
    materialiser = param.ClassSelector(class_=Materialiser, doc="Applies the view here.")
    store = param.ClassSelector(class_=ViewStore, doc="The view store.")
    timeout_s = param.Number(default=10.0, bounds=(0.1, None),
                             doc="Seconds to wait for the view to show an event.")
    retries = param.Integer(default=8, bounds=(1, None),
                            doc="Publishes tried when other officers keep coming first.")

    def __init__(self, **params):
        super().__init__(**params)
        self.sources: dict[str, Any] = {}
        self.published = 0
        self.lost_races = 0

    # ------------------------------------------------------------------ installing
    def install(self, console) -> Actions:
        """Put the action path in front of the replicated methods of the console's sources."""
        for (name, method) in ACTIONS:
            source = getattr(console, name)
            self.sources[name] = source
            setattr(source, method, self._wrap(name, method, source))
        w = console.warnings
        self.sources["warnings"] = w
        for method in WARNING_ACTIONS:
            setattr(w, method, self._wrap_warning(method, w))
        embedded_append = type(w)._append.__get__(w)

        def _append(row, token):  # the form's version: captured when tried, written when applied
            if inside() == "dry":  # the time it is issued is part of the version
                raise _Captured({"created_at": dt.datetime.now(dt.UTC), **row}, token)
            return embedded_append(row, token)

        w._append = _append
        alarms = console.alarms
        embedded_escalate = type(alarms).escalate_overdue.__get__(alarms)

        def escalate_overdue(now=None):  # decided at the ingest node; arrives on the log
            return embedded_escalate(now) if inside() else []

        alarms.escalate_overdue = escalate_overdue
        return self

    def _wrap(self, name: str, method: str, source):
        embedded = getattr(type(source), method).__get__(source)

        @functools.wraps(embedded)
        def action(*args, **kwargs):
            if inside():
                return embedded(*args, **kwargs)
            return self.act(name, method, args, kwargs)

        return action

    def _wrap_warning(self, method: str, source):
        embedded = getattr(type(source), method).__get__(source)

        @functools.wraps(embedded)
        def action(*args, **kwargs):
            if inside():
                return embedded(*args, **kwargs)
            return self.act_warning(embedded, args, kwargs)

        return action

    # ------------------------------------------------------------------ acting
    def act(self, name: str, method: str, args: tuple, kwargs: dict) -> Any:
        """One officer's call, published with the one-winner check (module docstring)."""
        kind, scope, obj, time_kw = ACTIONS[(name, method)]
        kwargs = dict(kwargs)
        if kwargs.get(time_kw) is None:
            kwargs[time_kw] = dt.datetime.now(dt.UTC)
        seed_kw = SEEDED.get((name, method))
        if seed_kw and kwargs.get(seed_kw) is None:
            kwargs[seed_kw] = secrets.randbits(62)
        key = None
        if obj is not None:
            pos, kw = obj
            key = args[pos] if len(args) > pos else kwargs.get(kw)
        owner = self.me
        if name == "alarms":
            owner = alarm_owner(key, self.me)
        subj = subject(owner, kind, key, scope=scope)
        payload = {"source": name, "method": method, "args": list(args), "kwargs": kwargs}

        def attempt(last: int | None) -> tuple[str, int | None, dict]:
            # no trial run here: DuckDB's sequences (task, dispatch, incident numbers) are
            # not rolled back, so a trial would number this view apart from the others. A
            # refusal (the loser of a race, a short stock) is the method's own, raised where
            # the event is applied -- here as everywhere -- and returned to the officer.
            return "call", last, payload

        return self._publish(subj, owner, attempt, expected=obj is not None)

    def act_warning(self, embedded, args: tuple, kwargs: dict) -> Any:
        """Issue, update or cancel: the version the form produces, one winner per warning."""
        method = embedded.__name__
        if method == "issue":
            row, token = self._capture(embedded, args, kwargs)
            day = row["created_at"].astimezone(CHINA_TZ).strftime("%Y%m%d")
            prefix = f"W{day}-{self.me}-"
            n = int(self.store.scalar("SELECT count(DISTINCT warning_id) FROM warnings "
                                      "WHERE warning_id LIKE ?", [prefix + "%"]) or 0)
            for _ in range(self.retries):
                n += 1
                row["warning_id"] = f"{prefix}{n:04d}"
                subj = subject(self.me, "warning", row["warning_id"])
                payload = {"row": row, "token": token}
                try:  # expected 0: the number is nobody's yet
                    return self._publish(subj, self.me, lambda last, p=payload: (
                        "warning", 0, p), expected=True, tries=1)
                except WrongLastSequence:  # another officer took this number: the next one
                    self.lost_races += 1
            raise LogUnavailable("could not number the new warning: too many at once")
        warning_id = args[0] if args else kwargs.get("warning_id")
        owner = warning_owner(warning_id, self.me)
        subj = subject(owner, "warning", warning_id)

        def attempt(last):  # checked again after each lost race: a cancelled one stays so
            row, token = self._capture(embedded, args, kwargs)
            return "warning", last, {"row": row, "token": token}

        return self._publish(subj, owner, attempt, expected=True)

    def _capture(self, embedded, args, kwargs) -> tuple[dict, str | None]:
        """The version a warning action would append (its own checks run; nothing written)."""
        try:
            with self.store.dry_run():
                embedded(*args, **kwargs)
        except _Captured as cap:
            return cap.row, cap.token
        raise RuntimeError(f"{embedded.__name__} appended nothing")

    def _publish(self, subj: str, owner: str, attempt, *, expected: bool,
                 tries: int | None = None) -> Any:
        centre = self.topology[owner]
        domain = None if owner == self.me else centre.domain
        tries = tries or self.retries
        for i in range(tries):
            last = None
            if expected:
                last, last_id = self.log.last_on_subject(centre.own, subj, domain=domain)
                if not self.materialiser.wait_applied(subj, last_id, self.timeout_s):
                    raise LogUnavailable("this console is behind the log; try again shortly")
            kind, last, payload = attempt(last)
            mid = new_id()
            self.materialiser.expect(mid)
            try:
                self.log.publish(subj, payload, kind=kind, msg_id=mid, expected_last=last,
                                 domain=domain)
            except WrongLastSequence:
                self.materialiser.forget(mid)
                if i == tries - 1:
                    raise
                self.lost_races += 1
                continue
            except BaseException:
                self.materialiser.forget(mid)
                raise
            self.published += 1
            result, error = self.materialiser.outcome(mid, self.timeout_s)
            if error is not None:
                raise error
            return result
        raise LogUnavailable("other officers kept acting on it first; try again")
