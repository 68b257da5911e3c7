"""``/command``: incident command (指挥调度) — intake, grade and response, decision support and
one-key dispatch, tasks, reports with their deadlines, timeline and case replay.

URL arguments: ``incident=ID`` (open that incident), ``alarm=ID`` (the intake filled from an
alarm: what the "open incident" button of /alarms links to), ``lang=zh|en``.
"""
from __future__ import annotations

from typing import ClassVar

import pandas as pd
import panel as pn

from sources.command.source import CommandSource
from views.command_desk import CommandDesk

from .base import Dashboard
from .theme import page


def source_of(runtime) -> CommandSource:
    """The process-wide command source (its registries and outlines are read once)."""
    from .inventory import sources_of

    experts, materials = sources_of(runtime)
    return runtime.shared("command", lambda: CommandSource(
        store=runtime.store, hub=runtime.hub, experts=experts, materials=materials))


def _arg(name: str) -> str:
    args = getattr(pn.state, "session_args", None) or {}
    value = args.get(name, [b""])[0]
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def start_services(runtime) -> None:
    """Build the shared source at start and check the plan files (a broken one is logged)."""
    source = source_of(runtime)
    source.materials.county_outlines()
    try:
        source.plans()
    except Exception as exc:  # noqa: BLE001 - the page says so at launch; the console runs
        source.param.warning(f"plan files: {exc}")


class CommandPage(Dashboard):
    """The command desk of the duty officers."""

    route: ClassVar[str] = "command"
    title_key: ClassVar[str] = "app.command"
    description_key: ClassVar[str] = "app.command.desc"
    order: ClassVar[int] = 45

    def layout(self):
        alarm = pd.to_numeric(_arg("alarm") or None, errors="coerce")
        desk = CommandDesk(source=source_of(self.runtime), lang=self.lang,
                           incident_id=_arg("incident"),
                           alarm_id=None if pd.isna(alarm) else int(alarm))
        main = pn.Column(desk, sizing_mode="stretch_both", scroll=True, margin=(0, 12))
        return page(self.t("app.command"), main, lang=self.lang, route=self.route)
