"""Incident command (指挥调度): from the first report to the after-action review.

接报 → 研判 → 启动响应 → 指挥调度 → 续报 → 处置结束 → 总结评估, all in
:class:`~sources.command.source.CommandSource` (no Panel here).

**Tables** (``data/schema.sql``, block "command"). Append-only: no row is ever updated or
deleted, a correction is a new row, so the state at any time T is "the latest row with
``acted_at <= T``" and case replay reads the store alone.

* ``command_incidents`` — every version of an incident under command (intake, correct,
  grade, response, close), keyed ``(incident_id, version)``: the facts as reported, the
  grade with the rule that fired (or the officer's reason), the response level and plan,
  the status, the acting user and time. Its origin is an officer, an alarm, or a feed
  incident taken over (which keeps the feed's id).
* ``incidents`` — the feed's table, read by the wall and the ticker: each version above is
  also appended there (``feed = 'command'``, level = the grade's colour, ``extra`` = JSON with
  grade and response level), so feed incidents and officers' incidents are one list and the
  wall shows an officer's incident (or its closure) at once.
* ``command_plan_items`` / ``command_plan_ticks`` — the checklist a response launch opened
  from ``data/plans/*.toml`` and every tick (who, when).
* ``command_tasks`` / ``command_task_states`` — one-key dispatch: teams, materials (a
  ``dispatches`` row of the inventory's ledger), experts (an audited ``expert_draws`` row),
  shelters; the state machine assigned → en_route → on_scene → done / cancelled.
* ``command_commitments`` — slot n of a team or shelter, primary key
  ``(resource, resource_id, slot)``: of two officers taking the same free team exactly one
  wins, even across processes sharing an event log.
* ``command_reports`` — phone notice, first, follow-up and final reports, versioned.
* ``command_notes`` — officers' notes on the timeline.

**Public API** (all actions take ``user`` and ``now``; refusals raise :class:`CommandError`,
a subclass of the inventory's error with a translatable ``key``; every action publishes on
the hub topic ``command`` after its commit, and incident versions also on ``incident``):

* intake: ``open_incident``, ``open_from_alarm`` / ``alarm_intake`` (the /alarms button),
  ``take_over`` (a feed incident), ``correct``;
* grade and response: ``set_grade``, ``launch_response``, ``tick_item``, ``close_incident``,
  ``add_note``;
* dispatch: ``support`` (decision support), ``assign_team``, ``request_materials``,
  ``draw_experts``, ``open_shelter``, ``advance_task``, ``tasks``, ``commitments``;
* reports: ``timers``, ``draft_report``, ``submit_report``, ``revise_report``,
  ``export_report``;
* review: ``timeline``, ``incident_state`` (replay at T), ``replay_times``,
  ``after_action``, ``export_review``;
* the wall: ``wall_incidents(now)`` — active incidents (feed and command) with grade,
  response level, tasks by state and the next report due.
"""
from __future__ import annotations

from .catalog import CATEGORIES, GRADES, RESPONSE_LEVELS, SUBTYPES
from .common import TASK_STATES, TRANSITIONS, CommandError
from .deadlines import ReportRules, Timer, report_timers
from .grading import compute_grade, production_safety_grade
from .plans import PlanError, load_plans
from .source import CommandSource

__all__ = ["CATEGORIES", "GRADES", "RESPONSE_LEVELS", "SUBTYPES", "TASK_STATES", "TRANSITIONS",
           "CommandError", "CommandSource", "PlanError", "ReportRules", "Timer",
           "compute_grade", "load_plans", "production_safety_grade", "report_timers"]
