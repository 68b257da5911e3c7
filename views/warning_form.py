"""The duty officer's warning form: draft → preview → publish (or update / cancel).

Counties are picked from the list or by tapping them on the map; an area can be drawn as a
polygon instead. Each draft carries an idempotency token: publishing the same draft twice
(a double click) publishes once. Errors come back as a message at the form.
"""
from __future__ import annotations

import datetime as dt
import html
import uuid

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, PolyDrawTool, TapTool

from sources.warnings.cap import CHINA_TZ
from sources.warnings.warnings import EVENTS, LEVELS, WarningInputError, WarningSource

from .base import Refused, View
from .monitoring_map import county_data, jurisdiction_area, map_figure
from .panes import HTML, Alert, Markdown
from .styles import ACTION_CSS
from .warning_log import event_label


def _china_now() -> dt.datetime:
    return dt.datetime.now(CHINA_TZ).replace(tzinfo=None, microsecond=0)


class WarningForm(View):
    """Draft, preview and publish a warning; update or cancel a published one."""

    view_type = "warning_form"

    source = param.ClassSelector(class_=WarningSource, doc="Warnings source.")
    counties = param.List(default=[], doc="County codes of the area.")
    polygon = param.List(default=[], doc="Drawn ring [(lon, lat), ...] (empty: none).")
    token = param.String(default="", doc="Idempotency token of the current draft.")
    last_result = param.Dict(default=None, allow_None=True, doc="Last publish result.")
    drills = param.Parameter(default=None, doc="The console's drills (sources.drills.desk."
                             "DrillSource): an exercise warning belongs to the running drill.")

    def __init__(self, **params):
        super().__init__(**params)
        geo = self.source.geo
        # a county or city officer issues for their own counties only: the picker offers
        # those, a tap elsewhere is refused, and the publish itself is checked again
        self._options = {f"{geo.names[c]} ({c})": c for c in geo.codes if self.guard.sees(c)}
        w = pn.widgets
        self._event = w.Select(name=self.t("warnings.event"), value=EVENTS[0],
                               options={event_label(e, self.lang): e for e in EVENTS},
                               css_classes=["wf-event"], width=260)
        self._level = w.Select(name=self.t("warnings.level"), value="blue",
                               options={self.t(f"warnings.level.{lv}"): lv for lv in LEVELS},
                               css_classes=["wf-level"], width=260)
        self._counties = w.MultiChoice(name=self.t("warnings.counties"), options=self._options,
                                       css_classes=["wf-counties"], sizing_mode="stretch_width")
        self._effective = w.DatetimePicker(name=self.t("warnings.effective"),
                                           value=_china_now(), css_classes=["wf-effective"],
                                           width=200)
        self._duration = w.FloatInput(name=self.t("warnings.duration"), value=360, start=0,
                                      css_classes=["wf-duration"], width=120)
        self._expires = w.DatetimePicker(
            name=self.t("warnings.expires"), css_classes=["wf-expires"], width=200,
            value=_china_now() + dt.timedelta(hours=6))
        self._headline = w.TextInput(name=self.t("warnings.headline"),
                                     css_classes=["wf-headline"], sizing_mode="stretch_width")
        # the text of a warning and its defence guide runs to paragraphs: the box takes
        # the height the form leaves
        self._description = w.TextAreaInput(name=self.t("warnings.description"), min_height=90,
                                            css_classes=["wf-description"],
                                            sizing_mode="stretch_both")
        self._update_of = w.Select(name=self.t("warnings.update_of"), value="",
                                   options={self.t("warnings.update_of.none"): ""},
                                   css_classes=["wf-update-of"])
        self._preview_btn = w.Button(name=self.t("warnings.preview"), css_classes=["wf-preview"])
        self._publish_btn = w.Button(name=self.t("warnings.publish"), button_type="danger",
                                     css_classes=["wf-publish"], stylesheets=[ACTION_CSS])
        self._cancel_btn = w.Button(name=self.t("warnings.cancel"), button_type="warning",
                                    css_classes=["wf-cancel"], visible=False, stylesheets=[ACTION_CSS])
        self._new_btn = w.Button(name=self.t("warnings.new_draft"), css_classes=["wf-new"])
        active = self.drills.active() if self.drills is not None else None
        # during a drill the form starts as an exercise: a drill's warning is never real
        self._exercise = w.Checkbox(name=self.t("drill.warning"), value=active is not None,
                                    css_classes=["wf-exercise"])
        self._clear_btn = w.Button(name=self.t("warnings.polygon.clear"), width=120)
        self._message = Alert("", alert_type="info", visible=False,
                              css_classes=["wf-message"], sizing_mode="stretch_width")
        self._preview = HTML("", css_classes=["wf-preview-out"],
                             sizing_mode="stretch_width")
        self._polygon_info = Markdown("")

        self._counties.link(self, value="counties")
        self._duration.param.watch(self._set_expiry, "value")
        self._effective.param.watch(self._set_expiry, "value")
        for widget in (self._event, self._level, self._counties, self._effective,
                       self._expires, self._headline, self._description, self._update_of):
            widget.param.watch(self._new_token, "value")
        self._update_of.param.watch(self._load_warning, "value")
        self._preview_btn.on_click(lambda e: self.preview())
        self._publish_btn.on_click(lambda e: self.publish())
        self._cancel_btn.on_click(lambda e: self.cancel())
        self._new_btn.on_click(lambda e: self.reset())
        self._clear_btn.on_click(lambda e: self._clear_polygon())
        self._map = self._build_map()
        self._loaded_counties: list[str] = []
        self._new_token()
        self._refresh_updatable()
        self.subscribe(["warning"], lambda msgs, missed: self._refresh_updatable(), period_ms=1000)

    # ------------------------------------------------------------------ map
    def _build_map(self):
        geo = self.source.geo
        fig = map_figure(geo, tools="pan,wheel_zoom,reset", name="warning-form-map",
                         area=jurisdiction_area(geo, self.guard))
        self._county_source = ColumnDataSource(county_data(geo))
        counties = fig.patches("xs", "ys", source=self._county_source, fill_color="color",
                               line_color="#8493a8", line_width=0.6,
                               nonselection_fill_alpha=1.0, selection_fill_alpha=1.0,
                               nonselection_line_alpha=1.0)
        tap = TapTool(renderers=[counties])
        fig.add_tools(tap, HoverTool(renderers=[counties], tooltips=[
            (self.t("warnings.county"), "@name"), (self.t("warnings.county_code"),
                                                    "@county_code")]))
        fig.toolbar.active_tap = tap
        self._draw_source = ColumnDataSource({"xs": [], "ys": []})
        drawn = fig.patches("xs", "ys", source=self._draw_source, fill_color="#d62728",
                            fill_alpha=0.25, line_color="#d62728", line_width=2)
        fig.add_tools(PolyDrawTool(renderers=[drawn], num_objects=1))
        self._county_source.selected.on_change("indices", self._on_select)
        self._draw_source.on_change("data", lambda attr, old, new: self._on_draw(new))
        self.param.watch(self._paint_counties, "counties")
        self.map_figure = fig
        return pn.pane.Bokeh(fig, css_classes=["wf-map"], sizing_mode="stretch_both")

    def _paint_counties(self, *events):
        picked = set(self.counties)
        self._county_source.data = {
            **self._county_source.data,
            "color": ["#ff9f4a" if c in picked else "#eef2f7" for c in self.source.geo.codes]}

    def _on_select(self, attr, old, new):
        if new:
            self._county_source.selected.indices = []  # a tap toggles; no lasting selection
            self._on_tap(new)

    def _on_tap(self, index):
        if not index:
            return
        codes = [self.source.geo.codes[i] for i in index]
        outside = [c for c in codes if not self.guard.sees(c)]
        if outside:  # shown as context on the map, not the officer's to warn
            self._show_text(self.refusal(self.guard.refuse_view(
                "warning", county=outside[0], target=f"warning.area:{outside[0]}")), "danger")
            codes = [c for c in codes if c not in outside]
            if not codes:
                return
        current = list(self._counties.value)
        if len(codes) == 1:
            code = codes[0]
            current = [c for c in current if c != code] if code in current else [*current, code]
        else:
            current = sorted(set(current) | set(codes))
        self._counties.value = current

    def _on_draw(self, data):
        xs, ys = (data or {}).get("xs") or [], (data or {}).get("ys") or []
        ring = [(float(x), float(y)) for x, y in zip(xs[0], ys[0], strict=False)] if xs else []
        self.polygon = ring if len(ring) >= 3 else []
        self._polygon_info.object = (self.t("warnings.polygon.set", n=len(ring))
                                     if self.polygon else "")
        self._new_token()

    def _clear_polygon(self):
        self._draw_source.data = {"xs": [], "ys": []}
        self.polygon = []
        self._polygon_info.object = ""

    # ------------------------------------------------------------------ draft
    def _new_token(self, *events):
        self.token = uuid.uuid4().hex

    def _set_expiry(self, *events):
        if self._effective.value is not None and self._duration.value is not None:
            self._expires.value = self._effective.value + dt.timedelta(
                minutes=float(self._duration.value))

    def draft(self) -> dict:
        """The form's content as keyword arguments of ``WarningSource.issue``."""
        return dict(event=self._event.value, level=self._level.value,
                    headline=self._headline.value, description=self._description.value,
                    counties=list(self._counties.value),
                    polygon=[list(p) for p in self.polygon] or None,
                    effective=self._effective.value, expires=self._expires.value)

    def _show(self, key: str, alert_type: str, **fmt):
        self._show_text(self.t(key, **fmt), alert_type)

    def _show_text(self, text: str, alert_type: str):
        self._message.object = html.escape(text)
        self._message.alert_type = alert_type
        self._message.visible = True

    def _area_of(self, warning: dict) -> list[str]:
        """The counties a draft (or a published warning) covers: what the officer's
        jurisdiction must contain."""
        codes = warning.get("counties", warning.get("area_codes")) or []
        polygon = warning.get("polygon", warning.get("area_geojson")) or None
        try:
            return list(self.source.area_counties(list(codes), polygon))
        except Exception:  # noqa: BLE001 - a bad area is refused by the source's own check
            return [str(c) for c in codes]

    def exercise_drill(self) -> str | None:
        """The drill this draft belongs to when the officer marks it an exercise."""
        if not self._exercise.value:
            return None
        active = self.drills.active() if self.drills is not None else None
        return active["drill_id"] if active else "exercise"

    def _error(self, err: WarningInputError):
        fmt = dict(err.fmt)
        if "status" in fmt:
            fmt["status"] = self.t(f"warnings.status.{fmt['status']}")
        if "field" in fmt:  # headline / description: the form's own label
            fmt["field"] = self.t(f"warnings.{fmt['field']}")
        self._show(err.key, "danger", **fmt)

    # ------------------------------------------------------------------ actions
    def preview(self) -> dict | None:
        """Check the draft and show what lies inside its area."""
        d = self.draft()
        try:
            self.source.validate(**{k: d[k] for k in ("event", "level", "headline", "counties",
                                                      "polygon", "effective", "expires")})
            pv = self.source.preview(counties=d["counties"], polygon=d["polygon"])
        except WarningInputError as err:
            self._error(err)
            return None
        self._message.visible = False
        def names(df, column="name", limit=12) -> str:
            items = [html.escape(str(n)) for n in df[column].head(limit)]
            return "、".join(items) + ("…" if len(df) > limit else "")

        major = pv["enterprises"][pv["enterprises"]["is_major_hazard"].fillna(False)]
        shelters = pv["shelters"].sort_values("capacity", ascending=False)
        points = pv["landslide_points"].sort_values("threatened_people", ascending=False)
        rows = [("warnings.preview.counties", names(pv["counties"])),
                ("warnings.preview.major", names(major)),
                ("warnings.preview.landslides", names(points)),
                ("warnings.preview.shelters", names(shelters))]
        totals = html.escape(self.t("warnings.preview.totals", **pv["totals"]))
        self._preview.object = f'<div class="wf-totals">{totals}</div>' + "".join(
            f"<div><b>{self.t(key)}</b>：{text or '—'}</div>" for key, text in rows)
        return pv

    def publish(self) -> dict | None:
        """Publish the draft (or the update of the selected warning) once per token."""
        d = self.draft()
        self._publish_btn.disabled = True
        try:
            if self._update_of.value:
                # an unchanged area keeps the warning's own (possibly drawn) area
                area = ({"polygon": d["polygon"]} if d["polygon"] else
                        {} if d["counties"] == self._loaded_counties else
                        {"counties": d["counties"], "polygon": None})
                wid = self._update_of.value
                counties = self._area_of(d) if "counties" in area or d["polygon"] else \
                    self._area_of(self.source.latest(wid))
                res = self.guard.act(
                    "warning.update", lambda who: self.source.update(
                        wid, sender=who, token=self.token,
                        **{k: d[k] for k in ("event", "level", "headline", "description",
                                             "effective", "expires")}, **area),
                    counties=counties, target=f"warning:{wid}",
                    details={"level": d["level"], "headline": d["headline"]})
            else:
                drill = self.exercise_drill()
                res = self.guard.act(
                    "warning.issue", lambda who: self.source.issue(
                        **d, sender=who, token=self.token, drill_id=drill),
                    counties=self._area_of(d), target="warning:new",
                    details={"level": d["level"], "headline": d["headline"],
                             "counties": self._area_of(d), "drill_id": drill})
        except Refused as exc:
            self._show_text(self.refusal(exc), "danger")
            return None
        except WarningInputError as err:
            self._error(err)
            return None
        finally:
            self._publish_btn.disabled = False
        self.last_result = res
        if not res["created"]:
            self._show("warnings.already", "warning", id=res["warning_id"])
        elif res["msg_type"] == "Update":
            self._show("warnings.updated", "success", id=res["warning_id"], v=res["version"])
        else:
            self._show("warnings.published", "success", id=res["warning_id"])
        return res

    def cancel(self) -> dict | None:
        """Cancel the warning selected in "update a published warning"."""
        if not self._update_of.value:
            return None
        try:
            wid = self._update_of.value
            res = self.guard.act(
                "warning.cancel", lambda who: self.source.cancel(
                    wid, sender=who, token=f"{self.token}:cancel"),
                counties=self._area_of(self.source.latest(wid)), target=f"warning:{wid}")
        except Refused as exc:
            self._show_text(self.refusal(exc), "danger")
            return None
        except WarningInputError as err:
            self._error(err)
            return None
        self._show("warnings.cancelled" if res["created"] else "warnings.already",
                   "success" if res["created"] else "warning", id=res["warning_id"])
        self._update_of.value = ""
        return res

    def reset(self) -> None:
        """Start a new, empty draft."""
        self._update_of.value = ""
        self._counties.value = []
        self._headline.value = ""
        self._description.value = ""
        self._effective.value = _china_now()
        self._set_expiry()
        self._clear_polygon()
        self._preview.object = ""
        self._message.visible = False
        self._new_token()

    def _refresh_updatable(self):
        df = self.source.active(geometry=False)
        if self.guard.scope() is not None:  # only what the officer may update or cancel
            df = df.loc[[bool(len(a)) and all(self.guard.sees(c) for c in a)
                     if a is not None else False for a in df["area_codes"]]]
        options = {self.t("warnings.update_of.none"): ""}
        for w in df.itertuples():
            options[f"{w.warning_id} · {w.headline}"] = w.warning_id
        value = self._update_of.value if self._update_of.value in options.values() else ""
        self._update_of.options = options
        self._update_of.value = value

    def _load_warning(self, event):
        wid = event.new
        self._cancel_btn.visible = bool(wid)
        if not wid:
            return
        w = self.source.latest(wid)
        to_local = lambda v: pd.Timestamp(v).tz_convert(CHINA_TZ).tz_localize(None)  # noqa: E731
        self._event.value = w["event"] if w["event"] in EVENTS else self._event.value
        self._level.value = w["level"]
        self._headline.value = w["headline"]
        self._description.value = w["description"] or ""
        self._counties.value = [c for c in (w["area_codes"] or []) if c in self._options.values()]
        self._loaded_counties = list(self._counties.value)
        self._effective.value = to_local(w["effective"]).to_pydatetime()
        self._expires.value = to_local(w["expires"]).to_pydatetime()
        self._new_token()

    def __panel__(self):
        buttons = pn.Row(self._preview_btn, self._publish_btn, self._cancel_btn, self._new_btn)
        form = pn.Column(
            self._update_of, pn.Row(self._event, self._level), self._counties,
            pn.Row(self._effective, self._duration, self._expires), self._headline,
            self._description, self._exercise, buttons, self._message, self._preview,
            width=560, sizing_mode="stretch_height")
        return pn.Row(form, pn.Column(self._map, Markdown(self.t("warnings.polygon")),
                                      pn.Row(self._clear_btn, self._polygon_info),
                                      sizing_mode="stretch_both"),
                      sizing_mode="stretch_both")


