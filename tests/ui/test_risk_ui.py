"""``/risk`` in a real browser: the four colours, legend == SQL, filter, search, card, live
readings, offline, and the bad-input messages."""
from __future__ import annotations

import colorsys
import io
import re

import numpy as np
import pandas as pd
import pytest

from sources.risk.risk import RiskFilter, RiskSource
from sources.store.store import Store
from tests.conftest import wait_until

pytestmark = [pytest.mark.ui, pytest.mark.slow]

IMAGE = """() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name('risk-image');
  if (m && m.data.image[0].length > 1) return [m.data.x[0], m.data.x1[0], m.data.y[0],
  m.data.y1[0]]; } return null; }"""
GRADE_LABELS = {"red": "重大风险", "orange": "较大风险", "yellow": "一般风险", "blue": "低风险"}


def map_canvas_png(page) -> bytes:
    boxes = [c.bounding_box() for c in page.locator("canvas").all()]
    box = max((b for b in boxes if b), key=lambda b: b["width"] * b["height"])
    return page.screenshot(clip=box)


def grade_pixels(png: bytes) -> dict[str, int]:
    """Pixels whose hue is one of the four grade colours (composited on the background)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), float) / 255
    flat = rgb.reshape(-1, 3)
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in flat[::3]])
    h, s, v = hsv[:, 0] * 360, hsv[:, 1], hsv[:, 2]
    sat = (s > 0.3) & (v > 0.5)
    return {
        "red": int((sat & ((h < 10) | (h > 345))).sum()),
        "orange": int((sat & (h > 22) & (h < 40)).sum()),
        "yellow": int((sat & (h > 44) & (h < 60)).sum()),
        "blue": int((sat & (h > 205) & (h < 230)).sum()),
    }


def legend_counts(page) -> dict[str, int]:
    out = {}
    for g, label in GRADE_LABELS.items():
        text = page.get_by_role("button", name=re.compile(f"^{label} ")).inner_text()
        out[g] = int(text.split()[-1].replace(",", ""))
    return out


def test_risk_map_in_a_browser(serve, page):
    console = serve("--speed", "20")
    page.goto(f"{console.url}/risk")
    page.wait_for_selector("canvas", timeout=60_000)
    wait_until(lambda: page.evaluate(IMAGE), timeout=60, message="no risk image")

    # the four colours are on the map
    px = wait_until(lambda: (lambda c: c if min(c.values()) > 3 else None)(
        grade_pixels(map_canvas_png(page))), timeout=20, message="the four colours are missing")
    assert px["blue"] > px["red"]

    # legend counts for the view == SQL counts over the same bounds
    snap = RiskSource(store=Store.snapshot(console.db))

    def legend_matches_sql():
        bounds = page.evaluate(IMAGE)
        return bounds and legend_counts(page) == snap.counts(bounds)

    wait_until(legend_matches_sql, timeout=20, message="legend != SQL counts")
    assert sum(legend_counts(page).values()) == snap.store.scalar(
        "SELECT count(*) FROM risk_points")

    # hover says what is under the cursor
    box = max((c.bounding_box() for c in page.locator("canvas").all()),
              key=lambda b: b["width"] * b["height"])
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    wait_until(lambda: page.get_by_text(re.compile("^光标处")).count() > 0, timeout=20,
               message="no hover information")

    # a click on a grade hides it
    page.get_by_role("button", name=re.compile(f"^{GRADE_LABELS['blue']} ")).click()
    wait_until(lambda: grade_pixels(map_canvas_png(page))["blue"] == 0, timeout=20,
               message="blue points still drawn after hiding the grade")

    # export the filtered enterprises (blue hidden) as CSV
    with page.expect_download(timeout=30_000) as download:
        page.get_by_text("企业清单 CSV", exact=True).click()
    exported = pd.read_csv(download.value.path(), encoding="utf-8-sig")
    expected = snap.export_enterprises(RiskFilter(grades=("red", "orange", "yellow")))
    assert exported["enterprise_id"].tolist() == expected["enterprise_id"].tolist()

    # search an enterprise by name: the map jumps to it and its card opens
    eid, name = snap.store.arrow(
        "SELECT enterprise_id, name FROM enterprises ORDER BY enterprise_id LIMIT 1 OFFSET 10"
    ).to_pylist()[0].values()
    box = page.get_by_placeholder("搜索企业名称")
    box.fill(name)
    box.press("Enter")
    wait_until(lambda: page.locator(f"[data-enterprise='{eid}'] h3").count() > 0, timeout=20,
               message="the enterprise card did not open")
    assert page.locator(f"[data-enterprise='{eid}'] h3").inner_text() == name
    b = page.evaluate(IMAGE)
    assert b[1] - b[0] < 0.1  # zoomed to street level
    wait_until(legend_matches_sql, timeout=20, message="legend != SQL after the jump")

    # live readings count up without a reload
    def readings():
        text = page.get_by_text(re.compile("已接收 .* 条监测数据")).inner_text()
        return int(re.search(r"已接收 ([\d,]+)", text).group(1).replace(",", ""))

    first = readings()
    wait_until(lambda: readings() > first, timeout=40, message="live readings do not grow")

    assert page.requests_log.foreign(console.url) == []
    assert_no_risk_errors(console)


def assert_no_risk_errors(console):
    """No traceback of the risk app in the server's log (other apps are not ours to judge)."""
    log = console.log.read_text(errors="replace")
    ours = ("views/risk_map.py", "views/enterprise_card.py", "views/county_index.py",
            "sources/risk/risk.py", "sources/risk/pointlayer.py", "dashboards/risk.py")
    assert not [f for f in ours if f in log], log[-3000:]


def test_risk_bad_input_and_county_index(serve, page):
    console = serve("--no-demo-feed")
    page.goto(f"{console.url}/risk?enterprise=99999999")
    page.wait_for_selector("canvas", timeout=60_000)
    wait_until(lambda: page.get_by_text("未找到企业：99999999").count() > 0, timeout=20,
               message="no message for an unknown enterprise")
    page.goto(f"{console.url}/risk?enterprise=%3Cb%3Ex%3C%2Fb%3E&lang=en")
    wait_until(lambda: page.get_by_text("No such enterprise: <b>x</b>").count() > 0,
               timeout=20, message="markup in the URL is not shown as text")

    # the county risk index: a click on a county ranks its enterprises; cities on demand
    page.goto(f"{console.url}/risk")
    page.get_by_text("县区风险指数", exact=True).first.click()
    codes = """() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(
      'index-patches'); if (m) return new Set(m.data.code).size; } return null; }"""
    wait_until(lambda: page.evaluate(codes) == 136, timeout=30, message="no county choropleth")
    canvas = max((c for c in page.locator("canvas").all() if c.is_visible()),
                 key=lambda c: c.bounding_box()["width"] * c.bounding_box()["height"])
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    wait_until(lambda: page.get_by_text(re.compile("：企业风险排名")).count() > 0, timeout=20,
               message="a click on a county did not rank its enterprises")
    page.get_by_role("button", name="城市", exact=True).click()
    wait_until(lambda: page.evaluate(codes) == 16, timeout=20, message="no city choropleth")

    # the installations' alarm queue is a tab of the risk page too
    page.locator(".bk-tab", has_text="报警处置").click()
    wait_until(lambda: page.locator(".alarm-queue-table .tabulator").count() == 1
               and page.locator(".alarm-queue-table").is_visible(), timeout=20,
               message="no alarm queue on /risk")
    assert page.requests_log.foreign(console.url) == []
    assert_no_risk_errors(console)
