"""任务看板: the incident's tasks in columns by state, and the buttons that move them on."""
from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param

from sources.command.common import TASK_STATES, TRANSITIONS

from .command_common import (
    COMMAND_CSS,
    STATE_COLORS,
    CommandNotice,
    CommandView,
    local,
    set_options,
)
from .inventory_common import options
from .panes import HTML


class TaskBoard(CommandView):
    """Tasks of one incident by state (assigned, en route, on scene, done, cancelled)."""

    view_type = "command_tasks"

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.board = HTML("", sizing_mode="stretch_width", css_classes=["cmd-task-board"],
                          stylesheets=[COMMAND_CSS])
        self.task = pn.widgets.Select(label=t("command.task"), width=320,
                                      css_classes=["cmd-task-pick"])
        self.note = pn.widgets.TextInput(label=t("command.note"), width=220)
        self.buttons = {
            state: pn.widgets.Button(label=t("command.move." + state), align="end",
                                     css_classes=[f"cmd-move-{state}"],
                                     color="light" if state == "cancelled" else "primary")
            for state in TASK_STATES if state != "assigned"}
        for state, button in self.buttons.items():
            button.on_click(lambda _e, state=state: self.move(state))
        self.notice = CommandNotice(t, "cmd-task-notice")
        self.tasks = pd.DataFrame()
        self.watch_hub()
        self.refresh()

    def move(self, state: str, task_id: int | None = None):
        """Move the picked task (or ``task_id``) to ``state``; a refusal is shown."""
        task_id = task_id if task_id is not None else self.task.value
        if not task_id:
            self.notice.refuse(self.t("command.task.pick"))
            return None
        result = self.notice.run(
            self.as_user("incident.update", lambda who: self.source.advance_task(task_id, state, user=who,
                                             note=self.note.value)),
            lambda r: self.t("command.task.moved", name=r["resource_name"],
                             state=self.t("command.state." + state)))
        self.refresh_soon()
        return result

    @param.depends("incident_id", watch=True)
    def refresh(self) -> None:
        self.mark_read()
        t = self.t
        df = self.source.tasks(self.incident_id) if self.incident_id else pd.DataFrame(
            columns=["task_id", "state", "resource_name", "kind"])
        self.tasks = df
        active = df[df.state.isin(["assigned", "en_route", "on_scene"])]
        keep = self.task.value
        set_options(self.task, options(active.assign(label=[
            f"{r.resource_name} · {t('command.state.' + r.state)}" for r in active.itertuples()]),
            "task_id", "label"))
        if keep in set(active.task_id):
            self.task.value = keep
        e = html.escape
        cols = []
        for state in TASK_STATES:
            cards = []
            for r in df[df.state == state].itertuples():
                unit = r.unit if isinstance(r.unit, str) else ""  # NaN in a frame
                qty = "" if r.quantity is None or r.quantity != r.quantity else \
                    f" · {r.quantity:g}{unit}"
                cards.append(
                    f'<div class="cmd-card cmd-task" data-task="{int(r.task_id)}" '
                    f'style="border-left:4px solid {STATE_COLORS[state]}">'
                    f'<b>{e(str(r.resource_name))}</b><br>'
                    f'{e(t("command.kind." + r.kind))}{e(qty)}<br>'
                    f'<span class="cmd-muted">{e(r.owner)} · {e(local(r.created_at))}'
                    f' → {e(local(r.state_at))} {e(r.state_by)}</span></div>')
            nxt = ", ".join(t("command.state." + s) for s in TRANSITIONS[state]) or "—"
            cols.append(f'<div class="cmd-col cmd-col-{state}"><h4 title="{e(nxt)}">'
                        f'{e(t("command.state." + state))} ({len(cards)})</h4>'
                        f'{"".join(cards)}</div>')
        self.board.object = f'<div class="cmd-cols">{"".join(cols)}</div>'

    def __panel__(self):
        return pn.Column(self.board, pn.Row(self.task, self.note, *self.buttons.values()),
                         self.notice.pane, sizing_mode="stretch_width")
