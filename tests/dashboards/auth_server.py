"""A tiny console for the login tests: ``pn.serve`` of trivial pages behind ``ConsoleAuth``,
on loopback, in a thread of the test process (so the test owns the throttle's clock)."""
from __future__ import annotations

import asyncio
import http.client
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import tornado.web

from tests.conftest import free_port, wait_until


class Clock:
    """Wall-clock seconds the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_cookie_lines(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie" and
                v.startswith(name + "=")]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client:
    """An HTTP client with its own cookie jar and, optionally, its own source address."""

    def __init__(self, port: int, source: str = "127.0.0.1"):
        self.port, self.source = port, source
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, form: dict | None = None,
                headers: dict | None = None, cookies: dict | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                          source_address=(self.source, 0))
        jar = self.cookies if cookies is None else cookies
        hdrs = {"Accept": "text/html", **(headers or {})}
        if jar:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            resp = Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()
        for line in (v for k, v in resp.headers if k.lower() == "set-cookie"):
            c = SimpleCookie()
            c.load(line)
            for name, morsel in c.items():
                resp.cookies[name] = morsel.value
                if cookies is None:
                    if morsel.value and not morsel["expires"].startswith("Thu, 01 Jan 1970") \
                            and morsel["max-age"] != "0":
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
        return resp

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def form_token(self, path: str = "/login") -> str:
        page = self.get(path)
        return re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)

    def login(self, name: str, password: str, *, next_url: str = "", headers=None) -> Response:
        csrf = self.form_token()
        return self.request("POST", "/login", headers=headers,
                            form={"_csrf": csrf, "username": name, "password": password,
                                  "next": next_url})

    def token_login(self, token: str) -> Response:
        csrf = self.form_token("/login/token")
        return self.request("POST", "/login/token", form={"_csrf": csrf, "t": token})


class AuthConsole:
    """The served test console. ``extra_patterns`` are added beside the pages."""

    def __init__(self, tmp: Path, users_file: Path, *, extra_patterns=(), **config_kw):
        import panel as pn

        from dashboards.auth import ConsoleAuth
        from sources.access.audit import AuditLog
        from sources.access.config import load_access_config
        from sources.store.store import Store

        self.clock = Clock()
        secret = tmp / "cookie.secret"
        secret.write_text("test secret " + "x" * 40 + "\n")
        secret.chmod(0o600)
        self.secret = secret.read_text().strip()
        kw = {"user_failures": 3, "address_failures": 10, "window_minutes": 5,
              "lock_minutes": 5, **config_kw}
        self.config = load_access_config(users_file=users_file, secret_file=secret,
                                         clock=self.clock, **kw)
        self.config.users.check_interval_s = 0  # see each CLI change at once
        self.users_file = users_file
        self.store = Store(tmp / "console.duckdb")
        self.audit = AuditLog(self.store)
        self.auth = ConsoleAuth(self.config, audit=self.audit)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        auth = self.auth

        def page():
            p = auth.page_principal()
            who = f"{p.name} {p.role} {p.jurisdiction}" if p else "nobody"
            return pn.pane.Markdown(f"signed in: {who}", name="who")

        self._server = None
        self._error: BaseException | None = None
        patterns = list(extra_patterns)

        def run():
            try:
                asyncio.set_event_loop(asyncio.new_event_loop())
                server = pn.serve({"": page, "board": page, "console": page, "admin": page},
                                  port=self.port, address="127.0.0.1", start=False,
                                  show=False, extra_patterns=patterns,
                                  websocket_origin=[f"127.0.0.1:{self.port}"],
                                  **auth.serve_kwargs())
                auth.install(server, sweep_s=0.5)
                # owned by this object, not by pn.state: the suite's autouse fixture kills
                # pn.state's servers after each test, and this one serves a whole module
                for key, entry in list(pn.state._servers.items()):
                    if entry[0] is server:
                        del pn.state._servers[key]
                self._server = server
                server.start()
                server.io_loop.start()
            except BaseException as exc:  # reported by the waiting test
                self._error = exc

        self._thread = threading.Thread(target=run, name="auth-console", daemon=True)
        self._thread.start()
        wait_until(lambda: self._server is not None or self._error is not None, timeout=60)
        if self._error is not None:
            raise self._error
        wait_until(lambda: self.client().get("/login").status == 200, timeout=30)

    def client(self, source: str = "127.0.0.1") -> Client:
        return Client(self.port, source)

    def drain_audit(self) -> None:
        """Wait until the background audit writer has written what was submitted."""
        self.auth._audit.submit(lambda: None).result(timeout=30)

    def entries(self, action: str | None = None):
        self.drain_audit()
        return self.audit.export(action=action)

    def stop(self) -> None:
        server = self._server
        if server is not None:
            loop = server.io_loop

            def halt():
                try:
                    server.stop()
                finally:
                    loop.stop()

            loop.add_callback(halt)
            self._thread.join(30)
        self.auth.stop()
        self.store.close()


class PublicPing(tornado.web.RequestHandler):
    def get(self):
        self.finish("pong")


class DetailHandler(tornado.web.RequestHandler):
    def get(self):
        self.finish(f"detail for {self.current_user.name}")


class PlainHandler(tornado.web.RequestHandler):
    """An undecorated handler (like serve.py's /health): PAGES decides by its path."""

    def get(self):
        self.finish("plain")
