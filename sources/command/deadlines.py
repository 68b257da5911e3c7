"""Reporting deadlines (信息报送): which report is due when, and whether it was on time.

Pure functions of an incident's versions, its reports and a clock, so the wall, the report
editor, replay and the after-action review all agree, and tests fix the clock.

* **phone** (电话报告): 特别重大/重大 (grade I/II) only — within ``phone_min`` (30) minutes of
  the bureau learning of it, or of the upgrade to I/II if it came later.
* **first** (首报): within ``first_min`` (60) minutes of the bureau learning of it
  (``learned_at``), whatever the grade.
* **followup** (续报): after the first report, the next one is due ``cadence_min`` after the
  last report, or ``change_min`` after a change of the situation (a correction of the facts,
  a new grade, a response launched or changed) made since the last report, whichever is
  earlier. No follow-up falls due after closure; one that fell due before and was never filed
  stays overdue.
* **final** (终报): within ``final_h`` hours of closure.

A timer is ``pending`` (due later), ``overdue`` (due passed, not filed), ``done`` (filed by
the due time) or ``late`` (filed after it). A report counts at the time of its first version:
a correction is not a new report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

#: incident changes that make a follow-up report due sooner
SITUATION_CHANGES = frozenset({"correct", "grade", "response"})
REPORT_KINDS = ("phone", "first", "followup", "final")


@dataclass(frozen=True)
class ReportRules:
    """The deadlines (minutes / hours) of the reporting rules; the bureau may change them."""

    phone_min: float = 30.0
    first_min: float = 60.0
    cadence_min: float = 120.0
    change_min: float = 60.0
    final_h: float = 24.0


@dataclass(frozen=True)
class Timer:
    """One report the incident owes: kind, number (follow-ups count 1, 2, ...), due, done."""

    kind: str
    n: int
    due_at: datetime
    done_at: datetime | None
    report_id: int | None
    state: str  # pending / overdue / done / late

    def as_dict(self) -> dict:
        return asdict(self)


def _state(due: datetime, done: datetime | None, now: datetime) -> str:
    if done is not None:
        return "done" if done <= due else "late"
    return "overdue" if now > due else "pending"


def report_timers(versions: list[dict], reports: list[dict], now: datetime,
                  rules: ReportRules = ReportRules()) -> list[Timer]:
    """The timers of one incident at ``now``.

    ``versions``: the incident's versions up to ``now`` (dicts with ``acted_at``, ``change``,
    ``grade``, ``status``, ``learned_at``, ``closed_at``), oldest first. ``reports``: its
    reports up to ``now`` (``report_id``, ``kind``, ``submitted_at`` of the first version).
    """
    if not versions:
        return []
    versions = sorted(versions, key=lambda v: v["acted_at"])
    last = versions[-1]
    learned = last["learned_at"]
    by_kind: dict[str, list[dict]] = {k: [] for k in REPORT_KINDS}
    for r in sorted(reports, key=lambda r: (r["submitted_at"], r["report_id"])):
        if r["kind"] in by_kind:
            by_kind[r["kind"]].append(r)

    def first_of(kind: str) -> tuple[datetime | None, int | None]:
        rows = by_kind[kind]
        return (rows[0]["submitted_at"], rows[0]["report_id"]) if rows else (None, None)

    timers: list[Timer] = []
    major = next((v for v in versions if v["grade"] in ("I", "II")), None)
    if major is not None:
        start = learned if major is versions[0] else max(learned, major["acted_at"])
        due = start + timedelta(minutes=rules.phone_min)
        done, rid = first_of("phone")
        timers.append(Timer("phone", 1, due, done, rid, _state(due, done, now)))
    due = learned + timedelta(minutes=rules.first_min)
    first_done, rid = first_of("first")
    timers.append(Timer("first", 1, due, first_done, rid, _state(due, first_done, now)))
    closed_at = last["closed_at"] if last["status"] == "closed" else None
    if first_done is not None:
        timers.extend(_followups(versions, by_kind["followup"], first_done, closed_at, now,
                                 rules))
    if closed_at is not None:
        due = closed_at + timedelta(hours=rules.final_h)
        done, rid = first_of("final")
        timers.append(Timer("final", 1, due, done, rid, _state(due, done, now)))
    return timers


def _followups(versions, followups, anchor, closed_at, now, rules) -> list[Timer]:
    out: list[Timer] = []
    changes = [v["acted_at"] for v in versions if v["change"] in SITUATION_CHANGES]
    pending = list(followups)
    n = 0
    while True:
        due = anchor + timedelta(minutes=rules.cadence_min)
        changed = [c for c in changes if c > anchor]
        if changed:
            due = min(due, changed[0] + timedelta(minutes=rules.change_min))
        filed = next((r for r in pending if r["submitted_at"] > anchor), None)
        n += 1
        if filed is not None:
            out.append(Timer("followup", n, due, filed["submitted_at"], filed["report_id"],
                             _state(due, filed["submitted_at"], now)))
            anchor = filed["submitted_at"]
            pending = [r for r in pending if r is not filed]
            continue
        if closed_at is None or due <= closed_at:
            out.append(Timer("followup", n, due, None, None, _state(due, None, now)))
        return out


def next_due(timers: list[Timer]) -> Timer | None:
    """The open timer (pending or overdue) due first, or None when nothing is owed."""
    open_ = [t for t in timers if t.state in ("pending", "overdue")]
    return min(open_, key=lambda t: t.due_at) if open_ else None
