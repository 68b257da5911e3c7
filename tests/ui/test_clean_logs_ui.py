"""A normal start and every page load leave the server's log and the browser's console clean.

Every page (every route of ``dashboards.discover()`` and every notebook dashboard, the board
at the desk and on the wall with ``?kiosk=1``, in Chinese and in English) is opened in
Chromium; no console message of level warning or error and no page error may appear, and the
server's log may hold no WARNING or ERROR line. Warnings fixed so far: Panel's
``sizing_mode ... is being overridden`` (board rows), BokehJS's ``could not set initial
ranges`` (the empty hydrograph) and Choices.js' ``allowHTML`` deprecation (every
multi-choice; see ``views/choices.py``).
"""
from __future__ import annotations

import re

import duckdb
import pytest

from tests.conftest import wait_until

pytestmark = [pytest.mark.ui, pytest.mark.slow]

#: The console's log with each record's level (serve.py's own format has none), so that a
#: warning from any logger is visible in the file.
LOG_LEVELS = ("import logging\nlogging.basicConfig(level=logging.INFO, "
              "format='%(asctime)s %(levelname)s %(name)s %(message)s')")
#: A warning or error in the server's log: a logging record, param's own handler
#: (``WARNING:param.Row00123: ...``), a Python warning or a traceback.
LOG_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|\w+Warning: |Traceback")
#: Chromium's software GL driver reports its own performance notes in the page's console
#: ("GPU stall due to ReadPixels" when a WebGL canvas is read back); they come from the
#: browser's driver, not from the page.
GPU_NOTE = re.compile(r"^\[\.WebGL-0x[0-9a-f]+\]GL Driver Message ")
#: Every root BokehJS built for the page has finished rendering.
RENDERED = """() => !!window.Bokeh && Bokeh.documents.length > 0 && !!Bokeh.index
  && Bokeh.index.roots.length > 0 && Bokeh.index.roots.every((view) => view.has_finished())"""


def page_urls() -> list[str]:
    """Every page a user can open, in both languages; the board also as the wall shows it."""
    from dashboards import discover
    from dashboards.notebooks_served import notebook_paths, notebook_route

    routes = [cls.route for cls in discover()] + [notebook_route(p) for p in notebook_paths()]
    urls = []
    for lang in ("zh", "en"):
        for route in routes:
            urls.append(f"/{route}?lang={lang}")
            if route == "board":
                urls.append(f"/board?kiosk=1&lang={lang}")
    return urls


class ServerLog:
    """The console's log file, read from where the last read stopped."""

    def __init__(self, path):
        self.path, self.offset = path, 0

    def read(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        return text


def visit(browser, url: str, log: ServerLog) -> tuple[list[str], list[str]]:
    """Open ``url`` in a fresh 1920×1080 page: its console warnings, errors and page errors,
    and the warning or error lines the server logged from the request to the page rendered.

    Leaving the page is not checked: a browser that drops a page's websocket without a close
    frame while the page receives updates makes Bokeh log "Failed sending message as
    connection was closed", a message about the client, not about the start or the page.
    """
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    seen: list[str] = []
    page.on("console", lambda msg: seen.append(f"{msg.type}: {msg.text}")
            if msg.type in ("warning", "error") and not GPU_NOTE.match(msg.text) else None)
    page.on("pageerror", lambda exc: seen.append(f"page error: {exc}"))
    try:
        page.goto(url, wait_until="load", timeout=90_000)
        wait_until(lambda: page.evaluate(RENDERED), timeout=90, interval=0.25,
                   message=f"{url} never finished rendering")
        page.wait_for_load_state("networkidle")
        logged = [line for line in log.read().splitlines() if LOG_PROBLEM.search(line)]
        page.goto("about:blank")  # leave as a user does
        wait_until(lambda: "WebSocket connection closed" in log.read(), timeout=30,
                   message=f"the server never saw {url} close")
        return seen, logged
    finally:
        context.close()


def test_pages_load_with_no_warning_in_the_browser_or_the_server_log(serve, browser):
    console = serve(prelude=LOG_LEVELS)
    urls = page_urls()
    assert len(urls) >= 2 * 9, urls  # 8 pages, the notebook dashboard, the wall's board
    log = ServerLog(console.log)
    noisy, problems = {}, {}
    for url in urls:  # the first read also holds the whole start
        seen, logged = visit(browser, console.url + url, log)
        if seen:
            noisy[url] = seen
        if logged:
            problems[url] = logged
    assert " INFO " in console.log.read_text(encoding="utf-8", errors="replace"), \
        "the log lost its levels: the check would see nothing"
    report = [f"{where} {url}\n  " + "\n  ".join(found[:20])
              for where, found_by_url in (("browser console", noisy), ("server log", problems))
              for url, found in found_by_url.items()]
    assert not report, "\n".join(report)


HOSTILE = '<img src=x onerror="window.__pwned=1">危险化学品'


def test_multi_choice_labels_are_shown_as_text(serve, browser, tiny_db):
    """An option label holding markup is shown as its text; Choices.js never parses it."""
    con = duckdb.connect(str(tiny_db))
    con.execute("UPDATE industries SET name_zh = ? WHERE industry = 'hazchem'", [HOSTILE])
    con.close()
    console = serve(prelude=LOG_LEVELS)
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    seen: list[str] = []
    page.on("console", lambda msg: seen.append(f"{msg.type}: {msg.text}")
            if msg.type in ("warning", "error") and not GPU_NOTE.match(msg.text) else None)
    try:
        page.goto(f"{console.url}/risk", wait_until="load", timeout=90_000)
        wait_until(lambda: page.evaluate(RENDERED), timeout=90, message="/risk never rendered")
        assert page.evaluate("""() => Bokeh.require('models/widgets/multi_choice')
            .MultiChoiceView.prototype.__console_text_labels === true""")
        choice = page.locator(".choices__item--choice", has_text="危险化学品")
        wait_until(lambda: choice.count() == 1, timeout=20, message="the industry is not listed")
        assert choice.text_content().strip() == HOSTILE
        boxes = page.locator("div.choices")  # the industry filter: the box listing it
        box = boxes.nth(next(i for i in range(boxes.count())
                             if boxes.nth(i).locator(".choices__item--choice",
                                                     has_text="危险化学品").count()))
        box.locator("input.choices__input--cloned").click()  # opens the list
        choice.click()
        picked = box.locator(".choices__list--multiple .choices__item")
        wait_until(lambda: picked.count() == 1, timeout=20, message="the industry was not picked")
        assert HOSTILE in picked.first.text_content()
        assert page.evaluate("window.__pwned") is None
        assert page.locator(".choices img").count() == 0
        assert not seen, seen
        page.goto("about:blank")
    finally:
        context.close()
