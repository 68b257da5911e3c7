"""Login on a real server (loopback, in-process ``pn.serve`` behind ``ConsoleAuth``): lockout
on a controlled clock, forged cookies, logout, cookie flags, the route gate, wall tokens."""
from __future__ import annotations

import json
import re
import sys

import pytest
from tornado.web import create_signed_value, decode_signed_value

from dashboards.auth import COOKIE, authenticated
from tests.conftest import arun
from tests.dashboards.auth_server import (
    AuthConsole,
    DetailHandler,
    PlainHandler,
    PublicPing,
)
from tests.sources.access_fixtures import PASSWORDS, USERS, make_users, users_cli

pytestmark = pytest.mark.slow

EXTRA_USERS = [*USERS, ("zhou.temp", "officer", "371302")]
PASSWORDS["zhou.temp"] = "temporary password"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth-console")
    users = tmp / "users.json"
    wall_url = make_users(users, users=EXTRA_USERS)
    patterns = [
        (r"/public-ping", authenticated(public=True)(PublicPing)),
        (r"/health/detail", authenticated(action="health.detail")(DetailHandler)),
        (r"/admin-only", authenticated(roles={"admin"})(DetailHandler)),
        (r"/health", PlainHandler),
        (r"/cap/index\.xml", PlainHandler),
        (r"/cap/manage", PlainHandler),
    ]
    c = AuthConsole(tmp, users, extra_patterns=patterns, public_paths=[r"/cap/index\.xml"],
                    trusted_proxies=["127.0.0.2"])
    c.wall_token = wall_url.split("#t=", 1)[1]
    yield c
    c.stop()


@pytest.fixture(autouse=True)
def fresh_throttle(console):
    """Each test starts with no failed logins counted."""
    console.config.throttle._keys.clear()
    yield


def signed_in(console, name: str):
    client = console.client()
    r = client.login(name, PASSWORDS[name])
    assert r.status == 302, r.text
    return client


# ---------------------------------------------------------------------- the gate
ROUTES = ["/", "/board", "/board/autoload.js", "/board/metadata", "/console", "/admin",
          "/static/js/bokeh.min.js", "/static/extensions/panel/panel.min.js",
          "/components/os/path/__css__/x.css", "/favicon.ico", "/health", "/health/detail",
          "/admin-only", "/cap/manage", "/nowhere"]


@pytest.mark.parametrize("path", ROUTES)
def test_an_unauthenticated_client_reaches_nothing_but_the_login_page(console, path):
    client = console.client()
    browser = client.get(path)
    assert browser.status == 302 and browser.header("Location").startswith("/login?next=")
    script = client.get(path, headers={"Accept": "*/*"})
    assert script.status == 401 and script.body == b"sign in first\n"


def test_the_static_route_is_real_behind_the_gate(console):
    """The refusals above are the gate's: the same file is served once signed in."""
    client = signed_in(console, "li.county")
    assert client.get("/static/js/bokeh.min.js").status == 200


def test_the_websocket_is_refused_without_login(console):

    import websockets

    async def connect(headers):
        async with websockets.connect(f"ws://127.0.0.1:{console.port}/board/ws",
                                      subprotocols=["bokeh", "x"],
                                      additional_headers=headers,
                                      origin=f"http://127.0.0.1:{console.port}"):
            return "open"

    with pytest.raises(websockets.InvalidStatus) as err:
        arun(connect({}))
    assert err.value.response.status_code == 401


def test_login_and_public_routes_are_open(console):
    client = console.client()
    assert client.get("/login").status == 200
    assert client.get("/login/token").status == 200
    assert client.get("/public-ping").body == b"pong"  # @authenticated(public=True)
    assert client.get("/cap/index.xml").body == b"plain"  # public_paths


def test_components_route_never_imports_a_module_for_a_client(console):
    assert "this" not in sys.modules  # `import this` prints: a visible side effect
    client = signed_in(console, "wang.admin")
    assert client.get("/components/this/s/__css__/x.css").status == 404
    assert client.get("/components/os/path/__css__/x.css").status == 404
    assert "this" not in sys.modules


@pytest.mark.parametrize("name, path, status", [
    ("li.county", "/console", 403), ("qian.analyst", "/console", 200),
    ("qian.analyst", "/admin", 403), ("wang.admin", "/admin", 200),
    ("li.county", "/health/detail", 403), ("wang.admin", "/health/detail", 200),
    ("li.county", "/admin-only", 403), ("li.county", "/health", 200),
    ("wang.admin", "/nowhere", 404), ("li.county", "/cap/manage", 200),
])
def test_roles_open_their_routes_and_refusals_are_recorded(console, name, path, status):
    client = signed_in(console, name)
    r = client.get(path + "?lang=en")
    assert r.status == status, (name, path, r.text[:300])
    if status == 403:
        assert "Not permitted" in r.text and name in r.text
        denied = console.entries("route.denied")
        last = denied.iloc[0]
        assert (last.user_name, last.target, last.outcome) == (name, path, "denied")
        assert last.reason.startswith("access.denied.")


def test_a_refusal_is_in_chinese_by_default(console):
    client = signed_in(console, "li.county")
    r = client.get("/console")
    assert r.status == 403 and "无权访问" in r.text and 'lang="zh-CN"' in r.text


def test_the_page_knows_who_is_signed_in_without_seeing_the_cookie(console):
    from bokeh.util.token import check_token_signature, get_token_payload

    client = signed_in(console, "li.county")
    page = client.get("/board")
    assert page.status == 200
    token = re.search(r'"token":\s*"([^"]+)"', page.text).group(1)
    session = next(s for s in console._server.get_sessions("/board") if s.token == token)
    assert "signed in: li.county officer 371302" in texts(session.document)
    assert console.auth.page_principal(doc=session.document).name == "li.county"
    sid = decode_signed_value(console.secret, COOKIE, client.cookies[COOKIE]).decode()
    assert sid not in page.text and client.cookies[COOKIE] not in page.text
    payload = get_token_payload(token)
    assert payload["access"]["name"] == "li.county" and "Cookie" not in payload["headers"]
    assert COOKIE not in payload["cookies"]
    key = console.auth.serve_kwargs()["secret_key"]
    assert check_token_signature(token, secret_key=key, signed=True)
    assert not check_token_signature(token, secret_key=b"another key" * 4, signed=True)


def texts(document) -> str:
    """The text of every model of a Bokeh document (what the page shows)."""
    return " ".join(str(getattr(m, "text", "")) for m in document.models)


def test_an_open_page_loses_its_principal_when_the_login_ends(console):
    client = signed_in(console, "li.county")
    page = client.get("/board")
    token = re.search(r'"token":\s*"([^"]+)"', page.text).group(1)
    session = next(s for s in console._server.get_sessions("/board") if s.token == token)
    assert console.auth.page_principal(doc=session.document).role == "officer"
    client.get("/logout")
    assert console.auth.page_principal(doc=session.document) is None  # acting now: refused


# ---------------------------------------------------------------------- logins
def test_login_sets_a_hardened_session_cookie(console):
    client = console.client()
    r = client.login("li.county", PASSWORDS["li.county"], next_url="/board?lang=en")
    assert r.status == 302 and r.header("Location") == "/board?lang=en"
    (line,) = r.set_cookie_lines(COOKIE)
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in line.split(";")[1:]}
    assert "httponly" in flags and flags["samesite"] == "SameSite=Strict"
    assert flags["path"] == "Path=/" and "secure" not in flags  # plain http here
    assert "expires" in flags
    assert r.header("Cache-Control") == "no-store"
    entry = console.entries("login.success").iloc[0]
    assert (entry.user_name, entry.role, entry.jurisdiction, entry.address) == (
        "li.county", "officer", "371302", "127.0.0.1")


def test_secure_cookie_and_client_address_behind_a_trusted_tls_proxy(console):
    proxy = console.client(source="127.0.0.2")
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4, 198.51.100.7"}
    r = proxy.login("li.county", PASSWORDS["li.county"], headers=headers)
    assert r.status == 302
    (line,) = r.set_cookie_lines(COOKIE)
    assert "Secure" in line
    assert console.entries("login.success").iloc[0].address == "198.51.100.7"
    # the same headers from a client that is not a trusted proxy count for nothing
    direct = console.client()
    r = direct.login("li.county", PASSWORDS["li.county"], headers=headers)
    assert "Secure" not in r.set_cookie_lines(COOKIE)[0]
    assert console.entries("login.success").iloc[0].address == "127.0.0.1"


def test_lockout_after_n_failures_refuses_the_right_password_until_it_ends(console):
    client = console.client()
    for _ in range(3):
        r = client.login("zhao.city", "wrong password!")
        assert r.status == 401 and "用户名或密码错误" in r.text
    locked = client.login("zhao.city", PASSWORDS["zhao.city"])
    assert locked.status == 429 and "5 分钟" in locked.text
    assert COOKIE not in locked.cookies
    console.clock.now += 4 * 60
    assert client.login("zhao.city", PASSWORDS["zhao.city"]).status == 429
    console.clock.now += 61  # past the five minutes
    assert client.login("zhao.city", PASSWORDS["zhao.city"]).status == 302
    df = console.entries()
    mine = df[df.user_name == "zhao.city"].iloc[::-1]
    actions = list(mine.action)
    assert actions[-6:] == ["login.failure", "login.failure", "login.failure", "login.lockout",
                            "login.refused", "login.success"]
    assert set(mine[mine.action == "login.failure"].reason) == {"bad_password"}
    assert console.audit.verify().ok


def test_lockout_per_address_spans_user_names(console):
    attacker = console.client(source="127.0.0.3")
    for i in range(10):
        attacker.login(f"guess{i}", "wrong password!")
    assert attacker.login("li.county", PASSWORDS["li.county"]).status == 429
    assert console.client().login("li.county", PASSWORDS["li.county"]).status == 302
    lock = console.entries("login.lockout").iloc[0]
    assert json.loads(lock.details)["on"] == "address" and lock.address == "127.0.0.3"


def test_unknown_users_and_wrong_passwords_look_the_same(console):
    client = console.client()
    unknown = client.login("no.such.user", "whatever password")
    wrong = client.login("li.county", "whatever password")
    assert unknown.status == wrong.status == 401
    strip = lambda t: re.sub(r'value="[^"]*"', "", t)  # noqa: E731
    assert strip(unknown.text).replace("no.such.user", "") == strip(wrong.text).replace(
        "li.county", "")
    reasons = list(console.entries("login.failure").reason[:2])
    assert reasons == ["bad_password", "unknown_user"]


@pytest.mark.parametrize("forge", ["garbage", "wrong_secret", "invented_session", "unsigned",
                                   "version1"])
def test_forged_cookies_are_refused(console, forge):
    real = signed_in(console, "li.county")
    sid = decode_signed_value(console.secret, COOKIE, real.cookies[COOKIE]).decode()
    value = {
        "garbage": "2|1:0|10:1700000000|15:console_session|4:YWJj|" + "0" * 64,
        "wrong_secret": create_signed_value("another secret " * 3, COOKIE, sid).decode(),
        "invented_session": create_signed_value(console.secret, COOKIE, "made-up-id").decode(),
        "unsigned": sid,
        "version1": create_signed_value(console.secret, COOKIE, sid, version=1).decode(),
    }[forge]
    r = console.client().get("/board", cookies={COOKIE: value}, headers={"Accept": "*/*"})
    assert r.status == 401
    assert real.get("/board").status == 200  # the genuine cookie still works


def test_logout_revokes_the_login_on_the_server(console):
    client = signed_in(console, "li.county")
    old = dict(client.cookies)
    assert client.get("/board").status == 200
    out = client.get("/logout")
    assert out.status == 200 and "您已退出登录" in out.text
    assert console.client().get("/board", cookies=old, headers={"Accept": "*/*"}).status == 401
    assert console.entries("logout").iloc[0].user_name == "li.county"


def test_signing_in_again_ends_the_browsers_previous_login(console):
    client = signed_in(console, "li.county")
    first = dict(client.cookies)
    assert client.login("qian.analyst", PASSWORDS["qian.analyst"]).status == 302
    assert console.client().get("/board", cookies=first, headers={"Accept": "*/*"}).status == 401
    assert client.get("/console").status == 200  # now the analyst


def test_a_signed_in_user_cannot_open_a_forbidden_pages_websocket(console):

    import websockets

    client = signed_in(console, "li.county")

    async def connect():
        async with websockets.connect(
                f"ws://127.0.0.1:{console.port}/console/ws", subprotocols=["bokeh", "x"],
                additional_headers={"Cookie": f"{COOKIE}={client.cookies[COOKIE]}"},
                origin=f"http://127.0.0.1:{console.port}"):
            return "open"

    with pytest.raises(websockets.InvalidStatus) as err:
        arun(connect())
    assert err.value.response.status_code == 403


def test_disabling_a_user_ends_their_login_without_restart(console):
    client = signed_in(console, "zhou.temp")
    assert client.get("/board").status == 200
    users_cli(console.users_file, "--by", "wang.admin", "disable", "zhou.temp")
    try:
        assert client.get("/board", headers={"Accept": "*/*"}).status == 401
        assert client.login("zhou.temp", PASSWORDS["zhou.temp"]).status == 401
        revoked = console.entries("session.revoked").iloc[0]
        assert (revoked.user_name, revoked.reason) == ("zhou.temp", "user_disabled")
        change = console.entries("user.disable").iloc[0]
        assert (change.user_name, change.target, change.address) == (
            "wang.admin", "zhou.temp", "cli")
    finally:
        users_cli(console.users_file, "enable", "zhou.temp")


def test_a_password_reset_ends_the_old_logins(console):
    client = signed_in(console, "zhou.temp")
    users_cli(console.users_file, "reset", "zhou.temp", stdin="the new password\n")
    try:
        assert client.get("/board", headers={"Accept": "*/*"}).status == 401
        assert console.client().login("zhou.temp", "the new password").status == 302
    finally:
        users_cli(console.users_file, "reset", "zhou.temp",
                  stdin=PASSWORDS["zhou.temp"] + "\n")


@pytest.mark.parametrize("next_url, landing", [
    ("//evil.example/x", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"),
    ("/board?lang=en", "/board?lang=en"), ("javascript:alert(1)", "/"),
])
def test_no_open_redirect_after_login(console, next_url, landing):
    r = console.client().login("li.county", PASSWORDS["li.county"], next_url=next_url)
    assert r.header("Location") == landing


def test_the_login_form_refuses_cross_site_and_replayed_posts(console):
    client = console.client()
    no_form = client.request("POST", "/login", form={"_csrf": "x", "username": "li.county",
                                                     "password": PASSWORDS["li.county"]})
    assert no_form.status == 403 and COOKIE not in no_form.cookies
    csrf = client.form_token()
    cross = client.request("POST", "/login", headers={"Origin": "http://evil.example"},
                           form={"_csrf": csrf, "username": "li.county",
                                 "password": PASSWORDS["li.county"]})
    assert cross.status == 403 and COOKIE not in cross.cookies
    assert list(console.entries("login.failure").reason[:2]) == ["form", "form"]


@pytest.mark.parametrize("name, password", [
    ("x" * 10_000, "p"), ("li.county", "p" * 100_000), ("<script>alert(1)</script>", "p"),
    ("li.county\x00", "p"), ("'; DROP TABLE audit_log; --", "p"), ("李四", "密码密码密码"),
])
def test_hostile_login_input_gets_a_page_not_a_traceback(console, name, password):
    r = console.client().login(name, password)
    assert r.status == 401
    assert "Traceback" not in r.text and "<script>alert" not in r.text
    assert console.audit.verify().ok


def test_login_pages_send_protective_headers(console):
    r = console.client().get("/login")
    csp = r.header("Content-Security-Policy")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.header("X-Frame-Options") == "DENY" and r.header("Cache-Control") == "no-store"
    token_page = console.client().get("/login/token")
    assert re.search(r"script-src 'nonce-[\w-]+'", token_page.header("Content-Security-Policy"))


# ---------------------------------------------------------------------- the wall
def test_wall_token_logs_in_to_the_kiosk_board_and_is_revoked(console):
    client = console.client()
    r = client.token_login(console.wall_token)
    assert r.status == 302 and r.header("Location") == "/board?kiosk=1"
    page = client.get("/board?kiosk=1")
    token = re.search(r'"token":\s*"([^"]+)"', page.text).group(1)
    session = next(s for s in console._server.get_sessions("/board") if s.token == token)
    assert "signed in: wall-hall wall 370000" in texts(session.document)
    assert client.get("/console").status == 403  # the wall only looks
    bad = console.client().token_login("not-the-token-" + "x" * 30)
    assert bad.status == 401 and "令牌无效" in bad.text
    users_cli(console.users_file, "token", "wall-hall", "--revoke")
    try:
        assert client.get("/board", headers={"Accept": "*/*"}).status == 401
        assert console.client().token_login(console.wall_token).status == 401
        kinds = console.entries("login.*")
        assert json.loads(kinds[kinds.action == "login.success"].iloc[0].details) == {
            "kind": "token"}
    finally:
        console.wall_token = users_cli(console.users_file, "token", "wall-hall").stdout.split(
            "#t=")[1].strip()


def test_the_audit_chain_holds_after_everything_above(console):
    signed_in(console, "li.county").get("/logout")
    entries = console.entries()  # waits for the audit writer
    result = console.audit.verify()
    assert result.ok and result.checked == len(entries), result


def test_a_decorated_handler_refuses_everything_when_no_gatekeeper_is_installed():
    """Fail closed: a handler marked @authenticated on a server without ConsoleAuth."""
    import asyncio
    import threading

    import tornado.httpserver
    import tornado.web

    from tests.conftest import free_port
    from tests.dashboards.auth_server import Client

    port, ready, holder = free_port(), threading.Event(), {}

    def run():
        asyncio.set_event_loop(asyncio.new_event_loop())
        app = tornado.web.Application([
            (r"/x", authenticated(roles={"admin"})(PlainHandler)),
            (r"/p", authenticated(public=True)(PublicPing))])
        server = tornado.httpserver.HTTPServer(app)
        server.listen(port, "127.0.0.1")
        holder["loop"] = asyncio.get_event_loop()
        ready.set()
        holder["loop"].run_forever()
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        client = Client(port)
        assert client.get("/x").status == 503
        assert client.get("/p").body == b"pong"
    finally:
        holder["loop"].call_soon_threadsafe(holder["loop"].stop)
        thread.join(10)
