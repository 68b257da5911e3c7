"""The console's HTTP endpoints that are not pages, in one place.

* ``GET /health`` — JSON: store, memory, feeds and every service (monitoring, operators);
* ``GET /cap/index.xml`` — the active warnings, each linking to its alert;
* ``GET /cap/<id>.xml`` — one warning (its latest version) as a CAP 1.2 alert;
* ``GET /cap/<id>/counties.txt`` — the county codes of a warning, one a line (regional SMS).

Other channels (SMS platforms, broadcast systems, monitoring) poll them.
"""
from __future__ import annotations

import json

import tornado.web

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


class HealthHandler(ConsoleHandler):
    def get(self):
        self.send(json.dumps(self.console.health(), ensure_ascii=False),
                  "application/json; charset=utf-8")


class CapIndexHandler(ConsoleHandler):
    def get(self):
        self.send(self.console.warnings.cap_index_xml(), "application/xml; charset=utf-8")


class CapAlertHandler(ConsoleHandler):
    def get(self, warning_id: str):
        try:
            body = self.console.warnings.cap_xml(warning_id)
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
        (r"/cap/index\.xml", CapIndexHandler, kw),
        (r"/cap/([^/]+)/counties\.txt", CapCountiesHandler, kw),
        (r"/cap/([^/]+)\.xml", CapAlertHandler, kw),
    ]
