"""/alarms in a real browser: a breaching reading from a feed appears as a row; an officer
acknowledges it and a second open page sees it."""
from __future__ import annotations

import pytest

from bench.alarm_latency import BenchFeed
from sources.store.store import Store


@pytest.fixture
def feed():
    f = BenchFeed()
    yield f
    f.stop()


@pytest.mark.ui
@pytest.mark.slow
def test_alarm_row_appears_and_is_acknowledged(serve, tiny_db, feed, browser, page):
    store = Store(tiny_db, read_only=True)
    sid, hi_hi = store.arrow(
        "SELECT sensor_id, hi_hi FROM sensors WHERE hi_hi IS NOT NULL AND enterprise_id IS NOT "
        "NULL ORDER BY sensor_id LIMIT 1").to_pylist()[0].values()
    store.close()
    console = serve("--feed", feed.url)
    page.goto(f"{console.url}/alarms?lang=en")
    page.get_by_text("Enterprise / station").first.wait_for(timeout=60_000)
    other = page.context.new_page()  # a second officer's page
    other.goto(f"{console.url}/alarms")
    other.get_by_text("企业/站点").first.wait_for(timeout=60_000)

    seq = feed.next_seqs(1)[0]
    feed.send([{"type": "reading", "seq": seq, "ts": "2026-11-28T08:00:00+08:00",
                "sensor_id": sid, "value": hi_hi + 5}])
    row = page.locator(".tabulator-row", has_text=sid)
    row.wait_for(timeout=15_000)
    assert "Red" in row.inner_text() and "Raised" in row.inner_text()
    page.locator(".alarm-banner", has_text="New red alarm").wait_for(timeout=5_000)
    other_row = other.locator(".tabulator-row", has_text=sid)
    other_row.wait_for(timeout=15_000)

    row.click()
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    page.locator(".alarm-msg.ok", has_text="acknowledged").wait_for(timeout=10_000)
    page.locator(".tabulator-row", has_text="Acknowledged").wait_for(timeout=10_000)
    assert "anonymous" in page.locator(".tabulator-row", has_text=sid).inner_text()
    other.locator(".tabulator-row", has_text="已确认").wait_for(timeout=10_000)
    # the second officer tries too, and is told who was first
    other.locator(".tabulator-row", has_text=sid).click()
    other.get_by_role("button", name="确认", exact=True).click()
    other.locator(".alarm-msg.err", has_text="anonymous").wait_for(timeout=10_000)
    assert page.requests_log.foreign(console.url) == []
    other.close()
