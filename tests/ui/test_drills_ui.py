"""A drill as officers live it: the demo's first start is alive at once; while a scenario
plays every page (the wall too) says 演练; the drill's alarm is the engine's own; the drill's
warning is CAP status Exercise; afterwards the drill is reviewed and purged, real rows stay."""
from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import start_console, wait_until
from tests.ui.axe import deep

pytestmark = [pytest.mark.ui, pytest.mark.slow]


@pytest.fixture
def drilling(lived_db_template, tmp_path):
    """serve.py on a lived-in tiny store, playing the chemical-leak scenario fast."""
    db = tmp_path / "drill.duckdb"
    shutil.copy2(lived_db_template, db)
    console = start_console(db, "--scenario", "dongying-leak", "--speed", "20")
    yield console
    console.stop()


def banner_text(page) -> str:
    found = deep(page, "[data-drill]")
    return found[0]["text"] if found else ""


def kpi(page, key: str) -> int:
    """The sum of the big numbers of a KPI card (a card may show one per level)."""
    total = 0
    for num in deep(page, f'[data-kpi="{key}"] .num'):  # "Red 3" (a level word for readers)
        digits = re.findall(r"\d[\d,]*", num["text"])
        total += int(digits[0].replace(",", "")) if digits else 0
    return total


def test_first_look_and_a_drill_on_every_page(browser, drilling):
    wall = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
    wall.goto(f"{drilling.url}/board?kiosk=1&lang=en")
    # a lived-in province from the first second: warnings, alarms, incidents, a ticker
    wait_until(lambda: kpi(wall, "warnings") > 0 and kpi(wall, "alarms") > 0
               and kpi(wall, "incidents") > 0, timeout=60,
               message="the first start shows an empty province")
    assert len(deep(wall, ".ticker li[data-kind]")) >= 5  # the week's latest events
    # the drill is on the wall, marked
    wait_until(lambda: "EXERCISE" in banner_text(wall), timeout=60,
               message="no exercise banner on the wall")
    for route in ("alarms", "warnings", "risk", "command", "drills"):
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.goto(f"{drilling.url}/{route}?lang=en")
        wait_until(lambda p=page: "EXERCISE" in banner_text(p), timeout=30,
                   message=f"no exercise banner on /{route}")
        page.context.close()
    wall.context.close()


def test_drill_is_stopped_reviewed_and_purged_leaving_real_rows(browser, drilling,
                                                                  lived_db_template):
    import duckdb

    from sources.drills.desk import DRILL_TABLES

    wall = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
    wall.goto(f"{drilling.url}/board?kiosk=1&lang=en")
    # the leak's alarms and incident, counted apart from the real figures on the wall
    wait_until(lambda: kpi(wall, "drill") >= 2, timeout=90,
               message="the wall never counted the drill's alarms and incident")
    wall.context.close()
    desk = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    desk.goto(f"{drilling.url}/drills?lang=en")
    desk.get_by_role("button", name="Stop drill").click()
    wait_until(lambda: "EXERCISE" not in banner_text(desk), timeout=60,
               message="the banner stays after the drill stopped")
    desk.locator(".tabulator-row").first.locator(".tabulator-cell").nth(1).click()
    wait_until(lambda: "alarms" in " ".join(d["text"] for d in deep(desk, ".drill-summary-text")),
               timeout=20, message="no review of the drill")
    desk.get_by_role("button", name="Purge drill data").click()
    wait_until(lambda: "Purged" in " ".join(d["text"] for d in deep(desk, ".drill-note")),
               timeout=30, message="the purge was not confirmed")
    note = " ".join(d["text"] for d in deep(desk, ".drill-note"))
    drill = re.search(r"drill (DR-[\w-]+)", note).group(1)
    desk.context.close()
    assert drilling.stop() == 0
    con = duckdb.connect(str(drilling.db), read_only=True)
    before = duckdb.connect(str(lived_db_template), read_only=True)
    try:
        for table in DRILL_TABLES:
            assert con.execute(f"SELECT count(*) FROM {table} WHERE drill_id = ?",
                               [drill]).fetchone()[0] == 0, table
        # the week of real history is all still there
        for table in ("alarms", "warnings", "incidents", "quakes"):
            real = f"SELECT count(*) FROM {table} WHERE feed IS NULL OR feed LIKE 'history%'" \
                if table != "alarms" else "SELECT count(*) FROM alarms WHERE raised_at < " \
                "(SELECT max(raised_at) FROM alarms WHERE drill_id IS NULL) + INTERVAL 0 DAY"
            assert con.execute(real).fetchone()[0] >= before.execute(real).fetchone()[0] > 0
        row = con.execute("SELECT purged_by, purged_rows FROM drills WHERE drill_id = ?",
                          [drill]).fetchone()
        assert row[0] == "anonymous" and row[1] > 0
    finally:
        con.close()
        before.close()
