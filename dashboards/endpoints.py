"""The console's HTTP endpoints that are not pages, in one place.

* ``GET /health`` — JSON: store, memory, feeds and every service (monitoring, operators);
* ``GET /cap/feed.atom`` — the current warnings as an Atom feed of CAP entries, each linking
  to its message's document (``application/cap+xml``), as CAP aggregators poll;
* ``GET /cap/index.xml`` — the same list as a plain index (no namespace; older pollers);
* ``GET /cap/<id>.xml`` — one warning (its latest version) as a CAP 1.2 alert;
* ``GET /cap/<id>/v<N>.xml`` — version N of a warning (what a feed entry links to);
* ``GET /cap/<id>/counties.txt`` — the county codes of a warning, one a line (regional SMS).

``<id>`` is URL-encoded as one path segment (an id may hold ``/``); Tornado matches the
encoded path and decodes the group. Other channels (SMS platforms, broadcast systems, CAP
aggregators, monitoring) poll them.
"""
from __future__ import annotations

import json

import tornado.web

from dashboards.auth import authenticated
from sources.console import Console


class ConsoleHandler(tornado.web.RequestHandler):
    """A handler of the console's endpoints (no caching: every answer is live)."""

    def initialize(self, console: Console):
        self.console = console

    def send(self, body: bytes | str, content_type: str) -> None:
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.write(body)

    def not_found(self, what: str) -> None:
        self.set_status(404)
        self.send(f"not found: {what!r}\n", "text/plain; charset=utf-8")

    def base_url(self, path: str = "/cap") -> str:
        """Absolute URL of ``path`` as this client reached the console (Atom ids are absolute)."""
        return f"{self.request.protocol}://{self.request.host}{path}"


@authenticated(public=True)
class HealthHandler(ConsoleHandler):
    """Liveness for anyone (a supervisor, a load balancer, a wall's reconnect watchdog); the
    detail — paths, feed URLs and errors, memory — for whoever may see it (an admin), or
    everyone when the console serves without login (loopback)."""

    def get(self):
        console, user = self.console, self.current_user
        detail = console.access is None or (
            user is not None and bool(console.access.can(user, "health.detail")))
        body = console.health() if detail else {
            "status": "ok", "uptime_s": console.health()["uptime_s"]}
        self.send(json.dumps(body, ensure_ascii=False), "application/json; charset=utf-8")


class CapFeedHandler(ConsoleHandler):
    def get(self):
        self.send(self.console.warnings.cap_atom(self.base_url()),
                  "application/atom+xml; charset=utf-8")


class CapIndexHandler(ConsoleHandler):
    def get(self):
        self.send(self.console.warnings.cap_index_xml(self.base_url()),
                  "application/xml; charset=utf-8")


class CapAlertHandler(ConsoleHandler):
    def get(self, warning_id: str, version: str | None = None):
        try:
            body = self.console.warnings.cap_xml(
                warning_id, None if version is None else int(version))
        except KeyError:
            return self.not_found(warning_id)
        self.send(body, "application/cap+xml; charset=utf-8")


class CapCountiesHandler(ConsoleHandler):
    def get(self, warning_id: str):
        try:
            codes = self.console.warnings.sms_counties(warning_id)
        except KeyError:
            return self.not_found(warning_id)
        self.send("".join(f"{c}\n" for c in codes), "text/plain; charset=utf-8")


def handlers(console: Console) -> list[tuple]:
    """Tornado URL patterns ``(regex, handler, kwargs)`` served beside the pages."""
    kw = {"console": console}
    return [
        (r"/health", HealthHandler, kw),
        (r"/cap/feed\.atom", CapFeedHandler, kw),
        (r"/cap/index\.xml", CapIndexHandler, kw),
        (r"/cap/([^/]+)/counties\.txt", CapCountiesHandler, kw),
        (r"/cap/([^/]+)/v([0-9]{1,9})\.xml", CapAlertHandler, kw),
        (r"/cap/([^/]+)\.xml", CapAlertHandler, kw),
    ]
