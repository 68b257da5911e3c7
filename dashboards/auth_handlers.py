"""The pages' handlers of the login edge: sign in, wall sign-in, sign out (public routes).

They keep no state of their own: the :class:`dashboards.auth.ConsoleAuth` given as ``auth``
checks passwords, opens and ends sessions, throttles and records.
"""
from __future__ import annotations

import hmac
import math
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import tornado.web
from tornado.ioloop import IOLoop

from dashboards.auth_pages import login_page, logout_page, token_page
from sources.access.passwords import MAX_PASSWORD, token_fingerprint
from sources.access.policy import WALL
from views.i18n import LANGS, t

if TYPE_CHECKING:
    from dashboards.auth import ConsoleAuth

COOKIE = "console_session"
FORM_COOKIE = "console_form"
LOGIN, TOKEN_LOGIN, LOGOUT = "/login", "/login/token", "/logout"
WALL_LANDING = "/board?kiosk=1"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def safe_next(url: str | None) -> str:
    """``url`` if it is a path on this server (``/board?x=1``), else ``""`` (no open redirect)."""
    if not url or len(url) > 2048 or not url.startswith("/") or url.startswith("//"):
        return ""
    if "\\" in url or any(ord(c) < 32 for c in url):
        return ""
    parsed = urlparse(url)
    return url if not parsed.scheme and not parsed.netloc else ""


def request_lang(handler, default: str) -> str:
    """``?lang=`` (or the form's ``lang``), else the console's language — as every page
    of the console decides (``views.i18n.session_lang``), not the browser's."""
    value = handler.get_argument("lang", None)
    return value if value in LANGS else default


# ---------------------------------------------------------------------- handlers
class _EdgeHandler(tornado.web.RequestHandler):
    """Login, wall login and logout: public, never cached, never framed."""

    access_public = True

    def initialize(self, auth: ConsoleAuth):
        self.auth = auth

    def set_default_headers(self):
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the
        # form POST, and the origin check below needs the real one
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("Content-Type", "text/html; charset=utf-8")

    @property
    def lang(self) -> str:
        return request_lang(self, self.auth.config.lang)

    def form_token(self) -> str:
        """The anti-forgery value of the login forms (double-submit: cookie and field)."""
        existing = self.get_signed_cookie(FORM_COOKIE, max_age_days=1, min_version=2)
        if existing:
            return existing.decode("ascii", "replace")
        token = secrets.token_urlsafe(18)
        self.set_signed_cookie(FORM_COOKIE, token, expires_days=None, path=LOGIN,
                               httponly=True, samesite="Strict", secure=self.auth.is_tls(self))
        return token

    def form_ok(self) -> bool:
        """The POST came from our own form: same origin, matching anti-forgery value."""
        origin = self.request.headers.get("Origin")
        if origin is not None and urlparse(origin).netloc != self.request.host:
            return False
        cookie = self.get_signed_cookie(FORM_COOKIE, max_age_days=1, min_version=2)
        field = self.get_body_argument("_csrf", "")
        return bool(cookie) and hmac.compare_digest(cookie, field.encode("utf-8", "replace"))

    def record(self, action: str, **fields) -> None:
        self.auth.record(action, address=self.auth.client_address(self), **fields)

    def write_error(self, status_code: int, **kwargs):  # no traceback, ever
        self.finish(f"{status_code}\n")


class LoginHandler(_EdgeHandler):
    """``GET /login``: the form; ``POST /login``: check, throttle, session, audit."""

    def get(self):
        self.show()

    def show(self, error: str | None = None, status: int = 200, username: str = ""):
        self.set_status(status)
        self.finish(login_page(self.lang, csrf=self.form_token(), error=error,
                               next_url=safe_next(self.get_argument("next", "")),
                               username=username))

    async def post(self):
        auth, lang = self.auth, self.lang
        name = self.get_body_argument("username", "").strip().lower()[:64]
        if not self.form_ok():
            self.record("login.failure", user_name=name, outcome="denied", reason="form")
            return self.show(t("access.login.expired", lang), 403, name)
        password = self.get_body_argument("password", "")[: MAX_PASSWORD + 1]
        address = auth.client_address(self)
        throttle = auth.config.throttle
        lock = throttle.locked(name, address)
        if lock is not None:
            if lock.first_refusal:  # one entry per lockout, not one per attempt
                self.record("login.refused", user_name=name, outcome="denied",
                            reason=f"locked_{lock.on}", details={"until": _iso(lock.until)})
            minutes = max(1, math.ceil(throttle.remaining(lock) / 60))
            return self.show(t("access.login.locked", lang, minutes=minutes), 429, name)
        user, why = await IOLoop.current().run_in_executor(
            auth._kdf, auth.check_password, name, password)
        if user is None:
            started = throttle.failure(name, address)
            self.record("login.failure", user_name=name, outcome="failed", reason=why)
            for lock in started:
                self.record("login.lockout", user_name=name, outcome="denied",
                            reason=f"locked_{lock.on}",
                            details={"on": lock.on, "value": lock.value, "until": _iso(lock.until)})
            return self.show(t("access.login.failed", lang), 401, name)
        throttle.success(name)
        principal = auth.open_session(self, user, "password")
        self.clear_cookie(FORM_COOKIE, path=LOGIN)
        self.record("login.success", actor=principal, details={"kind": "password"})
        self.redirect(safe_next(self.get_argument("next", "")) or auth.landing(user))


class TokenLoginHandler(_EdgeHandler):
    """``/login/token#t=…``: the wall's keyboard-less login (token in the URL fragment)."""

    def get(self):
        self.show()

    def show(self, error: str | None = None, status: int = 200):
        nonce = secrets.token_urlsafe(16)
        self.set_header("Content-Security-Policy", CSP + f"; script-src 'nonce-{nonce}'")
        self.set_status(status)
        self.finish(token_page(self.lang, csrf=self.form_token(), nonce=nonce, error=error,
                               explicit_lang=self.get_argument("lang", None) in LANGS))

    def post(self):
        auth = self.auth
        if not self.form_ok():
            self.record("login.failure", outcome="denied", reason="form",
                        details={"kind": "token"})
            return self.show(t("access.login.expired", self.lang), 403)
        address = auth.client_address(self)
        throttle = auth.config.throttle
        lock = throttle.locked(None, address)
        if lock is not None:
            if lock.first_refusal:
                self.record("login.refused", outcome="denied", reason="locked_address",
                            details={"kind": "token", "until": _iso(lock.until)})
            minutes = max(1, math.ceil(throttle.remaining(lock) / 60))
            return self.show(t("access.login.locked", self.lang, minutes=minutes), 429)
        token = self.get_body_argument("t", "")[:128]
        user = auth.config.users.by_token(token_fingerprint(token)) if token else None
        if user is None or user.disabled or user.role != WALL:
            for lock in throttle.failure(None, address):
                self.record("login.lockout", outcome="denied", reason="locked_address",
                            details={"kind": "token", "until": _iso(lock.until)})
            self.record("login.failure", user_name=user.name if user else None,
                        outcome="failed", reason="bad_token" if user is None else "not_allowed",
                        details={"kind": "token"})
            return self.show(t("access.token.failed", self.lang), 401)
        principal = auth.open_session(self, user, "token")
        self.clear_cookie(FORM_COOKIE, path=LOGIN)
        self.record("login.success", actor=principal, details={"kind": "token"})
        lang = self.get_body_argument("lang", "")
        self.redirect(WALL_LANDING + (f"&lang={lang}" if lang in LANGS else ""))


class LogoutHandler(_EdgeHandler):
    """``/logout``: ends the login on the server (the old cookie is then worth nothing)."""

    def get(self):
        principal = self.auth.principal(self)
        if principal is not None:
            self.auth.config.sessions.revoke(principal.session)
            self.record("logout", actor=principal)
        self.clear_cookie(COOKIE, path="/", httponly=True, samesite="Strict",
                          secure=self.auth.is_tls(self))
        self.finish(logout_page(self.lang))

    post = get


class NotFound(tornado.web.RequestHandler):
    """Tornado's default handler: no route matched (gated: sign in first, then 404)."""

    def prepare(self):
        raise tornado.web.HTTPError(404)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
