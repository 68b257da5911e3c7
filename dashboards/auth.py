"""The login edge: Panel/Bokeh's auth hooks, the login pages, and one gate on every route.

How it plugs in (Panel 1.9 / Bokeh 3.9): ``pn.serve(..., **auth.serve_kwargs())`` hands
Bokeh our :class:`ConsoleAuthProvider` (``auth_provider=``; Panel passes unknown keywords to
``bokeh.server.server.Server``), the tornado cookie secret, signed Bokeh session tokens and
the cookies kept out of them; then ``auth.install(server)`` (before ``server.start()``)
wraps the handler class of *every* route the server has — Bokeh's pages, websockets,
``/static``, Panel's ``/components``, ``/favicon.ico``, the console's own ``/health`` and
``/cap`` — in :class:`_Gate`, whose ``prepare`` asks :meth:`sources.access.policy.Access.can_open`
(or the handler's own ``@authenticated(...)`` rule) before the handler runs. Panel's
``authorize_callback`` is not used: it runs only for document pages, so it would be a
second, partial authority.

Sessions are server-side (:mod:`sources.access.sessions`): the cookie ``console_session``
holds a random id, signed with the cookie secret (a cookie signed with another secret, or
naming no live session, is refused), ``HttpOnly``, ``SameSite=Strict`` (the console is never
entered from another site's link or form; Strict also stops cross-site requests from
carrying the login), ``Secure`` when the request came over TLS (directly or from a trusted
proxy). The page's Bokeh token carries who is signed in (name, role, jurisdiction and the
session's hash — never the cookie) and is signed, so a page cannot claim another user.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import sys
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import tornado.web
from bokeh.server.auth_provider import AuthProvider
from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketHandler

from dashboards.auth_handlers import (
    COOKIE,
    CSP,
    FORM_COOKIE,
    LOGIN,
    LOGOUT,
    TOKEN_LOGIN,
    WALL_LANDING,
    LoginHandler,
    LogoutHandler,
    NotFound,
    TokenLoginHandler,
    request_lang,
    safe_next,
)
from dashboards.auth_pages import denied_page
from sources.access.config import AccessConfig
from sources.access.passwords import burn_time, verify_password
from sources.access.policy import ALLOWED, ROLES, WALL, Decision
from sources.access.sessions import Principal, session_hash
from sources.access.users import User
from views.i18n import t

log = logging.getLogger(__name__)

COMPONENT_ROOTS = ("panel", "bokeh", "holoviews", "views", "dashboards")
__all__ = ["COOKIE", "ConsoleAuth", "ConsoleAuthProvider", "authenticated", "gated",
           "safe_next"]

def authenticated(*, roles: Iterable[str] | None = None, action: str | None = None,
                  public: bool = False):
    """Class decorator for the console's own tornado handlers: who may call this route.

    ``@authenticated(roles={"admin"})``, ``@authenticated(action="health.detail")`` or
    ``@authenticated(public=True)``; without arguments, :data:`sources.access.policy.PAGES`
    decides by path. The handler is gated even if :meth:`ConsoleAuth.install` is never
    called (it then refuses everything but public routes), and reads the signed-in user
    as ``self.current_user`` (a :class:`~sources.access.sessions.Principal`).
    """
    def decorate(cls: type[tornado.web.RequestHandler]):
        attrs = {"access_public": public, "access_action": action,
                 "access_roles": None if roles is None else frozenset(roles)}
        return gated(cls, attrs)
    return decorate


class _Gate:
    """Put in front of a handler class: authorises the request before the handler runs.

    :func:`gated` sets ``access_public``, ``access_roles`` and ``access_action`` on each
    gated class (from the handler's own attributes or the decorator's)."""

    _access_gated = True

    async def prepare(self):
        auth: ConsoleAuth | None = self.application.settings.get("console_auth")
        if auth is None:
            if not self.access_public:  # no gatekeeper configured: refuse, never open
                self.set_status(503)
                self.finish("access control is not installed\n")
                return
        else:
            principal, decision = auth.check(self)
            if not decision:
                auth.refuse(self, principal, decision)
                return
            if principal is not None:
                self.current_user = principal
                # read by the page's process_request: the page's token says who it serves
                self.request.console_principal = principal.public()
        result = super().prepare()
        if result is not None:
            await result


class _LoadedComponentsOnly:
    """Panel's ``/components/<module>/…`` imports the module a URL names; serve only from
    modules this process has already loaded, under the console's own packages."""

    component_roots: tuple[str, ...] = COMPONENT_ROOTS

    def parse_url_path(self, path: str) -> str:
        module = path.split("/", 1)[0]
        if module not in sys.modules or module.split(".")[0] not in self.component_roots:
            raise tornado.web.HTTPError(404)
        return super().parse_url_path(path)


def gated(cls: type, attrs: dict | None = None) -> type:
    """``cls`` behind the gate (idempotent)."""
    if getattr(cls, "_access_gated", False) and not attrs:
        return cls
    bases: tuple = (_Gate, cls)
    from panel.io.server import ComponentResourceHandler

    if issubclass(cls, ComponentResourceHandler):
        bases = (_Gate, _LoadedComponentsOnly, cls)
    rule = {"access_public": getattr(cls, "access_public", False),
            "access_roles": getattr(cls, "access_roles", None),
            "access_action": getattr(cls, "access_action", None), **(attrs or {})}
    return type(cls.__name__, bases, {"__module__": cls.__module__, **rule})


def restrict_components(server) -> int:
    """Without login (a loopback console): Panel's ``/components/<module>/…`` still serves
    only from modules already loaded under the console's packages. Returns the routes
    changed."""
    from panel.io.server import ComponentResourceHandler

    changed = 0
    for rule in _rules(server._tornado.wildcard_router):
        target = rule.target
        if isinstance(target, type) and issubclass(target, ComponentResourceHandler) \
                and not issubclass(target, _LoadedComponentsOnly):
            rule.target = type(target.__name__, (_LoadedComponentsOnly, target),
                               {"__module__": target.__module__})
            changed += 1
    return changed


# ---------------------------------------------------------------------- the gatekeeper
class ConsoleAuth:
    """The web edge of access control for one console process.

    Parameters
    ----------
    config : sources.access.config.AccessConfig
        From :func:`sources.access.config.load_access_config`.
    audit : sources.access.audit.AuditLog, optional
        Where logins, logouts, refusals and revocations are recorded (written from one
        background thread, in order, never on the server's event loop).
    """

    def __init__(self, config: AccessConfig, *, audit: Any = None,
                 component_roots: tuple[str, ...] = COMPONENT_ROOTS):
        self.config = config
        self.audit = audit
        self.component_roots = component_roots
        self._public = [re.compile(p) for p in config.public_paths]
        # scrypt takes 32 MiB and ~0.1 s per check: two at a time bound memory and CPU
        # under a flood of logins, and keep the event loop free.
        self._kdf = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login-kdf")
        self._audit = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        self._sweeper: PeriodicCallback | None = None
        if audit is not None:
            audit.import_user_log(config.users)
            config.users.on_reload(audit.import_user_log)
        else:
            log.warning("access: no audit log given; logins are not recorded")

    # ------------------------------------------------------------------ serving
    def serve_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pn.serve`` (merge them into the call)."""
        bokeh_key = hmac.new(self.config.secret.encode(), b"bokeh session tokens",
                             hashlib.sha256).hexdigest().encode()
        return {
            "auth_provider": ConsoleAuthProvider(self),
            "cookie_secret": self.config.secret,
            "console_auth": self,  # tornado setting: the gate finds us here
            # the page's token is readable by its scripts: keep the login cookie (and the
            # Cookie header, which would repeat it) out of it
            "exclude_cookies": [COOKIE, FORM_COOKIE],
            "exclude_headers": ["Cookie"],
            "sign_sessions": True,
            "secret_key": bokeh_key,
            # no route matched: sign in first (an anonymous client learns no route names)
            "default_handler_class": authenticated(roles=ROLES)(NotFound),
        }

    def install(self, server, *, sweep_s: float = 2.0) -> None:
        """Gate every route of ``server`` (from ``pn.serve(..., start=False)``), make each
        page's token say who it serves, and close open pages whose login ended.

        Call before ``server.start()``; raises if ``serve_kwargs()`` were not passed."""
        app = server._tornado
        if app.settings.get("console_auth") is not self or not app.sign_sessions:
            raise RuntimeError("pn.serve was not given ConsoleAuth.serve_kwargs()")
        if getattr(getattr(server, "_http", None), "xheaders", False):
            raise RuntimeError("use_xheaders trusts any client's X-Forwarded-For: configure "
                               "trusted_proxies instead")
        for rule in _rules(app.wildcard_router):
            if isinstance(rule.target, type) and issubclass(rule.target,
                                                            tornado.web.RequestHandler):
                rule.target = gated(rule.target)
                if issubclass(rule.target, _LoadedComponentsOnly):
                    rule.target.component_roots = self.component_roots
        for ctx in app._applications.values():
            _tag_requests(ctx.application)
        if sweep_s:
            self._sweeper = PeriodicCallback(lambda: self.close_revoked(server), sweep_s * 1000)
            self._sweeper.start()

    def stop(self) -> None:
        """Stop the sweeper and let the audit writer finish (call when the console stops)."""
        if self._sweeper is not None:
            self._sweeper.stop()
        self._kdf.shutdown(wait=True)
        self._audit.shutdown(wait=True)

    # ------------------------------------------------------------------ identity
    def client_address(self, handler) -> str:
        """The client's address: the socket's, or — when the socket is a trusted proxy —
        the nearest untrusted address of ``X-Forwarded-For``."""
        remote = handler.request.remote_ip or ""
        if not self.config.trusts(remote):
            return remote
        hops = [h.strip() for v in handler.request.headers.get_list("X-Forwarded-For")
                for h in v.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.config.trusts(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return remote  # a forged or garbled chain: the proxy is what we know
        return hops[0] if hops else remote

    def is_tls(self, handler) -> bool:
        """Whether the browser reached us over HTTPS (directly, or via a trusted proxy)."""
        if handler.request.protocol == "https":
            return True
        if self.config.trusts(handler.request.remote_ip or ""):
            proto = handler.request.headers.get("X-Forwarded-Proto", "")
            return proto.split(",")[0].strip().lower() == "https"
        return False

    def principal(self, handler) -> Principal | None:
        """The signed-in user of a request (cached on the handler), or None."""
        if hasattr(handler, "_console_principal"):
            return handler._console_principal
        principal = None
        max_days = self.config.wall_lifetime_s / 86400 + 1
        raw = handler.get_signed_cookie(COOKIE, max_age_days=max_days, min_version=2)
        if raw:
            try:
                key = session_hash(raw.decode("ascii"))
            except UnicodeDecodeError:
                key = None
            if key:
                principal = self.resolve(key, address=self.client_address(handler))
        handler._console_principal = principal
        return principal

    def resolve(self, key: str, *, address: str = "") -> Principal | None:
        """The live principal of the session with hash ``key``; None (and the session
        ended, and recorded) if its user was disabled, removed, re-passworded or its wall
        token revoked."""
        session = self.config.sessions.get(key)
        if session is None:
            return None
        user = self.config.users.get(session.user)
        why = None
        if user is None:
            why = "user_removed"
        elif user.disabled:
            why = "user_disabled"
        elif user.credential(session.kind) != session.credential:
            why = "credential_changed"
        elif session.kind == "token" and user.role != WALL:
            why = "not_a_wall"
        if why:
            if self.config.sessions.revoke(key) is not None:
                self.record("session.revoked", user_name=session.user, outcome="ok",
                            reason=why, address=session.address, target=key[:16])
            return None
        return Principal(name=user.name, role=user.role, jurisdiction=user.jurisdiction,
                         display_name=user.display_name, session=key, kind=session.kind,
                         address=address or session.address)

    def page_principal(self, doc=None) -> Principal | None:
        """The signed-in user of the current Panel page (re-checked now: None once the
        login ended). Call it when acting, not only when the page is built."""
        if doc is None:
            import panel as pn

            doc = pn.state.curdoc
        ctx = getattr(doc, "session_context", None)
        try:
            data = (ctx.token_payload if ctx is not None else {}).get("access")
        except (AssertionError, AttributeError):  # a document outside a server session
            data = None
        if not isinstance(data, dict) or not data.get("session"):
            return None
        return self.resolve(str(data["session"]), address=str(data.get("address", "")))

    def landing(self, user: User) -> str:
        return WALL_LANDING if user.role == WALL else "/"

    # ------------------------------------------------------------------ gate
    def _path(self, handler) -> str:
        path = handler.request.path
        prefix = getattr(handler.application, "prefix", "") or ""
        return path[len(prefix):] or "/" if prefix and path.startswith(prefix) else path

    def check(self, handler) -> tuple[Principal | None, Decision]:
        """Who is asking and whether they may: the one decision for every route."""
        path = self._path(handler)
        if handler.access_public or any(p.fullmatch(path) for p in self._public):
            # open to anyone; a signed-in caller is still known (e.g. /health's detail)
            return self.principal(handler), ALLOWED
        principal = self.principal(handler)
        if principal is None:
            return None, Decision(False, "access.denied.login")
        if handler.access_action:
            return principal, self.config.access.can(principal, handler.access_action)
        if handler.access_roles is not None:
            if principal.role in handler.access_roles:
                return principal, ALLOWED
            return principal, Decision(False, "access.denied.role", {"page": path,
                                                                    "role": principal.role})
        return principal, self.config.access.can_open(principal, path)

    def refuse(self, handler, principal: Principal | None, decision: Decision) -> None:
        """Answer a refused request: the login page for a browser that is not signed in,
        403 with the reason for a signed-in user (recorded), 401 for anything else."""
        handler.set_header("Cache-Control", "no-store")
        is_ws = isinstance(handler, WebSocketHandler)
        wants_page = (handler.request.method in ("GET", "HEAD") and not is_ws
                      and "text/html" in handler.request.headers.get("Accept", ""))
        if principal is None:
            if wants_page:
                handler.redirect(f"{LOGIN}?next={quote(handler.request.uri, safe='')}")
                return
            handler.set_status(401)
            handler.set_header("Content-Type", "text/plain; charset=utf-8")
            handler.finish("sign in first\n")
            return
        path = self._path(handler)
        self.record("route.denied", actor=principal, outcome="denied", target=path,
                    reason=decision.reason_key)
        handler.set_status(403)
        lang = request_lang(handler, self.config.lang)
        reason = t(decision.reason_key or "access.denied.role", lang, **decision.detail)
        if not wants_page:
            handler.set_header("Content-Type", "text/plain; charset=utf-8")
            handler.finish(reason + "\n")
            return
        handler.set_header("Content-Security-Policy", CSP)
        handler.set_header("Content-Type", "text/html; charset=utf-8")
        who = t("access.signed_in_as", lang, name=principal.name,
                role=t(f"access.role.{principal.role}", lang),
                jurisdiction=principal.jurisdiction)
        handler.finish(denied_page(lang, reason, signed_in_as=who))

    # ------------------------------------------------------------------ logins
    def check_password(self, name: str, password: str) -> tuple[User | None, str | None]:
        """The user if ``password`` is theirs and they may sign in; else why not (for the
        audit log only: the page says the same for every failure). Slow: run off-loop."""
        user = self.config.users.get(name)
        if user is None or not user.password:
            burn_time(password)
            return None, "unknown_user" if user is None else "no_password"
        if not verify_password(password, user.password):
            return None, "bad_password"
        if user.disabled:
            return None, "disabled"
        return user, None

    def open_session(self, handler, user: User, kind: str) -> Principal:
        """Start a login for ``user`` and set its cookie on ``handler``'s response; the
        browser's previous login, if any, ends (one browser, one login)."""
        previous = self.principal(handler)
        if previous is not None:
            self.config.sessions.revoke(previous.session)
        lifetime = self.config.wall_lifetime_s if kind == "token" else self.config.login_lifetime_s
        address = self.client_address(handler)
        session_id = self.config.sessions.create(
            user=user.name, kind=kind, credential=user.credential(kind) or "",
            address=address, lifetime_s=lifetime)
        handler.set_signed_cookie(COOKIE, session_id, expires_days=lifetime / 86400, path="/",
                                  httponly=True, samesite="Strict", secure=self.is_tls(handler))
        return Principal(name=user.name, role=user.role, jurisdiction=user.jurisdiction,
                         display_name=user.display_name, session=session_hash(session_id),
                         kind=kind, address=address)

    def close_revoked(self, server) -> int:
        """Close the websockets of open pages whose login has ended; return how many."""
        from bokeh.util.token import get_token_payload

        closed = 0
        for session in list(server.get_sessions()):
            try:
                data = get_token_payload(session.token).get("access") or {}
            except Exception:  # a malformed token cannot have been served by us: skip
                continue
            key = data.get("session")
            if key and self.resolve(key) is None:
                # Bokeh keeps the page's connections privately; closing the socket ends the
                # page (its reconnect is refused at the gate)
                for connection in list(getattr(session, "_subscribed_connections", ())):
                    connection._socket.close(1008, "signed out")
                    closed += 1
        return closed

    # ------------------------------------------------------------------ audit
    def record(self, action: str, **fields) -> Future | None:
        """Append to the audit log from the background writer (in order); errors logged."""
        if self.audit is None:
            return None

        def write():
            try:
                return self.audit.record(action, **fields)
            except Exception:
                log.exception("audit: could not record %s", action)
                raise

        try:
            return self._audit.submit(write)
        except RuntimeError:  # stopping: write inline rather than lose it
            write()
            return None


def _rules(router) -> list:
    out = []
    for rule in getattr(router, "rules", []):
        out.append(rule)
        out.extend(_rules(rule.target) if hasattr(rule.target, "rules") else [])
    return out


def _tag_requests(application) -> None:
    """Make a Bokeh application put the gate's principal into each page's session token."""
    if getattr(application, "_console_tagged", False):
        return
    original = application.process_request

    def process_request(request):
        data = original(request)
        principal = getattr(request, "console_principal", None)
        if principal:
            data["access"] = principal
        return data

    application.process_request = process_request
    application._console_tagged = True


class ConsoleAuthProvider(AuthProvider):
    """Bokeh's hooks: who is signed in, and where the login and logout pages are."""

    def __init__(self, auth: ConsoleAuth):
        self._auth = auth
        super().__init__()

    @property
    def get_user(self):
        return self._auth.principal

    @property
    def login_url(self):
        return LOGIN

    @property
    def logout_url(self):
        return LOGOUT

    @property
    def endpoints(self):
        kw = {"auth": self._auth}
        return [(LOGIN, LoginHandler, kw), (TOKEN_LOGIN, TokenLoginHandler, kw),
                (LOGOUT, LogoutHandler, kw)]
