"""``/command`` end to end in Chromium: open an incident from an alarm, launch a level III
response, dispatch a team and materials, see the tasks on a second officer's page and the
incident on the wall, file the first and a follow-up report, close, replay."""
from __future__ import annotations

import pytest

from sources.store.store import Store
from tests.conftest import wait_until


def text_of(page, css: str) -> str:
    """The text of a pane, its shadow root included (each Panel pane has its own)."""
    loc = page.locator(css)
    if loc.count() == 0:
        return ""
    return loc.first.evaluate(
        "e => (e.shadowRoot ? e.shadowRoot.textContent : '') + ' ' + e.textContent")


def click(page, css: str) -> None:
    page.locator(f"{css} button").first.click()


def tab(page, label: str) -> None:
    page.locator(".cmd-tabs .bk-tab", has_text=label).first.click()


def seed_alarm(db) -> dict:
    """A red toxic-gas alarm at an installation, written before the console opens the store."""
    store = Store(db)
    try:
        s = store.df("SELECT s.sensor_id, s.installation_id, s.enterprise_id, s.county_code, "
                     "e.name AS enterprise FROM sensors s JOIN enterprises e USING "
                     "(enterprise_id) WHERE s.kind = 'toxic_gas' ORDER BY s.sensor_id LIMIT 1"
                     ).iloc[0].to_dict()
        store.execute("INSERT INTO alarms (alarm_id, sensor_id, installation_id, enterprise_id, "
                      "county_code, kind, level, raised_at, trigger_value, peak_value, state) "
                      "VALUES (4242, ?, ?, ?, ?, 'hi_hi', 'red', now() - INTERVAL 5 MINUTE, "
                      "55.0, 61.5, 'raised')",
                      [s["sensor_id"], int(s["installation_id"]), int(s["enterprise_id"]),
                       s["county_code"]])
    finally:
        store.close()
    return s


@pytest.mark.ui
@pytest.mark.slow
def test_command_from_alarm_to_replay(serve, page, browser, tiny_db):
    alarm = seed_alarm(tiny_db)
    console = serve("--no-demo-feed")
    base = console.url

    # 接报: the intake comes filled from the alarm
    page.goto(f"{base}/command?alarm=4242")
    page.wait_for_selector(".cmd-tabs", timeout=90_000)
    wait_until(lambda: "61.5" in page.locator(".cmd-intake-description textarea").input_value(),
               timeout=30, message="the intake did not carry the alarm's readings")
    click(page, ".cmd-intake-open")
    wait_until(lambda: "已建档" in text_of(page, ".cmd-intake-notice"), timeout=30)
    notice = text_of(page, ".cmd-intake-notice")
    incident_id = notice[notice.index("CMD-"):].split("，")[0].strip()
    wait_until(lambda: alarm["enterprise"] in text_of(page, ".cmd-incident-card"), timeout=30)

    # the wall shows the new incident without any wiring (it reads the incidents table)
    wall = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    wall.goto(f"{base}/board?kiosk=1&layout=incidents")
    heads = wall.locator(".board-incident-0 .inc .head b")
    wait_until(lambda: heads.count() == 1 and alarm["enterprise"] in heads.first.inner_text(),
               timeout=60, message="the wall's incident panel did not show the new incident")

    # a second officer has the incident's task board open
    other = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    other.goto(f"{base}/command?incident={incident_id}")
    other.wait_for_selector(".cmd-tabs", timeout=90_000)
    tab(other, "任务看板")
    wait_until(lambda: "已下达 (0)" in text_of(other, ".cmd-task-board"), timeout=30)

    # 启动Ⅲ级响应: the plan's checklist opens
    page.locator(".cmd-level select").select_option(label="Ⅲ级响应")
    click(page, ".cmd-launch")
    wait_until(lambda: "预案措施已生成" in text_of(page, ".cmd-workspace-notice"), timeout=30)
    wait_until(lambda: page.locator(".cmd-checklist .tabulator-row").count() == 7, timeout=30)

    # 一键调度: a team, then materials
    tab(page, "辅助决策与调度")
    wait_until(lambda: page.locator(".cmd-dispatch-team option").count() > 0, timeout=30)
    team = page.locator(".cmd-dispatch-team option").first.inner_text().split(" · ")[0]
    click(page, ".cmd-assign-team")
    wait_until(lambda: f"已下达任务：{team}" in text_of(page, ".cmd-dispatch-notice"), timeout=30)
    wait_until(lambda: team in text_of(other, ".cmd-task-board"), timeout=30,
               message="the second officer's board did not show the team's task")
    page.locator(".cmd-dispatch-kind select").select_option(index=0)
    page.locator(".cmd-dispatch-qty input").fill("1")
    page.locator(".cmd-dispatch-qty input").press("Enter")
    click(page, ".cmd-request-materials")
    wait_until(lambda: "已下达任务" in text_of(page, ".cmd-dispatch-notice")
               and "已下达 (2)" in text_of(other, ".cmd-task-board"), timeout=30,
               message="the materials task did not reach the second page")

    # 信息报送: the first report and a follow-up, from the template
    tab(page, "信息报送")
    page.locator(".cmd-report-kind select").select_option(label="首报")
    click(page, ".cmd-report-draft")
    wait_until(lambda: "Ⅲ级应急响应" in page.locator(".cmd-report-body textarea").input_value(),
               timeout=30)
    click(page, ".cmd-report-submit")
    wait_until(lambda: "首报已报送" in text_of(page, ".cmd-report-notice"), timeout=30)
    page.locator(".cmd-report-kind select").select_option(label="续报")
    click(page, ".cmd-report-draft")
    wait_until(lambda: team in page.locator(".cmd-report-body textarea").input_value(),
               timeout=30)
    click(page, ".cmd-report-submit")
    wait_until(lambda: "续报已报送" in text_of(page, ".cmd-report-notice"), timeout=30)
    wait_until(lambda: page.locator(".cmd-report-list .tabulator-row").count() == 2, timeout=30)

    # the second officer finishes the tasks from the board
    for _ in range(2):
        for move, column in (("en_route", "在途"), ("on_scene", "到达现场"), ("done", "完成")):
            click(other, f".cmd-move-{move}")
            wait_until(lambda column=column: "任务“" in text_of(other, ".cmd-task-notice")
                       and column in text_of(other, ".cmd-task-notice"), timeout=30)
    wait_until(lambda: "完成 (2)" in text_of(other, ".cmd-task-board"), timeout=30)

    # 处置结束, then the final report is what is owed
    tab(page, "研判与响应")
    page.locator(".cmd-close-note input").fill("险情已排除")
    click(page, ".cmd-close")
    wait_until(lambda: "事件已结束" in text_of(page, ".cmd-workspace-notice"), timeout=30)
    wait_until(lambda: "已结束" in text_of(page, ".cmd-incident-card"), timeout=30)

    # 案例推演: back to the start, then step through
    tab(page, "案例推演")
    wait_until(lambda: "总结评估" in text_of(page, ".cmd-review")
               and "已结束" in text_of(page, ".cmd-replay-state"), timeout=30,
               message="the replay does not end on the closed incident")
    slider = page.locator(".cmd-replay-slider .noUi-handle").first
    slider.focus()
    slider.press("Home")
    wait_until(lambda: "处置中" in text_of(page, ".cmd-replay-state")
               or "尚未建档" in text_of(page, ".cmd-replay-state"), timeout=30)
    click(page, ".cmd-replay-next")
    wait_until(lambda: "处置中" in text_of(page, ".cmd-replay-state"), timeout=30,
               message="stepping the replay did not show the incident open")
    assert page.requests_log.foreign(base) == []
