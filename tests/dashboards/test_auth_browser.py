"""The login pages in a real browser: offline (every request outside the server is aborted
and recorded), accessible (axe-core, labels, lang), and the wall's token URL end to end."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import wait_until
from tests.dashboards.auth_server import AuthConsole
from tests.sources.access_fixtures import PASSWORDS, make_users, users_cli

pytestmark = [pytest.mark.ui, pytest.mark.slow]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth-browser")
    users = tmp / "users.json"
    c = AuthConsole(tmp, users_file=_users(users))
    c.wall_url = c.url + _wall_path
    yield c
    c.stop()


_wall_path = ""


def _users(path: Path) -> Path:
    global _wall_path
    _wall_path = make_users(path)
    return path


@pytest.fixture
def offline_page(browser, console):
    """A page whose requests outside the console are aborted and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    host = urlparse(console.url).netloc
    outside: list[str] = []
    inside: list[str] = []

    def route(r):
        if urlparse(r.request.url).netloc == host:
            inside.append(r.request.url)
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("websocket", lambda ws: (inside if urlparse(ws.url).netloc == host
                                     else outside).append(ws.url))
    page.outside, page.inside = outside, inside
    yield page
    context.close()


def axe_violations(page) -> list[dict]:
    """axe-core (bundled by axe-playwright-python) on the current page: WCAG 2 A/AA."""
    axe = pytest.importorskip("axe_playwright_python")
    page.evaluate((Path(axe.__file__).parent / "axe.min.js").read_text(encoding="utf-8"))
    result = page.evaluate("axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})")
    return [{"id": v["id"], "nodes": [n["html"] for n in v["nodes"]]}
            for v in result["violations"]]


def test_login_page_is_offline_accessible_and_signs_in(offline_page, console):
    page = offline_page
    page.goto(console.url + "/board")
    assert urlparse(page.url).path == "/login"  # sent to the login page first
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.get_by_label("用户名").is_visible() and page.get_by_label("密码").is_visible()
    # one request (the redirect to /login is followed within it); the login page loads
    # nothing at all: no logo, icon, font, script or style sheet, from anywhere
    assert page.outside == [] and page.inside == [console.url + "/board"], page.inside
    assert axe_violations(page) == []
    page.goto(console.url + "/login?lang=en&next=%2Fboard")
    assert page.evaluate("document.documentElement.lang") == "en"
    page.get_by_label("User name").fill("li.county")
    page.get_by_label("Password").fill("a wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong user name or password"
    assert axe_violations(page) == []
    page.get_by_label("Password").fill(PASSWORDS["li.county"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/board")
    page.get_by_text("signed in: li.county officer 371302").wait_for(timeout=30_000)
    assert page.outside == [], page.outside  # nothing loaded from outside, the board included


def test_the_session_cookie_is_not_visible_to_page_scripts(offline_page, console):
    page = offline_page
    page.goto(console.url + "/login")
    page.get_by_label("用户名").fill("qian.analyst")
    page.get_by_label("密码").fill(PASSWORDS["qian.analyst"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(console.url + "/")
    assert "console_session" not in page.evaluate("document.cookie")
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.goto(console.url + "/console")
    page.get_by_text("signed in: qian.analyst analyst 370000").wait_for(timeout=30_000)
    page.goto(console.url + "/admin")
    assert page.get_by_role("heading", name="无权访问").is_visible()


def test_wall_token_url_lands_on_the_kiosk_board_and_revoking_it_ends_the_page(
        offline_page, console):
    page = offline_page
    closed = []
    page.on("websocket", lambda ws: ws.on("close", lambda _: closed.append(ws.url)))
    page.goto(console.wall_url)
    page.wait_for_url("**/board?kiosk=1")
    page.get_by_text("signed in: wall-hall wall 370000").wait_for(timeout=30_000)
    token = console.wall_url.split("#t=", 1)[1]
    assert token not in page.url and not any(token in u for u in page.inside)
    assert page.evaluate("history.length") <= 3 and token not in page.evaluate(
        "JSON.stringify(history.state)")
    assert page.outside == []
    users_cli(console.users_file, "token", "wall-hall", "--revoke")
    # sync Playwright delivers events only inside its own calls: wait with the page's timer
    wait_until(lambda: page.wait_for_timeout(100) or any("/board/ws" in u for u in closed),
               timeout=20, message="the revoked wall's page stayed connected")
    page.reload()
    assert urlparse(page.url).path == "/login"
    entries = console.entries()
    revoked = entries[entries.action == "session.revoked"].iloc[0]
    assert (revoked.user_name, revoked.reason) == ("wall-hall", "credential_changed")
    success = entries[(entries.action == "login.success") & (entries.user_name == "wall-hall")]
    assert json.loads(success.iloc[0].details) == {"kind": "token"}
