"""Every page against axe-core (WCAG 2.0/2.1 A and AA) in a real browser, in both languages.

Each page served by ``serve.py`` (``dashboards.discover()`` and the notebook dashboards; the
board at the desk and on the wall, ``?kiosk=1``) is opened at 1920×1080, every tab of a
tabbed page is opened in turn, and axe must find no critical or serious violation, one
``main`` landmark and one level-one heading. The page declares its language and a title in
it. The wall board is audited on a 4K screen too.
"""
from __future__ import annotations

import shutil
import time

import duckdb
import pytest

from tests.conftest import start_console, wait_until
from tests.ui.axe import audit, blocking, deep, describe
from tests.ui.feeds import ScriptedFeed

pytestmark = [pytest.mark.ui, pytest.mark.slow]

HTML_LANG = {"zh": "zh-CN", "en": "en"}
IDLE_JS = ("() => !!(window.Bokeh && Bokeh.documents.length"
           " && Bokeh.documents.every(d => d.is_idle))")


def pages() -> list[tuple[str, str, str]]:
    """(route, query, title key or notebook title) of every page the console serves."""
    import dashboards
    from dashboards.notebooks_served import notebook_paths, notebook_route

    out = []
    for cls in dashboards.discover():
        out.append((cls.route, "", cls.title_key))
        if cls.route == "board":
            out.append((cls.route, "kiosk=1", cls.title_key))
    out += [(notebook_route(p), "", "") for p in notebook_paths()]
    return out


PAGES = pages()


@pytest.fixture(scope="module")
def console(tiny_db_template, tmp_path_factory):
    """One console with the demo feed (alarms, incidents, warnings arrive as they would)."""
    db = tmp_path_factory.mktemp("a11y") / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    c = start_console(db)
    yield c
    c.stop()


def open_page(browser, url: str, size: tuple[int, int]):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.goto(url)
    wait_until(lambda: page.evaluate(IDLE_JS), timeout=60, message=f"{url} never rendered")
    return context, page


def settle(page) -> None:
    """Wait until Bokeh has rendered everything the last action asked for."""
    page.wait_for_function(IDLE_JS, timeout=30_000)
    page.wait_for_timeout(400)  # Tabulator and Choices lay out after Bokeh is idle


def tabs(page) -> list:
    """The headers of the page's tab strips, in document order (an outer strip's headers
    before the strips nested in its tabs)."""
    return page.locator(".bk-tab").all()


def reveal(page, headers: list, i: int) -> bool:
    """Make header ``i`` visible: a nested strip shows only under its outer tab, so click
    the earlier (outer) headers until it is. False if none does."""
    for h in headers[:i]:
        if headers[i].is_visible():
            break
        if h.is_visible():
            h.click()
            settle(page)
    return headers[i].is_visible()


def structure(page, where: str, *, kiosk: bool) -> list[str]:
    """Problems with the page's landmarks and headings (empty: fine)."""
    out = []
    mains = deep(page, "main, [role=main]")
    h1 = deep(page, "h1, [role=heading][aria-level='1']")
    if len(mains) != 1:
        out.append(f"{where}: {len(mains)} main landmarks")
    if len(h1) != 1:
        out.append(f"{where}: {len(h1)} level-one headings: {[h['text'] for h in h1]}")
    if not kiosk:
        if len(deep(page, "nav, [role=navigation]")) < 1:
            out.append(f"{where}: no navigation landmark")
        if len(deep(page, "header, [role=banner]")) < 1:
            out.append(f"{where}: no banner landmark")
    return out


def audit_page(browser, console, route: str, query: str, lang: str,
               size: tuple[int, int], expect: str | None = None,
               every_tab: bool = True) -> tuple[list[str], dict]:
    """Open a page, audit it and each of its tabs; (problems, violations by rule).

    ``expect``: a selector that must be shown first (the events the audit is about).
    ``every_tab=False``: the tab the page opens on only."""
    sep = "&" if query else ""
    url = f"{console.url}/{route}?{query}{sep}lang={lang}"
    context, page = open_page(browser, url, size)
    problems: list[str] = []
    counts: dict[str, int] = {}
    try:
        if expect:
            wait_until(lambda: deep(page, expect), timeout=30, message=f"{url}: no {expect}")
        settle(page)
        headers = tabs(page) if every_tab else []
        names = [h.inner_text() for h in headers] or [""]
        for i, name in enumerate(names):
            where = f"/{route}?{query}{sep}lang={lang} {size[0]}x{size[1]}" + \
                (f" tab {name!r}" if name else "")
            if headers:
                if not reveal(page, headers, i):
                    problems.append(f"{where}: no tab shows this tab's header")
                    continue
                headers[i].click()
                settle(page)
            found = audit(page)
            for v in found:
                counts[f"{v['impact']}:{v['id']}"] = counts.get(
                    f"{v['impact']}:{v['id']}", 0) + len(v["nodes"])
            bad = blocking(found)
            if bad:
                problems.append(describe(bad, where))
            problems += structure(page, where, kiosk="kiosk=1" in query)
        declared = page.evaluate("() => [document.documentElement.lang, document.title]")
        if declared[0] != HTML_LANG[lang]:
            problems.append(f"{url}: <html lang={declared[0]!r}>, expected {HTML_LANG[lang]!r}")
        problems += [f"{url}: {p}" for p in title_problems(route, declared[1], lang)]
    finally:
        context.close()
    return problems, counts


def title_problems(route: str, title: str, lang: str) -> list[str]:
    from views.i18n import t

    key = next((k for r, _q, k in PAGES if r == route), "")
    if key:
        want = t(key, lang)
        return [] if want in title else [f"<title> {title!r} does not name {want!r}"]
    other = t("console.title", "zh" if lang == "en" else "en")
    return [f"<title> {title!r} is in the other language"] if other in title else []


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("route,query,_key", PAGES,
                         ids=[f"{r or 'index'}{'-kiosk' if q else ''}" for r, q, _k in PAGES])
def test_page_passes_axe(browser, console, route, query, _key, lang):
    """Every tab in Chinese (the console's language); in English the page as it opens (the
    same markup in other words: names, lang and title are what changes)."""
    problems, counts = audit_page(browser, console, route, query, lang, (1920, 1080),
                                  every_tab=lang == "zh")
    print(f"axe /{route}?{query} {lang}: {counts}")  # noqa: T201 - the report reads it
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("query", ["kiosk=1", ""])
def test_wall_board_passes_axe_in_4k(browser, console, query):
    problems, counts = audit_page(browser, console, "board", query, "zh", (3840, 2160))
    print(f"axe /board?{query} 4K: {counts}")  # noqa: T201
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------- pages full of events
@pytest.fixture(scope="module")
def busy(tiny_db_template, tmp_path_factory):
    """A console fed open incidents, an orange warning, red and orange alarms, a quake and
    a hotspot: the badges, cards and lists that only show with events are audited too."""
    db = tmp_path_factory.mktemp("a11y-busy") / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    con = duckdb.connect(str(db), read_only=True)
    sensors = con.sql("SELECT sensor_id, hi, hi_hi FROM sensors WHERE hi_hi IS NOT NULL "
                      "ORDER BY sensor_id LIMIT 4").fetchall()
    counties = [r[0] for r in con.sql("SELECT county_code FROM counties ORDER BY 1 LIMIT 3")
                .fetchall()]
    enterprise = con.sql("SELECT enterprise_id FROM enterprises WHERE risk_level = 'orange' "
                         "ORDER BY 1 LIMIT 1").fetchall()[0][0]
    con.close()
    feed = ScriptedFeed().start()
    console = start_console(db, "--feed", feed.url)
    now = int(time.time() * 1000)
    feed.incident("INC-1", "open", lon=117.0, lat=36.6, level="red")
    feed.incident("INC-2", "open", lon=118.3, lat=35.9, level="orange")
    feed.send(type="warning", id="W-A11Y-1", msg_type="Alert", event="rainstorm",
              level="orange", headline="暴雨橙色预警 <测试>", area=counties,
              effective=now - 60_000, expires=now + 6 * 3_600_000)
    for i, (sensor, hi, hi_hi) in enumerate(sensors):
        value = hi_hi * 1.2 if i < 2 else (hi + hi_hi) / 2
        for _ in range(3):
            feed.send(type="reading", sensor_id=sensor, value=value)
    feed.send(type="quake", id="Q-1", lon=118.5, lat=36.2, depth_km=10, magnitude=3.4)
    feed.send(type="hotspot", id="H-1", lon=117.6, lat=36.1, confidence=85, satellite="FY-3D")
    wait_until(lambda: console.health()["feeds"][0]["received"] >= 17, timeout=60,
               message="the scripted feed was not ingested")
    console.enterprise = enterprise
    yield console
    console.stop()
    feed.stop()


# (route, query, what must show before the audit)
BUSY = [("board", "kiosk=1", ".inc .head"),
        ("board", "", ".ticker li[data-kind=warning]"),
        ("warnings", "", "[data-warning-id=W-A11Y-1]"),
        ("alarms", "", ".lvl-red"),
        ("risk", "enterprise={enterprise}", "[data-enterprise]")]


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("route,query,expect", BUSY,
                         ids=[f"{r}{'-' + q[:5] if q else ''}" for r, q, _e in BUSY])
def test_busy_page_passes_axe(browser, busy, route, query, expect, lang):
    problems, counts = audit_page(browser, busy, route, query.format(enterprise=busy.enterprise),
                                  lang, (1920, 1080), expect=expect)
    print(f"axe busy /{route}?{query} {lang}: {counts}")  # noqa: T201
    assert not problems, "\n".join(problems)


def test_wall_rotation_names_its_frame(browser, console):
    """The playlist shows the other pages in a frame: it says which page it shows."""
    context, page = open_page(browser, f"{console.url}/board?kiosk=1&rotate=5&lang=en",
                              (1920, 1080))
    try:
        wait_until(lambda: "warnings" in page.evaluate(
            "() => document.body.dataset.rotationPage || ''"), timeout=30,
            message="the rotation never moved on")
        frame = page.locator("iframe[data-board=rotation]")
        assert frame.get_attribute("title") == "Natural-disaster monitoring and warning"
        found = blocking(audit(page))
        assert not found, describe(found, "/board?kiosk=1&rotate=5")
    finally:
        context.close()
