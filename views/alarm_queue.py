"""The live alarm queue: open alarms by severity then age, filters, the officers' actions."""
from __future__ import annotations

import html
import io
import math
import time
import wave
from typing import ClassVar

import numpy as np
import pandas as pd
import panel as pn
import param

from sources.alarms.desk import AlarmActionError, AlarmSource
from sources.levels import ALARM_SEVERITY

from .base import Refused, View
from .panes import HTML
from .styles import ACTION_CSS, level_badges

LOCAL_TZ = "Asia/Shanghai"
COLUMNS = ["level", "enterprise", "installation", "county", "sensor", "value", "threshold",
           "kind", "state", "raised", "age", "acked_by", "cleared", "escalated",
           "level_code", "state_code", "county_code", "severity", "raised_ts"]
# fixed widths: a live table must not re-measure every cell on each update
WIDTHS = {"level": "5%", "enterprise": "13%", "installation": "9%", "county": "6%",
          "sensor": "11%", "value": "9%", "threshold": "6%", "kind": "5%", "state": "6%",
          "raised": "8%", "age": "5%", "acked_by": "7%", "cleared": "5%", "escalated": "5%"}
HIDDEN = ["level_code", "state_code", "county_code", "severity", "raised_ts"]
RAW_FIELDS = ["kind", "level", "state", "peak_value", "peak_at", "cleared_at", "acked_by",
              "acked_at", "disposed_by", "disposed_at", "disposal_note", "escalated_at"]

CSS = """
.lvl { display: inline-block; min-width: 3em; padding: 0 6px; border-radius: 3px;
  font-weight: 600; text-align: center; }
""" + level_badges(".lvl")
BANNER_CSS = """
.alarm-banner { padding: 6px 12px; border-radius: 4px; background: #d7191c; color: #fff;
  font-weight: 700; animation: alarm-flash 0.6s ease-in-out 8 alternate; }
@keyframes alarm-flash { from { opacity: 1; } to { opacity: 0.35; } }
.alarm-msg.ok { color: #176b2c; } .alarm-msg.err { color: #b00020; font-weight: 600; }
"""


def beep_wav(freq: float = 880.0, seconds: float = 0.35, rate: int = 8000) -> bytes:
    """A short sine beep as WAV bytes, synthesised here (no sound file is fetched)."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) * 40)
    samples = (0.6 * 32767 * envelope * np.sin(2 * np.pi * freq * t)).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _num(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"


class AlarmQueue(View):
    """Open alarms, red first then newest, updated live from the hub.

    Select a row and acknowledge, dispose (with a note) or close it. A new red alarm makes
    the banner flash (and beeps when *sound* is on). Rows are streamed and patched in place;
    when the page missed hub messages it reloads from the store.
    """

    view_type: ClassVar[str] = "alarm_queue"

    source = param.ClassSelector(class_=AlarmSource, doc="The alarm desk source.")
    sound = param.Boolean(default=False, doc="Beep on a new red alarm.")
    show_actions = param.Boolean(default=True, doc="Show filters and action buttons.")
    height = param.Integer(default=420, bounds=(100, None),
                           doc="Least height of the table in pixels (it grows to fill the page).")
    period_ms = param.Integer(default=100, bounds=(20, None),
                              doc="Milliseconds between drains of the hub queue (latency).")
    age_refresh_s = param.Number(default=15.0, bounds=(1, None),
                                 doc="Seconds between refreshes of the age column.")

    def __init__(self, **params):
        super().__init__(**params)
        self._raw = self._load()
        t = self.t
        self.table = pn.widgets.Tabulator(
            self._display(self._raw), show_index=False, selectable=1, disabled=True,
            hidden_columns=HIDDEN, min_height=self.height, sizing_mode="stretch_both",
            layout="fit_columns", widths=WIDTHS, pagination=None,
            sorters=[{"field": "severity", "dir": "desc"}, {"field": "raised_ts", "dir": "desc"}],
            formatters={"level": {"type": "html"}},
            titles={c: t(f"alarm.col.{c}") for c in COLUMNS if c not in HIDDEN},
            stylesheets=[CSS], css_classes=["alarm-queue-table"],
        )
        self.level_filter = pn.widgets.CheckButtonGroup(
            label=t("alarm.filter.level"), value=[],
            options={t(f"level.{lv}"): lv for lv in ("red", "orange", "yellow")})
        self.state_filter = pn.widgets.CheckButtonGroup(
            label=t("alarm.filter.state"), value=[],
            options={t(f"alarm.state.{s}"): s for s in ("raised", "acknowledged", "disposed")})
        counties = self.source.counties()
        scope = self.guard.scope()
        if scope is not None:
            counties = counties[counties.county_code.str.startswith(scope)]
        self.county_filter = pn.widgets.Select(
            label=t("alarm.filter.county"),
            options={t("alarm.filter.all"): "", **dict(zip(counties.name, counties.county_code,
                                                             strict=True))}, width=160)
        self.search = pn.widgets.TextInput(label=t("alarm.filter.search"), width=200)
        self.table.add_filter(self.level_filter, "level_code")
        self.table.add_filter(self.state_filter, "state_code")
        self.table.add_filter(pn.bind(_match, county=self.county_filter,
                                      search=self.search.param.value_input))
        self.note = pn.widgets.TextInput(placeholder=t("alarm.note.placeholder"),
                                         sizing_mode="stretch_width")
        self.ack_button = pn.widgets.Button(label=t("alarm.btn.ack"), color="primary")
        self.dispose_button = pn.widgets.Button(label=t("alarm.btn.dispose"),
                                                color="warning", stylesheets=[ACTION_CSS])
        self.close_button = pn.widgets.Button(label=t("alarm.btn.close"), color="success",
                                              stylesheets=[ACTION_CSS])
        self.ack_button.on_click(lambda e: self._act("acknowledge"))
        self.dispose_button.on_click(lambda e: self._act("dispose"))
        self.close_button.on_click(lambda e: self._act("close"))
        self.sound_toggle = pn.widgets.Checkbox(label=t("alarm.sound"), value=self.sound)
        self.sound_toggle.link(self, value="sound")
        self.message = HTML("", stylesheets=[BANNER_CSS], css_classes=["alarm-message"],
                            sizing_mode="stretch_width")
        self.banner = HTML("", stylesheets=[BANNER_CSS], visible=False,
                           css_classes=["alarm-banner-pane"], sizing_mode="stretch_width")
        self.counter = HTML(self._count_text(), css_classes=["alarm-count"])
        self.audio = pn.pane.Audio(beep_wav(), paused=True, width=1, height=1,
                                   margin=0, styles={"opacity": "0"})
        self.new_red = 0  # new red alarms seen live (tests and the wall read it)
        self._sub = self.subscribe(["alarm"], self._on_messages, period_ms=self.period_ms)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            cb = self.every(self._refresh_age,
                            period=int(self.age_refresh_s * 1000))
            self.on_close(cb.stop)

    # ------------------------------------------------------------------ data
    def _load(self) -> pd.DataFrame:
        return self._scoped(self.source.open_alarms()).set_index("alarm_id", drop=False)

    def _scoped(self, df: pd.DataFrame) -> pd.DataFrame:
        """Only the alarms of the user's jurisdiction (a county officer: the county's)."""
        scope = self.guard.scope()
        if scope is None or not len(df):
            return df
        return df[df.county_code.fillna("").astype(str).str.startswith(scope)]

    def _display(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The table's rows (localised text) of raw alarm rows, indexed by alarm_id."""
        t = self.t
        now = time.time()
        rows = []
        for r in raw.itertuples(index=False):
            raised = pd.Timestamp(r.raised_at)
            unit = r.unit if isinstance(r.unit, str) else ""
            value = ("" if r.kind == "stale"
                     else f"{_num(r.trigger_value)} / {_num(r.peak_value)} {unit}".strip())
            rows.append({
                "level": f'<span class="lvl lvl-{r.level}">{t("level." + r.level)}</span>',
                "enterprise": r.enterprise, "installation": r.installation or "",
                "county": r.county if isinstance(r.county, str) else "",
                "sensor": t(f"alarm.sensor.{r.sensor_kind}") + f" {r.sensor_id}",
                "value": value, "threshold": _num(r.threshold),
                "kind": t(f"alarm.kind.{r.kind}"), "state": t(f"alarm.state.{r.state}"),
                "raised": raised.tz_convert(LOCAL_TZ).strftime("%m-%d %H:%M:%S"),
                "age": round(max(0.0, now - raised.timestamp()) / 60, 1),
                "acked_by": r.acked_by if isinstance(r.acked_by, str) else "",
                "cleared": "✓" if pd.notna(r.cleared_at) else "",
                "escalated": "⚠" if pd.notna(r.escalated_at) else "",
                "level_code": r.level, "state_code": r.state,
                "county_code": r.county_code or "", "severity": int(r.severity),
                "raised_ts": raised.timestamp(),
            })
        df = pd.DataFrame(rows, columns=COLUMNS)
        df.index = pd.Index(raw["alarm_id"].to_numpy(dtype="int64"), name="alarm_id")
        return df

    def reload(self) -> None:
        """Reload every open alarm from the store (after the page missed hub messages)."""
        self._raw = self._load()
        self.table.value = self._display(self._raw)
        text = self._count_text()
        if text != self.counter.object:
            self.counter.object = text

    def _count_text(self) -> str:
        red = int((self._raw["level"] == "red").sum()) if len(self._raw) else 0
        return html.escape(self.t("alarm.count", n=len(self._raw), red=red))

    # ------------------------------------------------------------------ live
    def _on_messages(self, messages, missed: bool) -> None:
        if missed:
            self.reload()
            return
        new, raised, changed, closed = [], {}, set(), set()
        for m in messages:
            for d in m.payload:
                aid = int(d["alarm_id"])
                if d.get("state") == "closed":
                    closed.add(aid)
                elif d.get("change") == "raise" and aid not in self._raw.index:
                    raised[aid] = d  # a full row: no query needed
                elif aid in raised:
                    raised[aid] = {**raised[aid], **d, "change": "raise"}
                elif aid in self._raw.index:
                    for k in RAW_FIELDS:
                        if k in d:
                            self._raw.at[aid, k] = d[k]
                    if "level" in d:
                        self._raw.at[aid, "severity"] = ALARM_SEVERITY.get(d["level"], 1)
                    changed.add(aid)
                elif aid not in closed:
                    new.append(aid)
        for aid in closed:
            raised.pop(aid, None)
        if new or raised:
            parts = [self.source.rows_of_raised(list(raised.values()))] if raised else []
            if new:  # alarms this page has not seen raised (e.g. opened meanwhile)
                parts.append(self.source.open_alarms(ids=new))
            rows = pd.concat(parts) if len(parts) > 1 else parts[0]
            rows = self._scoped(rows[rows.state != "closed"])
            rows = rows.drop_duplicates("alarm_id", keep="last")
            rows = rows.set_index("alarm_id", drop=False)
            if len(rows):
                self._raw = pd.concat([self._raw, rows]) if len(self._raw) else rows
                self.table.stream(self._display(rows), reset_index=False, follow=False)
                reds = rows[rows.level == "red"]
                if len(reds):
                    self._cue(reds.iloc[-1])
        changed -= closed
        if changed:
            self.table.patch(self._display(self._raw.loc[sorted(changed)]), as_index=True)
        gone = sorted(closed & set(self._raw.index))
        if gone:
            self._raw = self._raw.drop(index=gone)
            self.table.value = self.table.value.drop(index=gone)
        text = self._count_text()
        if text != self.counter.object:
            self.counter.object = text

    def pull(self) -> None:
        """Apply what the hub queued now (the page's periodic callback does this itself)."""
        if self._sub is not None:
            messages, missed = self._sub.drain()
            if messages or missed:
                self._on_messages(messages, missed)

    def _cue(self, row) -> None:
        self.new_red += 1
        name = f"{row.enterprise} {row.installation or ''} {row.sensor_id}"
        self.banner.object = (f'<div class="alarm-banner" data-n="{self.new_red}">'
                              f'{html.escape(self.t("alarm.new_red", name=name))}</div>')
        self.banner.visible = True
        if self.sound:
            self.audio.param.update(time=0, paused=True)
            self.audio.paused = False

    def _refresh_age(self) -> None:
        if not len(self._raw):
            return
        now = time.time()
        ages = ((now - self.table.value["raised_ts"]) / 60).clip(lower=0).round(1)
        self.table.patch({"age": list(ages.items())}, as_index=True)

    # ------------------------------------------------------------------ actions
    def selected_alarm(self) -> int | None:
        sel = self.table.selection
        if not sel or sel[0] >= len(self.table.value):
            return None
        return int(self.table.value.index[sel[0]])

    def _act(self, action: str) -> None:
        aid = self.selected_alarm()
        if aid is None:
            return self._say(self.t("alarm.select_first"), ok=False)
        county = self.table.value.at[aid, "county_code"] if "county_code" in \
            self.table.value else None
        steps = {"acknowledge": lambda who: self.source.acknowledge(aid, who),
                 "dispose": lambda who: self.source.dispose(aid, who, self.note.value),
                 "close": lambda who: self.source.close(aid, who)}
        try:
            self.guard.act(f"alarm.{action}", steps[action], target=f"alarm:{aid}",
                           county=None if pd.isna(county) else str(county),
                           details={"note": self.note.value} if action == "dispose" else None)
            if action == "dispose":
                self.note.value = ""
        except Refused as exc:
            return self._say(self.refusal(exc), ok=False)
        except AlarmActionError as exc:
            info = dict(exc.info)
            if info.get("at") is not None:
                info["at"] = pd.Timestamp(info["at"]).tz_convert(LOCAL_TZ).strftime("%H:%M:%S")
            if "state" in info:
                info["state"] = self.t(f"alarm.state.{info['state']}")
            return self._say(self.t(exc.key, **info), ok=False)
        self._say(self.t(f"alarm.done.{action}", id=aid), ok=True)

    def _say(self, text: str, *, ok: bool) -> None:
        self.message.object = (f'<span class="alarm-msg {"ok" if ok else "err"}">'
                               f"{html.escape(text)}</span>")

    # ------------------------------------------------------------------ layout
    def __panel__(self):
        top = pn.Row(self.counter, self.banner, self.audio, sizing_mode="stretch_width")
        if not self.show_actions:
            return pn.Column(top, self.table, sizing_mode="stretch_both")
        def labelled(key, widget):  # button groups show no label of their own
            return pn.Column(HTML(f'<span class="filter-label">{html.escape(self.t(key))}'
                                  "</span>", margin=(0, 10)), widget, margin=0)

        filters = pn.Row(labelled("alarm.filter.level", self.level_filter),
                         labelled("alarm.filter.state", self.state_filter),
                         self.county_filter, self.search, self.sound_toggle,
                         sizing_mode="stretch_width")
        actions = pn.Row(self.ack_button, self.note, self.dispose_button, self.close_button,
                         sizing_mode="stretch_width")
        return pn.Column(top, filters, self.table, actions, self.message,
                         sizing_mode="stretch_both", css_classes=["alarm-queue"])


def _match(df: pd.DataFrame, county: str = "", search: str = ""):
    """Tabulator filter of the county and enterprise search widgets (a boolean mask)."""
    mask = pd.Series(True, index=df.index)
    if county:
        mask &= df["county_code"] == county
    if search:
        mask &= df["enterprise"].str.contains(search, case=False, regex=False, na=False)
    return mask
