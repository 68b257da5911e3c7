"""Benchmark (not a test): incident command's decision support at demo scale, and an officer's
dispatch reaching a second officer's page.

``python bench/command.py [--db PATH] [--incidents 12] [--runs 5] [--browser] [--actions 20]``

**Decision support** (server side): a copy of a demo store (``--db``; default: built with
``python -m data.generate --scale demo --seed 7`` into ``/tmp/command-bench/``; 500 teams,
760 warehouses with 107,997 stock rows, 2,000 shelters, 600 experts, 4,210 installations,
85,000 enterprises). ``--incidents`` incidents are opened at enterprises of the province
(hazchem leaks, fires, explosions, floods, landslides in turn) and ``CommandSource.support`` —
nearest 10 teams of the right specialties, the warehouses covering the needed materials,
shelters with free capacity, matching experts, installations and enterprises in the affected
area — runs ``--runs`` times on each; medians per part. The first call (registries read into
memory) is reported apart. Baseline, same run: ``SELECT count(*) FROM rescue_teams``.

**Action → another page** (``--browser``): a console (``serve.py``) on a tiny store and two
Chromium pages (Debian's, through Playwright): the officer's decision-support tab and a
second officer's task board of the same incident. The officer sends a team ``--actions``
times (the second officer cancels it between, which frees it); each page stamps with
``Date.now()`` (one clock) when the task shows. Baseline, same run: the officer's own
confirmation under the form. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.deep import WATCH_JS as PAGE_JS  # noqa: E402 - shadow-root search, watchers

DEMO = Path("/tmp/command-bench/demo.duckdb")
KINDS = ("hazchem_leak", "fire", "explosion", "flood", "landslide")


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# ---------------------------------------------------------------------- decision support
def decision_support(args) -> dict:
    from sources.command import CommandSource
    from sources.command.catalog import SUBTYPES
    from sources.store.store import Store

    src_db = Path(args.db) if args.db else DEMO
    if not src_db.exists():
        src_db.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "data.generate", "--scale", "demo", "--seed", "7",
                        "--db", str(src_db), "--no-progress"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="command-bench-"))
    db = work / "bench.duckdb"
    shutil.copy2(src_db, db)
    store = Store(db)
    try:
        src = CommandSource(store=store)
        ents = store.df("SELECT enterprise_id FROM enterprises USING SAMPLE 200 ROWS "
                        "(reservoir, 7) ORDER BY enterprise_id").enterprise_id.tolist()
        incidents = [src.open_incident(subtype=KINDS[i % len(KINDS)], user="bench",
                                       enterprise_id=int(e))["incident_id"]
                     for i, e in enumerate(ents[:args.incidents])]
        t = time.perf_counter()
        first = src.support(incidents[0])
        cold = time.perf_counter() - t
        parts: dict[str, list[float]] = {k: [] for k in (
            "total", "teams", "warehouses", "shelters", "experts", "area")}
        baseline = []
        sizes = []
        for _ in range(args.runs):
            for iid in incidents:
                t = time.perf_counter()
                answer = src.support(iid)
                parts["total"].append(time.perf_counter() - t)
                sizes.append({k: len(answer[k]) for k in ("teams", "warehouses", "shelters",
                                                            "experts", "installations")})
                inc = src.version(iid)
                st = SUBTYPES[inc["subtype"]]
                x, y = inc["lon"], inc["lat"]
                for name, fn, fargs in (
                        ("teams", src.nearest_teams, (x, y, st)),
                        ("warehouses", src.covering_warehouses, (x, y, st)),
                        ("shelters", src.free_shelters, (x, y)),
                        ("experts", src.matching_experts, (x, y, st, inc["enterprise_id"])),
                        ("area", src.affected_area, (x, y, st))):
                    t = time.perf_counter()
                    fn(*fargs)
                    parts[name].append(time.perf_counter() - t)
                t = time.perf_counter()
                store.scalar("SELECT count(*) FROM rescue_teams")
                baseline.append(time.perf_counter() - t)
        counts = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in (
            "rescue_teams", "warehouses", "stock", "shelters", "experts", "installations",
            "enterprises")}
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: ms(statistics.median(v)) for k, v in parts.items()}
    base = ms(statistics.median(baseline))
    return {"registries": counts, "incidents": len(incidents), "calls": len(parts["total"]),
            "cold_first_call_ms": ms(cold), "median_ms": med,
            "p95_total_ms": ms(p95(parts["total"])), "baseline_count_ms": base,
            "total_vs_baseline": round(med["total"] / max(base, 1e-6), 1),
            "rows_returned_median": {k: statistics.median(s[k] for s in sizes)
                                     for k in sizes[0]},
            "first_answer_area": {k: first["area"][k] for k in ("radius_km", "population",
                                                                 "enterprises",
                                                                 "installations")}}


# ---------------------------------------------------------------------- browser

def browser_push(args) -> dict:
    from playwright.sync_api import sync_playwright

    from data.generate import build
    from sources.command import CommandSource
    from sources.store.store import Store
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, start_console, wait_until

    work = Path(tempfile.mkdtemp(prefix="command-push-"))
    db = work / "console.duckdb"
    build(db, scale="tiny", seed=7, progress=False)
    store = Store(db)
    ent = store.scalar("SELECT min(enterprise_id) FROM enterprises WHERE industry = 'hazchem'")
    iid = CommandSource(store=store).open_incident(subtype="hazchem_leak", user="bench",
                                                   enterprise_id=int(ent))["incident_id"]
    store.close()
    console = start_console(db, "--no-demo-feed")
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_ARGS)
            pages = {}
            for name, tab in (("officer", "辅助决策与调度"), ("second", "任务看板")):
                pg = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
                pg.goto(f"{console.url}/command?incident={iid}")
                pg.wait_for_selector(".cmd-tabs", timeout=90_000)
                pg.add_script_tag(content=PAGE_JS)
                pg.locator(".cmd-tabs .bk-tab", has_text=tab).first.click()
                pages[name] = pg
            officer, second = pages["officer"], pages["second"]
            wait_until(lambda: officer.locator(".cmd-dispatch-team option").count() > 0,
                       timeout=60, message="no team offered")
            wait_until(lambda: second.evaluate("!!window.__deep('.cmd-task-board')"),
                       timeout=60, message="no task board")
            time.sleep(args.settle)
            for i in range(args.actions):
                # a different team each time, so the officer's confirmation text changes
                teams = officer.locator(".cmd-dispatch-team option")
                officer.locator(".cmd-dispatch-team select").select_option(
                    index=i % min(3, teams.count()))
                time.sleep(0.3)
                second.evaluate("window.__watch('.cmd-task-board', '已下达 (1)', 'task')")
                officer.evaluate("window.__watchChange('.cmd-dispatch-notice', 'own')")
                officer.evaluate("window.__click = null")
                officer.locator(".cmd-assign-team button").click()
                wait_until(lambda: second.evaluate("window.__seen.task")
                           and officer.evaluate("window.__seen.own"), timeout=15,
                           message=f"dispatch {i} never reached the second page")
                click = officer.evaluate("window.__click")
                own = officer.evaluate("window.__seen.own") - click
                seen = second.evaluate("window.__seen.task") - click
                rows.append({"own_ms": own, "second_ms": seen, "load": os.getloadavg()[0]})
                print(f"  dispatch {i}: own {own:5.0f} ms   second page {seen:5.0f} ms   "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                # the second officer cancels it (the team is free again) before the next one
                second.evaluate("window.__watch('.cmd-task-board', '已下达 (0)', 'gone')")
                second.locator(".cmd-move-cancelled button").click()
                wait_until(lambda: second.evaluate("window.__seen.gone"), timeout=15)
                officer.evaluate("window.__seen = {}")
                second.evaluate("window.__seen = {}")
                wait_until(lambda: officer.locator(".cmd-dispatch-team option").count() > 0,
                           timeout=15)
                time.sleep(args.gap)
            browser.close()
    finally:
        console.stop()
        shutil.rmtree(work, ignore_errors=True)

    def stats(key):
        values = [r[key] for r in rows]
        return {"p50": round(statistics.median(values)), "p95": round(p95(values)),
                "max": round(max(values))}

    return {"actions": len(rows), "own_confirmation_ms": stats("own_ms"),
            "second_page_ms": stats("second_ms"),
            "load_avg_median": round(statistics.median(r["load"] for r in rows), 1),
            "all_within_1s": all(r["second_ms"] <= 1000 for r in rows)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="demo store to copy (default: build one)")
    ap.add_argument("--incidents", type=int, default=12, help="incidents to answer for")
    ap.add_argument("--runs", type=int, default=5, help="rounds over the incidents")
    ap.add_argument("--browser", action="store_true", help="also time action -> second page")
    ap.add_argument("--actions", type=int, default=20, help="dispatches timed in the browser")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before the first")
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between dispatches")
    args = ap.parse_args(argv)
    out = {"benchmark": "command", "cores": os.cpu_count(),
           "decision_support": decision_support(args)}
    d = out["decision_support"]
    print(f"decision support on {d['incidents']} incidents × {args.runs} runs "
          f"({d['calls']} calls); registries {d['registries']}")
    print(f"{'part':14} {'median ms':>10}")
    for k, v in d["median_ms"].items():
        print(f"{k:14} {v:>10}")
    print(f"{'p95 total':14} {d['p95_total_ms']:>10}")
    print(f"{'first call':14} {d['cold_first_call_ms']:>10}   (registries read into memory)")
    print(f"{'count(*)':14} {d['baseline_count_ms']:>10}   baseline; total = "
          f"{d['total_vs_baseline']}× baseline")
    if args.browser:
        b = browser_push(args)
        out["action_to_other_page"] = b
        print(f"\n{'click ->':30} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for label, key in (("officer's own confirmation", "own_confirmation_ms"),
                           ("second officer's task board", "second_page_ms")):
            s = b[key]
            print(f"{label:30} {s['p50']:>8} {s['p95']:>8} {s['max']:>8}")
        print(f"(load average median {b['load_avg_median']} on {os.cpu_count()} cores)")
    out["load_avg"] = round(os.getloadavg()[0], 1)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
