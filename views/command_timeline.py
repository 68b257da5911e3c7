"""事件时间线 and 案例推演: every fact of the incident on one timeline, a replay player (time
slider, speed) that redraws the incident as it stood at any moment from the store alone, and
the after-action review with its exports."""
from __future__ import annotations

import html
import io
import math
from datetime import timedelta

import pandas as pd
import panel as pn
import param

from .command_common import (
    COMMAND_CSS,
    STATE_COLORS,
    CommandNotice,
    CommandView,
    ProvinceMap,
    grade_badge,
    local,
)
from .panes import HTML, Markdown

NEARBY = ("alarm", "warning", "quake", "hotspot", "feed")


def _line(r, t) -> str:
    e = html.escape
    code = str(r.code or "")
    label = {"intake": lambda: t("command.subtype." + code),
             "grade": lambda: t("command.grade." + code),
             "correct": lambda: t("command.grade." + code),
             "response": lambda: t("command.level." + code),
             "close": lambda: t("command.status." + code),
             "task": lambda: t("command.state." + code),
             "report": lambda: t("command.report." + code),
             "plan": lambda: t("command.plan." + code),
             "alarm": lambda: t("level." + code), "warning": lambda: t("level." + code),
             "feed": lambda: t("level." + code),
             "quake": lambda: f"M{code}"}.get(r.kind, lambda: code)()
    css = " near" if r.kind in NEARBY else ""
    return (f'<li class="cmd-tl-{e(r.kind)}"><span class="t">{e(local(r.at, "%m-%d %H:%M:%S"))}'
            f'</span><span class="k{css}">{e(t("command.tl." + r.kind))}</span> {e(label)} '
            f'{e(str(r.subject))} <span class="cmd-muted">{e(str(r.detail or ""))} · '
            f'{e(str(r.actor))}</span></li>')


class IncidentTimeline(CommandView):
    """Every fact of one incident, newest first: its own changes and events nearby."""

    view_type = "command_timeline"

    nearby = param.Boolean(default=True, doc="Show alarms, warnings, quakes nearby.")
    limit = param.Integer(default=200, bounds=(10, 5000), doc="Lines shown at most.")

    def __init__(self, **params):
        super().__init__(**params)
        self.pane = HTML("", sizing_mode="stretch_width", css_classes=["cmd-timeline"],
                         stylesheets=[COMMAND_CSS])
        self.toggle = pn.widgets.Checkbox.from_param(self.param.nearby,
                                                     name=self.t("command.tl.nearby"))
        self.frame = pd.DataFrame()
        self.watch_hub(("command", "alarm", "warning", "quake"))
        self.refresh()

    def concerns(self, message) -> bool:
        return bool(self.incident_id) and super().concerns(message)

    @param.depends("incident_id", "nearby", watch=True)
    def refresh(self) -> None:
        self.mark_read()
        t = self.t
        if not self.incident_id or self.source.version(self.incident_id) is None:
            self.frame = pd.DataFrame()
            self.pane.object = f'<div class="cmd-card cmd-muted">{t("command.pick_incident")}</div>'
            return
        df = self.source.timeline(self.incident_id, nearby=self.nearby)
        self.frame = df
        lines = [_line(r, t) for r in df.iloc[::-1].head(self.limit).itertuples()]
        self.pane.object = f'<ul class="cmd-tl">{"".join(lines)}</ul>'

    def __panel__(self):
        return pn.Column(self.toggle, self.pane, sizing_mode="stretch_width")


class ReplayPlayer(CommandView):
    """案例推演: the incident at any moment T, played back at a chosen speed."""

    view_type = "command_replay"

    speed = param.Selector(default=60, objects=[1, 10, 60, 300, 1800],
                           doc="Incident seconds played per second.")
    tick_ms = param.Integer(default=500, bounds=(100, 5000), doc="Player step (ms).")

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.slider = pn.widgets.IntSlider(name=t("command.replay.time"), start=0, end=1,
                                           value=0, sizing_mode="stretch_width",
                                           css_classes=["cmd-replay-slider"])
        self.play = pn.widgets.Toggle(name=t("command.replay.play"), width=90,
                                      css_classes=["cmd-replay-play"])
        self.speed_pick = pn.widgets.Select.from_param(
            self.param.speed, name=t("command.replay.speed"), width=110)
        self.prev_button = pn.widgets.Button(label="◀", width=44, css_classes=["cmd-replay-prev"])
        self.next_button = pn.widgets.Button(label="▶", width=44, css_classes=["cmd-replay-next"])
        self.map = ProvinceMap(self.source, height=380, name="cmd-replay-map")
        self.state_pane = HTML("", sizing_mode="stretch_width", css_classes=["cmd-replay-state"],
                               stylesheets=[COMMAND_CSS])
        self.review = HTML("", sizing_mode="stretch_width", css_classes=["cmd-review"],
                           stylesheets=[COMMAND_CSS])
        self.notice = CommandNotice(t, "cmd-replay-notice")
        self.exports = pn.Row(
            pn.widgets.FileDownload(callback=lambda: self._export("html"),
                                    filename="review.html", label=t("command.export.review_html"),
                                    css_classes=["cmd-review-html"]),
            pn.widgets.FileDownload(callback=lambda: self._export("docx"),
                                    filename="review.docx", label=t("command.export.review_docx"),
                                    css_classes=["cmd-review-docx"]))
        self.start = self.end = None
        self.times: list = []
        self.state: dict | None = None
        self.slider.param.watch(lambda _e: self.show(), "value")
        self.play.param.watch(self._playing, "value")
        self.prev_button.on_click(lambda _e: self.step(-1))
        self.next_button.on_click(lambda _e: self.step(1))
        self._cb = self.every(self._advance, period=self.tick_ms, start=False)
        self.on_close(self._cb.stop)
        self.watch_hub()
        self.load()

    def refresh(self) -> None:
        self.load()

    def on_news(self) -> None:
        """The incident moved on: extend the time axis; a player at the end follows it."""
        self._stale = False
        if not self.incident_id or self.start is None or self.play.value:
            return
        at_end = self.slider.value >= self.slider.end
        self.load(keep=None if at_end else self.slider.value)

    @param.depends("incident_id", watch=True)
    def load(self, keep: int | None = None) -> None:
        """Read the incident's moments and put the slider at its end (as it is now), or at
        ``keep`` seconds."""
        self.mark_read()
        self.play.value = False
        inc = self.source.version(self.incident_id) if self.incident_id else None
        if inc is None:
            self.start, self.times, self.state = None, [], None
            self.state_pane.object = (f'<div class="cmd-card cmd-muted">'
                                      f'{self.t("command.pick_incident")}</div>')
            self.review.object = ""
            return
        self.times = self.source.replay_times(self.incident_id)
        self.start = min(self.times[0], inc["learned_at"])
        end = inc["closed_at"] or max(self.source.now(), self.times[-1])
        self.end = end
        span = max(1, math.ceil((end - self.start).total_seconds()))
        self.slider.param.update(start=0, end=span, value=span if keep is None
                                 else min(keep, span))
        self.show()
        self._review()

    def at(self):
        """The moment shown: the slider's second, or the incident's last moment at the end."""
        if self.start is None:
            return None
        if self.slider.value >= self.slider.end:
            return self.end
        return self.start + timedelta(seconds=self.slider.value)

    def show(self) -> None:
        """Redraw the state at the slider's time (from the store)."""
        t, at = self.t, self.at()
        if at is None:
            return
        state = self.source.incident_state(self.incident_id, at=at)
        self.state = state
        e = html.escape
        if state is None:
            self.map.show_scene(None, None, None)
            self.state_pane.object = (f'<div class="cmd-card">{e(local(at, "%m-%d %H:%M:%S"))} '
                                      f'{e(t("command.replay.before"))}</div>')
            return
        inc = state["incident"]
        self.map.show_scene(inc["lon"], inc["lat"], inc["grade"])
        self.map.zoom(inc["lon"], inc["lat"], 0.6)
        tasks = pd.DataFrame(state["tasks"])
        lines, where = [], []
        for r in tasks.itertuples() if len(tasks) else []:
            if r.base_lon is None or r.base_lon != r.base_lon:
                continue
            at_scene = r.state in ("on_scene", "done")
            where.append({"lon": inc["lon"] if at_scene else r.base_lon,
                          "lat": inc["lat"] if at_scene else r.base_lat,
                          "name": r.resource_name, "kind": r.kind})
            if r.state in ("assigned", "en_route"):
                lines.append((r.base_lon, r.base_lat, inc["lon"], inc["lat"],
                              STATE_COLORS[r.state]))
        placed = pd.DataFrame(where, columns=["lon", "lat", "name", "kind"])
        for key, kind in (("teams", "team"), ("warehouses", "materials"),
                          ("experts", "experts"), ("shelters", "shelter")):
            self.map.points(key, placed[placed.kind == kind])
        self.map.show_links(lines)
        counts = tasks.state.value_counts().to_dict() if len(tasks) else {}
        due = [x for x in state["timers"] if x["state"] in ("pending", "overdue")]
        overdue = sum(x["state"] == "overdue" for x in state["timers"])
        done = sum(1 for p in state["plan"] if p["done"])
        self.state_pane.object = (
            f'<div class="cmd-card"><b>{e(local(at, "%Y-%m-%d %H:%M:%S"))}</b> '
            f'{grade_badge(inc["grade"], t)} {e(t("command.status." + inc["status"]))} · '
            f'{e(t("command.level." + inc["response_level"]) if inc["response_level"] else t("command.response.none"))}<br>'
            + e(" · ".join(f'{t("command.state." + s)} {counts.get(s, 0)}' for s in
                           ("assigned", "en_route", "on_scene", "done", "cancelled"))) + "<br>"
            + e(t("command.replay.reports", n=len(state["reports"]), overdue=overdue,
                  plan=done, items=len(state["plan"])))
            + ("<br>" + e(t("command.replay.next", kind=t("command.report." + due[0]["kind"]),
                            due=local(due[0]["due_at"]))) if due else "") + "</div>")

    def step(self, direction: int) -> None:
        """Jump to the previous / next moment the incident changed."""
        at = self.at()
        if at is None:
            return
        if direction > 0:
            nxt = [x for x in self.times if x > at]
        else:
            nxt = [x for x in self.times if x < at - timedelta(seconds=1)]
        if nxt:
            target = nxt[0] if direction > 0 else nxt[-1]
            self.slider.value = int((target - self.start).total_seconds())

    def _playing(self, event) -> None:
        if event.new:
            if self.slider.value >= self.slider.end:
                self.slider.value = 0
            self._cb.start()
        else:
            self._cb.stop()

    def _advance(self) -> None:
        value = self.slider.value + int(self.speed * self.tick_ms / 1000)
        if value >= self.slider.end:
            value = self.slider.end
            self.play.value = False
        self.slider.value = value

    def _review(self) -> None:
        t, e = self.t, html.escape
        r = self.source.after_action(self.incident_id)
        steps = "".join(
            f'<li>{e(t("command.ms." + d["from"]))} → {e(t("command.ms." + d["to"]))}: '
            f'{e("—" if d["minutes"] is None else t("command.m", m=round(d["minutes"])))}</li>'
            for d in r["durations"])
        used = "".join(f'<li>{e(t("command.kind." + u["kind"]))}: {u["tasks"]} '
                       f'({e(u["names"])})</li>' for u in r["resources"])
        late = "".join(f'<li class="cmd-overdue">{e(t("command.report." + x["kind"]))} '
                       f'{e(local(x["due_at"]))} {e(t("command.timer." + x["state"]))}</li>'
                       for x in r["late_reports"])
        self.review.object = (
            f'<div class="cmd-card"><b>{e(t("command.review.title"))}</b>'
            f'<ul>{steps}</ul><b>{e(t("command.review.reports"))}</b>'
            f'<ul>{late or "<li>" + e(t("command.review.on_time")) + "</li>"}</ul>'
            f'<b>{e(t("command.review.resources"))}</b><ul>{used}</ul>'
            f'{e(t("command.review.plan", done=r["plan_done"], items=r["plan_items"]))}</div>')

    def _export(self, fmt: str) -> io.BytesIO:
        if not self.incident_id:
            return io.BytesIO(b"")
        return io.BytesIO(self.source.export_review(self.incident_id, fmt))

    def __panel__(self):
        t = self.t
        return pn.Column(
            pn.Row(self.prev_button, self.play, self.next_button, self.speed_pick, self.slider,
                   sizing_mode="stretch_width"),
            pn.Row(self.map.pane, pn.Column(self.state_pane, self.review, self.exports,
                                            width=420), sizing_mode="stretch_width"),
            Markdown(t("command.replay.hint")), sizing_mode="stretch_width")
