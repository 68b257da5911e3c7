"""Benchmark (not a test): a warning published in one tab -> shown in a second tab and on /board.

``python bench/warning_push.py [--warnings 10] [--speed 1] [--no-demo-feed] [--db PATH]``

A console on a tiny store (by default under its demo feed, so the wall is busy with live
data) and three Chromium pages (Playwright, Debian's): the officer's ``/warnings``, a second
``/warnings`` tab and a kiosk ``/board``. The officer publishes ``--warnings`` warnings
through the form, one every few seconds. Each page notes, with ``Date.now()`` (one clock for
all), when the new warning shows: in the second tab's active list and in the board's ticker.
The click itself is stamped in the page (``pointerdown``, capture phase).

Baseline, same run: the officer's own confirmation ("已发布预警 …" under the form) — the round
trip of the click to the server and back with no fan-out to other pages. Prints a table; the
last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.deep import WATCH_JS as PAGE_JS  # noqa: E402 - shadow-root search, watchers


def fill_draft(page, headline: str, county: str) -> None:
    page.locator(".wf-new button").click()
    page.locator(".wf-headline input").fill(headline)
    page.locator(".wf-headline input").press("Enter")
    choice = page.locator(".wf-counties input.choices__input--cloned")
    choice.click()
    choice.type(county)
    page.keyboard.press("Enter")
    page.locator(".wf-counties .choices__item--selectable").first.wait_for(timeout=10_000)
    page.keyboard.press("Escape")
    page.locator(".wf-headline input").click()
    page.wait_for_timeout(300)  # the last widget change reaches the server


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, start_console, wait_until

    work = Path(tempfile.mkdtemp(prefix="warning-push-"))
    db = work / "console.duckdb"
    if args.db:
        shutil.copy2(args.db, db)
    else:
        from data.generate import build

        build(db, scale="tiny", seed=7, progress=False)
    feed_args = ["--no-demo-feed"] if args.no_demo_feed else ["--speed", str(args.speed)]
    console = start_console(db, *feed_args)
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_ARGS)
            pages = {}
            for name, path, size in (("officer", "/warnings", (1600, 1000)),
                                     ("second", "/warnings", (1600, 1000)),
                                     ("board", "/board?kiosk=1", (1920, 1080))):
                pg = browser.new_context(
                    viewport={"width": size[0], "height": size[1]}).new_page()
                pg.goto(console.url + path)
                pg.add_script_tag(content=PAGE_JS)
                host = ".board-ticker" if name == "board" else ".active-warnings"
                wait_until(lambda pg=pg, host=host: pg.evaluate(f"!!window.__deep({host!r})"),
                           timeout=60, message=f"{name} never rendered")
                pages[name] = pg
            officer = pages["officer"]
            officer.locator(".bk-tab", has_text="预警发布").click()
            time.sleep(args.settle)
            counties = ["370102", "370103", "370104", "370105", "370112"]
            for i in range(args.warnings):
                headline = f"暴雨蓝色预警 bench-{i}-{time.time():.0f}"
                fill_draft(officer, headline, counties[i % len(counties)])
                pages["second"].evaluate(f"window.__watch('.active-warnings', {headline!r})")
                pages["board"].evaluate(f"window.__watch('.board-ticker', {headline!r})")
                officer.evaluate(f"window.__watchChange('.wf-message', {headline!r})")
                officer.evaluate("window.__click = null")
                officer.locator(".wf-publish button").click()
                wait_until(lambda h=headline: all(pages[n].evaluate(f"window.__seen[{h!r}]")
                                                  for n in ("officer", "second", "board")),
                           timeout=15, message=f"warning {i} never reached every page")
                click = officer.evaluate("window.__click")
                own = officer.evaluate(f"window.__seen[{headline!r}]")
                second = pages["second"].evaluate(f"window.__seen[{headline!r}]")
                board = pages["board"].evaluate(f"window.__seen[{headline!r}]")
                rows.append({"own_ms": own - click, "second_ms": second - click,
                             "board_ms": board - click, "load": os.getloadavg()[0]})
                print(f"  warning {i}: own {own - click:6.0f} ms   second tab "
                      f"{second - click:6.0f} ms   board {board - click:6.0f} ms   "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                time.sleep(args.gap)
            browser.close()
    finally:
        console.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def stats(key):
        values = sorted(r[key] for r in rows)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return {"p50": round(statistics.median(values)), "p95": round(p95),
                "max": round(values[-1])}

    own, second, board = stats("own_ms"), stats("second_ms"), stats("board_ms")
    return {
        "benchmark": "warning_push", "warnings": len(rows),
        "demo_feed_speed": None if args.no_demo_feed else args.speed,
        "own_confirmation_ms": own, "second_tab_ms": second, "board_ms": board,
        "second_vs_own_p50": round(second["p50"] / max(own["p50"], 1), 2),
        "board_vs_own_p50": round(board["p50"] / max(own["p50"], 1), 2),
        "load_avg_median": round(statistics.median(r["load"] for r in rows), 1),
        "cores": os.cpu_count(),
        "all_within_1s": all(max(r["second_ms"], r["board_ms"]) <= 1000 for r in rows),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warnings", type=int, default=10, help="warnings to publish and time")
    ap.add_argument("--speed", type=float, default=1.0, help="demo feed speed")
    ap.add_argument("--no-demo-feed", action="store_true", help="no live data (quiet wall)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before the first")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between warnings")
    ap.add_argument("--db", default=None, help="a store to copy (default: build a tiny one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    r = run(args)
    print()
    print(f"{'click ->':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for label, key in (("officer's own confirmation", "own_confirmation_ms"),
                       ("second tab's active list", "second_tab_ms"),
                       ("/board ticker", "board_ms")):
        s = r[key]
        print(f"{label:32} {s['p50']:>8} {s['p95']:>8} {s['max']:>8}")
    print(f"(load average median {r['load_avg_median']} on {r['cores']} cores; demo feed "
          f"{'off' if r['demo_feed_speed'] is None else 'at speed ' + str(r['demo_feed_speed'])})")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
