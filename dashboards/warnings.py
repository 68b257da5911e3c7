"""``/warnings``: natural-disaster monitoring, county risk, warning issuance and log; CAP.

HTTP endpoints for other channels (SMS platform, broadcast systems, CAP aggregators):

* ``GET /cap/feed.atom`` — the current warnings as an Atom feed of CAP entries, each linking
  to its message's document (``application/cap+xml``), as CAP aggregators poll;
* ``GET /cap/index.xml`` — the same list as a plain index (no namespace; older pollers);
* ``GET /cap/<id>.xml`` — one warning (its latest version) as a CAP 1.2 alert;
* ``GET /cap/<id>/v<N>.xml`` — version N of a warning (what a feed entry links to);
* ``GET /cap/<id>/counties.txt`` — the county codes of a warning, one a line (regional SMS).

``<id>`` is URL-encoded as one path segment (an id may hold ``/``); Tornado matches the
encoded path and decodes the group.
"""
from __future__ import annotations

from typing import ClassVar

import panel as pn
import tornado.web

from sources.runtime import Runtime
from sources.warnings.expiry import WarningExpiry
from sources.warnings.monitoring import CountyGeometry, LayerCache, MonitoringSource
from sources.warnings.warnings import LatestCache, WarningSource
from views.county_risk import CountyRisk
from views.monitoring_map import MonitoringMap
from views.warning_form import WarningForm
from views.warning_log import ActiveWarnings, WarningLog

from .base import Dashboard
from .theme import page


def geography(runtime: Runtime) -> CountyGeometry:
    """County outlines, parsed once per process."""
    return runtime.shared("warnings.geography", lambda: CountyGeometry.load(runtime.store))


def warning_source(runtime: Runtime) -> WarningSource:
    """A warnings source on the shared store, outlines and cache of the latest versions."""
    geo = geography(runtime)
    cache = runtime.shared("warnings.latest", lambda: LatestCache(runtime.hub))
    return WarningSource(store=runtime.store, hub=runtime.hub, geography=geo, cache=cache)


def start_services(runtime: Runtime) -> None:
    """Start the warning expiry timer once per process (``serve.py`` calls this)."""
    source = warning_source(runtime)  # outside ``shared``: its lock is not re-entrant

    def make():
        expiry = WarningExpiry(source=source).start()
        runtime.on_stop(expiry.stop)
        return expiry

    runtime.shared("warnings.expiry", make)


class _CapHandler(tornado.web.RequestHandler):
    def initialize(self, runtime: Runtime):
        self.runtime = runtime

    def _send(self, body: bytes | str, content_type: str):
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.write(body)

    def _not_found(self, warning_id: str):
        self.set_status(404)
        self._send(f"no warning with id {warning_id!r}\n", "text/plain; charset=utf-8")

    def _base_url(self) -> str:
        """Absolute URL of the CAP routes as this client reached them (Atom ids are absolute)."""
        return f"{self.request.protocol}://{self.request.host}/cap"


class CapFeedHandler(_CapHandler):
    def get(self):
        self._send(warning_source(self.runtime).cap_atom(self._base_url()),
                   "application/atom+xml; charset=utf-8")


class CapIndexHandler(_CapHandler):
    def get(self):
        self._send(warning_source(self.runtime).cap_index_xml(self._base_url()),
                   "application/xml; charset=utf-8")


class CapAlertHandler(_CapHandler):
    def get(self, warning_id: str, version: str | None = None):
        try:
            body = warning_source(self.runtime).cap_xml(
                warning_id, None if version is None else int(version))
        except KeyError:
            return self._not_found(warning_id)
        self._send(body, "application/cap+xml; charset=utf-8")


class CapCountiesHandler(_CapHandler):
    def get(self, warning_id: str):
        try:
            codes = warning_source(self.runtime).sms_counties(warning_id)
        except KeyError:
            return self._not_found(warning_id)
        self._send("".join(f"{c}\n" for c in codes), "text/plain; charset=utf-8")


class WarningsDashboard(Dashboard):
    """Monitoring map, county risk, warning form and log, with the live active-warning list."""

    route: ClassVar[str] = "warnings"
    title_key: ClassVar[str] = "app.warnings"
    description_key: ClassVar[str] = "app.warnings.desc"
    order: ClassVar[int] = 20

    @classmethod
    def handlers(cls, runtime: Runtime) -> list[tuple]:
        kw = {"runtime": runtime}
        return [
            (r"/cap/feed\.atom", CapFeedHandler, kw),
            (r"/cap/index\.xml", CapIndexHandler, kw),
            (r"/cap/([^/]+)/counties\.txt", CapCountiesHandler, kw),
            (r"/cap/([^/]+)/v([0-9]{1,9})\.xml", CapAlertHandler, kw),
            (r"/cap/([^/]+)\.xml", CapAlertHandler, kw),
        ]

    def layout(self) -> pn.viewable.Viewable:
        rt = self.runtime
        geo = geography(rt)
        monitoring = MonitoringSource(store=rt.store, hub=rt.hub, geography=geo)
        warnings = warning_source(rt)
        lang = self.lang
        layers = rt.shared("monitoring.layers", LayerCache)
        active = ActiveWarnings(source=warnings, lang=lang)
        tabs = pn.Tabs(
            (self.t("warnings.tab.map"),
             MonitoringMap(source=monitoring, warnings=warnings, lang=lang,
                           cache=layers)),
            (self.t("warnings.tab.risk"), CountyRisk(source=monitoring, lang=lang, cache=layers)),
            (self.t("warnings.tab.issue"), WarningForm(source=warnings, lang=lang)),
            (self.t("warnings.tab.log"), WarningLog(source=warnings, lang=lang)),
            sizing_mode="stretch_width", css_classes=["warnings-tabs"],
        )
        sidebar = pn.Column(active, width=330, scroll=True, css_classes=["warnings-sidebar"])
        return page(self.t("app.warnings"), tabs, lang=lang, route=self.route,
                    sidebar=sidebar)
