"""The analysts' pages in a real browser: /console and the served notebook dashboard."""
from __future__ import annotations

import pytest

from sources.store.store import Store
from tests.conftest import wait_until

pytestmark = [pytest.mark.ui, pytest.mark.slow]

CANVAS_NOT_BLANK = """(canvases) => canvases.some(c => {
  if (!c.width || !c.height) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < d.length; i += 16) if (d[i] > 0 && (d[i-3] < 240 || d[i-2] < 240)) painted++;
  return painted > 50;
})"""


def run_cell(page, index: int, sql: str, expect: str = "ok", timeout: float = 30):
    """Type ``sql`` into cell ``index``, run it, wait for its status and return the cell."""
    cell = page.locator(".qc-cell").nth(index)
    status = cell.locator(".qc-status")
    runs = int(status.get_attribute("data-run") or 0) if status.count() else 0
    cell.locator(".qc-sql textarea").fill(sql)
    cell.locator(".qc-run button").click()
    cell.locator(f'[data-run="{runs + 1}"]').wait_for(timeout=timeout * 1000)
    assert status.get_attribute("data-status") == expect, status.inner_text()
    return cell


def counts(db) -> dict:
    store = Store(db, read_only=True)
    try:
        return {"tables": store.tables(),
                "risk_points": store.scalar("SELECT count(*) FROM risk_points"),
                "counties": store.scalar("SELECT count(*) FROM counties")}
    finally:
        store.close()


def test_notebook_dashboard_and_console_in_a_browser(serve, page, tiny_db):
    """One console serves both checks (a server start costs ~15 s on the CI machine)."""
    before = counts(tiny_db)
    console = serve("--no-demo-feed")

    # the example notebook dashboard is listed on / and served beside the apps
    page.goto(f"{console.url}/?lang=en")
    link = page.locator('a[href^="./notebook-county_overview"]')
    link.wait_for(timeout=60_000)
    assert "County overview" in link.inner_text()
    page.goto(f"{console.url}/notebook-county_overview?lang=en")
    page.locator(".county-overview").wait_for(timeout=60_000)
    wait_until(lambda: page.locator(".county-overview .tabulator-row").count() > 0, timeout=30)
    wait_until(lambda: page.locator(".county-overview canvas").count() > 0, timeout=30)
    assert page.locator(".county-overview").get_by_text("risk points").count() > 0

    # /console
    page.goto(f"{console.url}/console?lang=en")
    page.locator(".qc-cell").first.wait_for(timeout=60_000)

    # a query returns a table
    cell = run_cell(page, 0, "SELECT name, city FROM counties ORDER BY county_code")
    wait_until(lambda: cell.locator(".tabulator-row").count() > 0, timeout=20)
    assert before["counties"] > 0
    assert "rows in" in cell.locator(".qc-status").inner_text()

    # a lon/lat query draws a map (rasterised: more points than RASTERISE_ABOVE are possible)
    page.locator(".qc-add-below button").click()
    wait_until(lambda: page.locator(".qc-cell").count() == 2, timeout=20)
    cell = run_cell(page, 1, "SELECT lon, lat, risk_level FROM risk_points")
    chart = cell.locator(".qc-chart")
    wait_until(lambda: chart.locator("canvas").count() > 0, timeout=30,
               message="no map canvas")
    wait_until(lambda: chart.locator("canvas").evaluate_all(CANVAS_NOT_BLANK), timeout=30,
               message="the map is blank")

    # writes are refused with a clear message, at the cell
    for sql in ("DELETE FROM risk_points", "DROP TABLE counties",
                "ATTACH '/tmp/x.duckdb' AS x", "COPY risk_points TO '/tmp/x.csv'",
                "SET threads = 1"):
        cell = run_cell(page, 1, sql, expect="refused")
        assert "Refused" in cell.locator(".qc-status").inner_text()
        # the old rows go with the refusal (the table patch may land just after the status)
        wait_until(lambda c=cell: c.locator(".qc-table .tabulator-row").count() == 0, timeout=10,
                   message=f"rows of the previous result still shown after refusing {sql!r}")
    # DuckDB's own message for a bad query
    cell = run_cell(page, 1, "SELECT nope FROM counties", expect="error")
    assert "nope" in cell.locator(".qc-status").inner_text()

    # a long query is cancelled from the page while it runs
    status = cell.locator(".qc-status")
    runs = int(status.get_attribute("data-run"))
    cell.locator(".qc-sql textarea").fill(
        "SELECT count(*) FROM range(100000000000) a, range(10) b")
    cell.locator(".qc-run button").click()
    cell.locator('[data-status="running"]').wait_for(timeout=20_000)
    cell.locator(".qc-cancel button").click()
    cell.locator(f'[data-run="{runs + 1}"]').wait_for(timeout=20_000)
    assert status.get_attribute("data-status") == "cancelled"

    # save, pin, and the pinned dashboard shows the console's result
    run_cell(page, 1, "SELECT 1 AS one")
    run_cell(page, 0, "SELECT city, count(*) AS counties FROM counties GROUP BY 1")
    page.locator(".qc-name input").fill("ui-test-pin")
    page.locator(".qc-pin button").click()
    page.locator('.qc-message [data-status="ok"]').wait_for(timeout=20_000)
    pinned = page.context.new_page()
    pinned.goto(f"{console.url}/pinned?lang=en")
    pinned.get_by_text("ui-test-pin").wait_for(timeout=60_000)
    wait_until(lambda: pinned.locator(".qc-cell .tabulator-row").count() > 0, timeout=30)
    pinned.close()

    # the data is unchanged: seen through the console, then in the file after stopping it
    cell = run_cell(page, 1, "SELECT count(*) AS n FROM risk_points")
    shown = {str(before["risk_points"]), f"{before['risk_points']:,}"}  # grouped or not
    seen = [""]

    def shows_count():
        seen[0] = " ".join(cell.locator(".qc-table .tabulator-cell").all_inner_texts())
        return any(s in seen[0] for s in shown)

    try:
        wait_until(shows_count, timeout=20)
    except AssertionError:
        raise AssertionError(f"count {before['risk_points']} not shown: {seen[0][:300]!r}") from None
    assert page.requests_log.foreign(console.url) == []
    assert console.stop() == 0
    after = counts(tiny_db)
    added = set(after["tables"]) - set(before["tables"])
    # only the console's own tables may be new (saved consoles, the audit trail)
    assert added <= {"saved_consoles", "audit_log", "audit_anchor", "audit_state"}, added
    after["tables"] = [t for t in after["tables"] if t not in added]
    assert after == before
