"""Per role and jurisdiction, in a real browser on ``serve.py --users``: the pages each user
may open and the refusal page of the others; a county officer sees their county's alarms,
risk points and incidents only, a city officer the city's, the province all; another
county's enterprise or incident asked for by URL, and an analyst's acknowledgement, are
refused with a message and recorded in the audit log (read from the store afterwards)."""
from __future__ import annotations

import re

import pytest

from sources.command import CommandSource
from sources.hub import Hub
from sources.store.store import Store
from tests.conftest import start_console, wait_until
from tests.sources.access_fixtures import users_cli

pytestmark = [pytest.mark.ui, pytest.mark.slow]

PASSWORD = "scoped password 1"
DENIED = "不在您的辖区"  # access.denied.jurisdiction (zh)


def seed(db) -> dict:
    """Counties A and B (of different cities, both with installations), open alarms in
    each, an incident in each, and what the pages should show, read from the store."""
    store = Store(db)
    try:
        top = store.df(
            "SELECT s.county_code, c.city_code, count(*) AS n FROM sensors s JOIN counties c "
            "USING (county_code) WHERE s.enterprise_id IS NOT NULL AND s.installation_id IS NOT "
            "NULL GROUP BY ALL ORDER BY n DESC, 1")
        a = top.iloc[0]
        b = top[top.city_code != a.city_code].iloc[0]
        out = {"a": str(a.county_code), "city": str(a.city_code), "b": str(b.county_code)}
        alarm_id = 9000
        for key, n in (("a", 2), ("b", 1)):
            sensors = store.df(
                "SELECT sensor_id, installation_id, enterprise_id FROM sensors WHERE "
                "county_code = ? AND installation_id IS NOT NULL ORDER BY sensor_id LIMIT ?",
                [out[key], n])
            out[f"{key}_sensors"] = sensors.sensor_id.tolist()
            for s in sensors.itertuples():
                alarm_id += 1
                store.execute(
                    "INSERT INTO alarms (alarm_id, sensor_id, installation_id, enterprise_id, "
                    "county_code, kind, level, raised_at, trigger_value, peak_value, state) "
                    "VALUES (?, ?, ?, ?, ?, 'hi_hi', 'red', now() - INTERVAL 3 MINUTE, 9.0, "
                    "9.5, 'raised')",
                    [alarm_id, s.sensor_id, int(s.installation_id), int(s.enterprise_id),
                     out[key]])
        out["open_alarms"] = {k: int(store.scalar(
            "SELECT count(*) FROM alarms WHERE state <> 'closed' AND county_code = ?",
            [out[k]])) for k in ("a", "b")}
        cmd = CommandSource(store=store, hub=Hub())
        for key in ("a", "b"):
            ent = store.df("SELECT enterprise_id, name FROM enterprises WHERE county_code = ? "
                           "AND enterprise_id IN (SELECT enterprise_id FROM risk_points) "
                           "ORDER BY enterprise_id LIMIT 1", [out[key]]).iloc[0]
            out[f"{key}_enterprise"] = (int(ent.enterprise_id), str(ent["name"]))
            inc = cmd.open_incident(subtype="fire", user="seed", title=f"辖区测试火灾{key.upper()}",
                                    enterprise_id=int(ent.enterprise_id))
            out[f"{key}_incident"] = inc["incident_id"]
        out["a_points"] = int(store.scalar(
            "SELECT count(*) FROM risk_points p JOIN enterprises e USING (enterprise_id) "
            "WHERE e.county_code = ?", [out["a"]]))
    finally:
        store.close()
    return out


@pytest.fixture(scope="module")
def console(tiny_db_template, tmp_path_factory):
    import shutil

    tmp = tmp_path_factory.mktemp("access-ui")
    db = tmp / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    facts = seed(db)
    users = tmp / "users.json"
    for name, role, code in (("a.county", "officer", facts["a"]),
                             ("b.county", "officer", facts["b"]),
                             ("c.city", "officer", facts["city"]),
                             ("p.province", "officer", "370000"),
                             ("q.analyst", "analyst", "370000")):
        users_cli(users, "add", name, "--role", role, "--jurisdiction", code,
                  stdin=PASSWORD + "\n")
    users_cli(users, "add", "wall-1", "--role", "wall", "--jurisdiction", "370000",
              "--no-password")
    wall_path = users_cli(users, "token", "wall-1").stdout.strip()
    secret = tmp / "cookie.secret"
    secret.write_text("k" * 48)
    secret.chmod(0o600)
    c = start_console(db, "--no-demo-feed", "--users", str(users),
                      "--cookie-secret-file", str(secret))
    c.facts, c.wall_url = facts, c.url + wall_path
    yield c
    c.stop()


@pytest.fixture(scope="module")
def pages(browser, console):
    """One signed-in browser context (and page) per user, made on first use."""
    made = {}

    def page_of(name: str):
        if name not in made:
            context = browser.new_context(viewport={"width": 1500, "height": 950})
            page = context.new_page()
            page.goto(f"{console.url}/login")
            page.get_by_label("用户名").fill(name)
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_url(f"{console.url}/")
            made[name] = page
        return made[name]

    yield page_of
    for page in made.values():
        page.context.close()


def refused(page, url: str) -> None:
    response = page.goto(url)
    assert response.status == 403, (url, response.status)
    assert page.get_by_role("heading", name="无权访问").is_visible()


def text_of(page, css: str) -> str:
    """Text of the first element matching ``css``, its shadow root included."""
    loc = page.locator(css)
    if loc.count() == 0:
        return ""
    return loc.first.evaluate(
        "e => (e.shadowRoot ? e.shadowRoot.textContent : '') + ' ' + e.textContent")


def alarm_rows(page) -> list[str]:
    page.locator(".alarm-queue-table .tabulator-row").first.wait_for(timeout=60_000)
    return page.locator(".alarm-queue-table .tabulator-row").all_inner_texts()


def test_county_officer_sees_the_countys_alarms_risk_and_incidents(console, pages):
    f, base = console.facts, console.url
    page = pages("a.county")
    refused(page, f"{base}/console")  # the SQL console is the analysts'
    page.goto(f"{base}/alarms")
    rows = alarm_rows(page)
    assert len(rows) == f["open_alarms"]["a"]
    assert all(any(s in r for r in rows) for s in f["a_sensors"])
    assert not any(s in r for r in rows for s in f["b_sensors"])
    # the risk map: B's enterprise asked for by URL is refused; the legend counts A's points
    b_id, b_name = f["b_enterprise"]
    page.goto(f"{base}/risk?enterprise={b_id}")
    wait_until(lambda: DENIED in text_of(page, ".enterprise-card"), timeout=60,
               message="the card did not refuse another county's enterprise")
    assert b_name not in text_of(page, ".enterprise-card")
    wait_until(lambda: re.search(r"风险点\s*([\d,]+)", text_of(page, ".risk-in-view")),
               timeout=30)
    shown = re.search(r"风险点\s*([\d,]+)", text_of(page, ".risk-in-view")).group(1)
    assert int(shown.replace(",", "")) == f["a_points"] > 0
    box = page.get_by_placeholder(re.compile("企业")).first
    box.fill(b_name)
    box.press("Enter")
    wait_until(lambda: "未找到" in text_of(page, ".risk-search-msg"), timeout=20,
               message="the search found another county's enterprise")
    # the command desk: A's incident listed, B's refused when opened by its URL
    page.goto(f"{base}/command?incident={f['b_incident']}")
    page.wait_for_selector(".cmd-tabs", timeout=60_000)
    wait_until(lambda: DENIED in text_of(page, ".cmd-desk-refusal"), timeout=30)
    wait_until(lambda: "辖区测试火灾A" in text_of(page, ".cmd-list"), timeout=30)
    assert "辖区测试火灾B" not in text_of(page, ".cmd-list")
    assert "辖区测试火灾B" not in text_of(page, ".cmd-incident-card")


def test_other_county_city_and_province_see_their_own(console, pages):
    f, base = console.facts, console.url
    b = pages("b.county")
    b.goto(f"{base}/alarms")
    rows = alarm_rows(b)
    assert len(rows) == f["open_alarms"]["b"]
    assert not any(s in r for r in rows for s in f["a_sensors"])
    city = pages("c.city")
    city.goto(f"{base}/alarms")
    rows = alarm_rows(city)
    assert all(any(s in r for r in rows) for s in f["a_sensors"])
    assert not any(s in r for r in rows for s in f["b_sensors"])
    province = pages("p.province")
    province.goto(f"{base}/alarms")
    wait_until(lambda: len(province.locator(".alarm-queue-table .tabulator-row").all())
               >= sum(f["open_alarms"].values()), timeout=60)
    rows = province.locator(".alarm-queue-table .tabulator-row").all_inner_texts()
    assert all(any(s in r for r in rows) for s in f["a_sensors"] + f["b_sensors"])
    province.goto(f"{base}/command")
    province.wait_for_selector(".cmd-tabs", timeout=60_000)
    wait_until(lambda: "辖区测试火灾A" in text_of(province, ".cmd-list")
               and "辖区测试火灾B" in text_of(province, ".cmd-list"), timeout=30)


def test_analyst_and_wall_pages_and_a_refused_acknowledgement(console, pages, browser):
    base = console.url
    analyst = pages("q.analyst")
    refused(analyst, f"{base}/command")
    analyst.goto(f"{base}/alarms")
    alarm_rows(analyst)
    analyst.locator(".alarm-queue-table .tabulator-row").first.click()
    analyst.get_by_role("button", name="确认", exact=True).click()
    analyst.locator(".alarm-msg.err", has_text="角色").wait_for(timeout=15_000)
    # the wall signs in by its token URL and may not open the drills page
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    wall = context.new_page()
    try:
        wall.goto(console.wall_url)
        wall.wait_for_url("**/board?kiosk=1", timeout=30_000)
        refused(wall, f"{base}/drills")
    finally:
        context.close()


def test_every_refusal_is_in_the_audit_log(console):
    f = console.facts
    assert console.stop() in (0, -15)
    store = Store(console.db, read_only=True)
    try:
        log = store.df("SELECT user_name, action, outcome, target, target_jurisdiction "
                       "FROM audit_log WHERE outcome = 'denied'")
        still_open = {k: int(store.scalar(
            "SELECT count(*) FROM alarms WHERE state <> 'closed' AND county_code = ?", [f[k]]))
            for k in ("a", "b")}
    finally:
        store.close()
    got = {(r.user_name, r.action, r.target) for r in log.itertuples()}
    assert ("a.county", "enterprise.view", f"enterprise:{f['b_enterprise'][0]}") in got
    assert ("a.county", "incident.view", f"incident:{f['b_incident']}") in got
    assert ("a.county", "route.denied", "/console") in got
    assert ("q.analyst", "route.denied", "/command") in got
    assert ("wall-1", "route.denied", "/drills") in got
    assert any(u == "q.analyst" and a == "alarm.acknowledge" for u, a, _ in got)
    jur = log[(log.action == "incident.view")].target_jurisdiction.tolist()
    assert jur == [f["b"]]
    assert still_open == f["open_alarms"]  # nothing was acknowledged by a refused user
