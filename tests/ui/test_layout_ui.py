"""Pages use their screen: measured from the boxes Chromium lays out (``tests/ui/layout.py``).

- Officer pages (every tab) at 1920×1080 and 1366×768: no horizontal scrolling, the apps'
  navigation inside the window, no empty rectangle over a fifth (a quarter at 1366×768) of
  the window, maps as wide as the page allows with the province filling them.
- The wall at 1920×1080 and 3840×2160: the map takes most of the middle of the screen and
  the province fills it; the incident panels take room only while incidents are open (one
  panel per incident, up to three) and give it back to the map when they close.
"""
from __future__ import annotations

import shutil

import pytest

from tests.conftest import start_console, wait_until
from tests.ui.axe import audit, blocking, describe
from tests.ui.feeds import ScriptedFeed
from tests.ui.layout import blank, box, map_fit

pytestmark = [pytest.mark.ui, pytest.mark.slow]

IDLE_JS = ("() => !!(window.Bokeh && Bokeh.documents.length"
           " && Bokeh.documents.every(d => d.is_idle))")
SIZES = [(1920, 1080), (1366, 768)]
#: Largest empty rectangle allowed, as a share of the window, per window size.
MOST_BLANK = {(1920, 1080): 0.20, (1366, 768): 0.25}
#: The map on a page's first tab and its least width, as a share of the window (1920×1080,
#: 1366×768).
MAPS = {"warnings": ("monitoring-map", (0.6, 0.5)), "risk": ("risk-map", (0.55, 0.45))}
OFFICER_PAGES = ("warnings", "risk", "alarms", "inventory")


@pytest.fixture(scope="module")
def officer_console(tiny_db_template, tmp_path_factory):
    db = tmp_path_factory.mktemp("layout") / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    c = start_console(db)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def feed():
    f = ScriptedFeed().start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def wall_console(tiny_db_template, tmp_path_factory, feed):
    db = tmp_path_factory.mktemp("wall") / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    c = start_console(db, "--feed", feed.url)
    yield c
    c.stop()


def open_page(browser, url: str, size: tuple[int, int]):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(IDLE_JS, timeout=60_000)
    page.wait_for_timeout(1500)  # maps fit and tables fill after Bokeh is idle
    return context, page


def settle(page) -> None:
    page.wait_for_function(IDLE_JS, timeout=30_000)
    page.wait_for_timeout(1000)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("route", OFFICER_PAGES)
def test_officer_page_uses_its_screen(browser, officer_console, route, size):
    w, h = size
    context, page = open_page(browser, f"{officer_console.url}/{route}", size)
    problems, report = [], []
    try:
        nav = page.locator(".console-header a").all()
        for link in nav:
            b = link.bounding_box()
            if b is None or b["x"] < 0 or b["x"] + b["width"] > w + 1 or b["y"] > h:
                problems.append(f"/{route}: navigation link {link.inner_text()!r} is off screen")
        headers = page.locator(".bk-tab").all()
        for i, name in enumerate([t.inner_text() for t in headers] or [""]):
            if headers:
                headers[i].click()
                settle(page)
            where = f"/{route} {w}x{h} tab {name!r}"
            m = blank(page)
            report.append(f"{where}: largest blank {m['largest']:.3f} at {m['rect']}, "
                          f"empty {m['empty']:.3f}")
            if m["scroll_width"] > w:
                problems.append(f"{where}: scrolls sideways ({m['scroll_width']} px wide)")
            if m["largest"] > MOST_BLANK[size]:
                problems.append(f"{where}: an empty {m['rect']} is {m['largest']:.0%} of the "
                                f"window (at most {MOST_BLANK[size]:.0%})")
            if i == 0 and route in MAPS:
                name_, shares = MAPS[route]
                fit = map_fit(page, name_)
                assert fit is not None, f"{where}: no {name_}"
                least = shares[0] if size == SIZES[0] else shares[1]
                report.append(f"{where}: {name_} {fit['width']}x{fit['height']} px, "
                              f"province {fit['across']:.3f} across, {fit['down']:.3f} down")
                if fit["width"] < least * w:
                    problems.append(f"{where}: {name_} is {fit['width']} px wide "
                                    f"(at least {least:.0%} of {w})")
                if max(fit["across"], fit["down"]) < 0.9:
                    problems.append(f"{where}: the province spans {fit['across']:.0%} x "
                                    f"{fit['down']:.0%} of {name_}")
    finally:
        context.close()
    print("\n".join(report))  # noqa: T201 - the measurements, for the record
    assert not problems, "\n".join(problems)


def wall_map(page) -> tuple[dict, dict]:
    fit = wait_until(lambda: map_fit(page, "board-map"), timeout=20,
                     message="the wall's map was never laid out")
    return fit, box(page, ".board-map-figure")


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160)], ids=["1080p", "4K"])
def test_wall_map_fills_its_area(browser, wall_console, size):
    w, h = size
    context, page = open_page(browser, f"{wall_console.url}/board?kiosk=1", size)
    try:
        fit, figure = wall_map(page)
        print(f"wall {w}x{h}: map {figure}, province {fit['across']:.3f} across, "  # noqa: T201
              f"{fit['down']:.3f} down, margins {[round(v) for v in fit['margins']]} px")
        assert page.locator(".board-incident-0").first.is_hidden(), "an empty incident panel"
        # the middle of the wall is the map: most of the width and height of the screen
        assert figure["width"] >= 0.6 * w and figure["height"] >= 0.7 * h, figure
        # the province fills its area, no wide margins on either side
        assert min(fit["across"], fit["down"]) >= 0.9, fit
        assert max(fit["margins"]) <= 0.05 * max(fit["width"], fit["height"]), fit
        colours = page.evaluate("""() => {
          const m = Bokeh.documents[0].get_model_by_name('board-map');
          const r = m.renderers.find(r => r.glyph && r.glyph.type === 'Image');
          const img = r.data_source.data.image[0];  // one palette index a pixel
          const palette = r.glyph.color_mapper.palette;
          const seen = new Set();
          for (const i of (img.array || img)) {
            const c = palette[i];  // #rrggbbaa
            if (c && c.length === 9 && c.slice(7) !== '00') seen.add(c.slice(1, 7));
          }
          return [...seen];
        }""")
        assert colours, "no risk density drawn"
        # each colour drawn is one of the four wall colours (the palette's alpha aside)
        from sources.levels import WALL_COLORS
        wall = {c[1:7].lower() for c in WALL_COLORS.values()}
        assert set(colours) <= wall, f"risk density colours {set(colours) - wall} are not risk levels"
    finally:
        context.close()


def incident_panels(page) -> int:
    return sum(1 for i in range(3) if page.locator(f".board-incident-{i}").first.is_visible())


def test_wall_incident_panels_come_and_go(browser, wall_console, feed):
    context, page = open_page(browser, f"{wall_console.url}/board?kiosk=1", (1920, 1080))
    try:
        fit, idle = wall_map(page)
        assert incident_panels(page) == 0
        assert page.locator(".board-incidents").first.is_hidden()

        feed.incident("INC-A", "open", lon=117.0, lat=36.6)
        wait_until(lambda: incident_panels(page) == 1, timeout=30,
                   message="the open incident got no panel")
        settle(page)
        fit, busy = wall_map(page)
        print(f"map with no incident {idle}, with one {busy}")  # noqa: T201
        assert busy["height"] < idle["height"] - 0.15 * 1080, (idle, busy)
        assert max(fit["across"], fit["down"]) >= 0.95, fit  # still fitted to its new area
        panel = box(page, ".board-incident-0")
        assert panel["width"] > 0.9 * 1920, panel  # one incident: the row is its own
        found = blocking(audit(page))
        assert not found, describe(found, "/board?kiosk=1 with an incident")

        feed.incident("INC-B", "open", lon=118.0, lat=36.0, level="orange")
        wait_until(lambda: incident_panels(page) == 2, timeout=30,
                   message="a second incident got no second panel")

        feed.incident("INC-A", "closed", lon=117.0, lat=36.6)
        feed.incident("INC-B", "closed", lon=118.0, lat=36.0, level="orange")
        wait_until(lambda: incident_panels(page) == 0, timeout=30,
                   message="closed incidents kept their panels")
        wait_until(lambda: page.locator(".board-incidents").first.is_hidden(), timeout=10,
                   message="the empty incident row kept its room")
        settle(page)
        _fit, back = wall_map(page)
        assert abs(back["height"] - idle["height"]) < 4, (idle, back)
    finally:
        context.close()
