"""``/inventory`` end to end: the views on the tiny store, then a real browser on serve.py."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from sources.inventory.common import utc_now
from sources.inventory.experts import POOL_SQL, ExpertSource
from sources.inventory.materials import MaterialSource
from sources.store.store import Store
from tests.conftest import rendered, wait_until
from views.dispatch import DispatchDesk
from views.expert_directory import ExpertDirectory
from views.expert_draw import ExpertDraw
from views.inventory_common import options
from views.material_stock import MaterialStock


# ---------------------------------------------------------------------- test data
def tied_expert(store: Store) -> dict:
    """An available expert employed by a registry enterprise, and the draw pool around it."""
    row = store.df(
        "SELECT e.expert_id, e.name, e.type, e.employer_enterprise_id AS enterprise_id, "
        "n.name AS enterprise FROM experts e JOIN enterprises n "
        "ON n.enterprise_id = e.employer_enterprise_id WHERE e.available "
        "AND (SELECT count(*) FROM experts x WHERE x.name = e.name) = 1 "
        "ORDER BY e.expert_id LIMIT 1").iloc[0].to_dict()
    params = {"tags": [], "match_all": False, "type": row["type"], "county": None,
              "enterprise_id": int(row["enterprise_id"]),
              "since": utc_now() - timedelta(days=30), "task_id": None}
    pool = store.arrow(POOL_SQL, params).column(0).to_pylist()
    names = store.df("SELECT expert_id, name FROM experts")
    row["pool"] = pool
    row["pool_names"] = names[names.expert_id.isin(pool)].name.tolist()
    row["all_of_type"] = int(store.scalar(
        "SELECT count(*) FROM experts WHERE available AND type = ?", [row["type"]]))
    return row


def stocked_pair(store: Store) -> dict:
    """A countable kind held at one warehouse, and another warehouse to send it to."""
    row = store.df(
        "SELECT s.kind_id, k.name || ' (' || k.unit || ')' AS kind, s.warehouse_id, "
        "s.quantity FROM stock s JOIN material_kinds k USING (kind_id) "
        "WHERE k.countable AND s.quantity >= 10 ORDER BY s.warehouse_id, s.kind_id LIMIT 1"
    ).iloc[0].to_dict()
    wh = store.df("SELECT warehouse_id, name FROM warehouses ORDER BY warehouse_id")
    labels = {v: k for k, v in options(wh, "warehouse_id", "name").items()}
    row["from"] = labels[row["warehouse_id"]]
    other = int(wh.warehouse_id[wh.warehouse_id != row["warehouse_id"]].iloc[0])
    row["to_id"], row["to"] = other, labels[other]
    return row


# ---------------------------------------------------------------------- views, no browser
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_inventory_page_builds(console, lang):
    from dashboards.inventory import InventoryPage
    from views.i18n import t

    page = rendered(InventoryPage(console=console, lang=lang).layout())
    for key in ("inventory.tab.experts", "inventory.tab.draw", "inventory.tab.stock",
                "inventory.tab.dispatch"):
        assert t(key, lang) in page["text"]
    experts = console.store.scalar("SELECT count(*) FROM experts")
    # the directory counts them ("共 40 名专家", "40 experts")
    assert page["rows"] > 0 and re.search(rf"(^|\D){experts}\D", page["text"])


def test_views_on_the_tiny_store(console):
    runtime = console
    experts = ExpertSource(store=runtime.store, hub=runtime.hub)
    materials = MaterialSource(store=runtime.store, hub=runtime.hub)
    x = tied_expert(runtime.store)
    directory = ExpertDirectory(source=experts, lang="en")
    directory.name_input.value = x["name"]
    assert list(directory.results.value.name) == [x["name"]]
    directory.results.selection = [0]
    assert x["name"] in directory.card.object and "<script" not in directory.card.object

    desk = ExpertDraw(source=experts, lang="en")
    desk.title.value = "leak"
    desk.type.value = x["type"]
    desk.enterprise.text.value = str(x["enterprise_id"])
    assert desk.enterprise.value == x["enterprise_id"]
    desk.n.value = len(x["pool"]) + 1
    assert desk.draw() is None and "qualify" in desk.notice.pane.object
    desk.n.value = len(x["pool"])
    result = desk.draw()
    assert sorted(result["result"]) == sorted(x["pool"]) and x["expert_id"] not in x["pool"]
    assert x["name"] not in set(desk.members_table.value.name)
    desk.members_table.selection = [0]
    first = desk.members_table.value.iloc[0]
    fee = desk.record_fee()
    assert fee == runtime.store.scalar("SELECT max(fee_id) FROM expert_fees")
    assert desk.rate() is not None and "rating" in desk.action_notice.pane.object
    desk.fee_expert.value = int(first.expert_id)
    fees = desk._fees("csv").getvalue().decode("utf-8-sig")
    assert first["name"] in fees and fees.count("\n") == 2

    stock = MaterialStock(source=materials, lang="en")
    assert len(stock._points.data["x"]) == runtime.store.scalar("SELECT count(*) FROM warehouses")
    s = stocked_pair(runtime.store)
    stock.need_kind.value, stock.need_qty.value = s["kind_id"], 3
    stock.need_county.value = runtime.store.scalar("SELECT min(county_code) FROM counties")
    assert stock.find_supply()["enough"] and len(stock._plan.data["x"]) >= 1

    dispatch = DispatchDesk(source=materials, lang="en")
    dispatch.kind.value, dispatch.quantity.value = s["kind_id"], 2.5
    dispatch.from_wh.value, dispatch.to_wh.value = s["warehouse_id"], s["to_id"]
    assert dispatch.request() is None and "whole" in dispatch.notice.pane.object
    dispatch.quantity.value = 2
    d = dispatch.request()
    for step in ("approve", "ship", "receive"):
        assert dispatch.act(step), dispatch.notice.pane.object
    assert not dispatch.act("ship")  # already received
    assert list(dispatch.moves.value.dispatch_id) == [d, d]
    assert materials.ledger_mismatches().empty


# ---------------------------------------------------------------------- browser
def open_inventory(page, console, tab: str | None = None):
    page.goto(f"{console.url}/inventory")
    page.wait_for_selector(".inv-tabs", timeout=60_000)
    if tab:
        page.locator(".bk-tab", has_text=tab).first.click()


def fill(page, css: str, value, enter: bool = True):
    box = page.locator(f"{css} input").first
    box.fill(str(value))
    if enter:
        box.press("Enter")


def text_of(page, css: str) -> str:
    """The text of a pane, its shadow root included (each Panel pane has its own)."""
    return page.locator(css).first.evaluate(
        "e => (e.shadowRoot ? e.shadowRoot.textContent : '') + ' ' + e.textContent")


@pytest.mark.ui
def test_search_an_expert_in_the_browser(serve, page, tiny_db):
    with _ro(tiny_db) as store:
        x = tied_expert(store)
    console = serve("--no-demo-feed")
    open_inventory(page, console)
    fill(page, ".inv-search-name", x["name"])
    wait_until(lambda: "共 1 名专家" in text_of(page, ".inv-search-count"), timeout=45)
    rows = page.locator(".inv-search-results .tabulator-row")
    wait_until(lambda: rows.count() == 1 and x["name"] in rows.first.inner_text(), timeout=45)
    rows.first.locator(".tabulator-cell").nth(1).click()
    wait_until(lambda: x["name"] in text_of(page, ".inv-expert-card"), timeout=45)
    assert page.requests_log.foreign(console.url) == []


@pytest.mark.ui
def test_draw_with_an_exclusion_in_the_browser(serve, page, tiny_db):
    with _ro(tiny_db) as store:
        x = tied_expert(store)
    assert len(x["pool"]) < x["all_of_type"]  # the exclusion removes someone
    console = serve("--no-demo-feed")
    open_inventory(page, console, "专家抽取")
    fill(page, ".inv-draw-title", "泄漏处置专家组")
    page.locator(".inv-draw-type select").select_option(
        label={"safety": "安全生产", "natural": "自然灾害", "rescue": "应急救援",
               "general": "综合"}[x["type"]])
    fill(page, ".inv-draw-enterprise-text", x["enterprise"])
    wait_until(lambda: x["enterprise"] in page.locator(
        ".inv-draw-enterprise select").first.inner_text(), timeout=45)
    page.locator(".inv-draw-enterprise select").select_option(label=x["enterprise"])
    fill(page, ".inv-draw-n", len(x["pool"]))
    page.locator(".inv-draw-go button").click()
    notice = ".inv-draw-notice"
    wait_until(lambda: f"{len(x['pool'])} 名候选" in text_of(page, notice), timeout=45)
    rows = page.locator(".inv-draw-members .tabulator-row")
    wait_until(lambda: rows.count() == min(len(x["pool"]), 10), timeout=45)
    # the rows' cells are filled just after the rows appear
    shown = wait_until(lambda: (lambda t: t if any(n in t for n in x["pool_names"]) else None)(
        " ".join(rows.all_inner_texts())), timeout=20, message="no drawn expert shown")
    assert x["name"] not in shown
    assert page.requests_log.foreign(console.url) == []


@pytest.mark.ui
def test_dispatch_from_request_to_receipt_in_the_browser(serve, page, tiny_db):
    with _ro(tiny_db) as store:
        s = stocked_pair(store)
    console = serve("--no-demo-feed")
    open_inventory(page, console, "物资调拨")
    page.locator(".inv-dispatch-kind select").select_option(label=s["kind"])
    page.locator(".inv-dispatch-from select").select_option(label=s["from"])
    page.locator(".inv-dispatch-to select").select_option(label=s["to"])
    fill(page, ".inv-dispatch-qty", 3)
    page.locator(".inv-dispatch-request button").click()
    notice = ".inv-dispatch-notice"
    wait_until(lambda: "已提交" in text_of(page, notice), timeout=45)
    for step, word in (("approve", "已审批"), ("ship", "已发货"), ("receive", "已签收")):
        page.locator(f".inv-dispatch-{step} button").click()
        wait_until(lambda word=word: word in text_of(page, notice), timeout=45)
    moves = page.locator(".inv-dispatch-moves .tabulator-row")
    wait_until(lambda: moves.count() == 2, timeout=45)
    # the rows' cells are filled just after the rows appear
    wait_until(lambda: "调出" in " ".join(moves.all_inner_texts())
               and "调入" in " ".join(moves.all_inner_texts()), timeout=20,
               message="the ledger rows do not show an outgoing and an incoming movement")
    wait_until(lambda: "已签收" in " ".join(
        page.locator(".inv-dispatch-list .tabulator-row").all_inner_texts()), timeout=20,
        message="the dispatch list does not show the receipt")
    assert page.requests_log.foreign(console.url) == []


class _ro:
    """Open the tiny store read-only for a moment (closed before the console opens it)."""

    def __init__(self, path):
        self.store = Store(path, read_only=True)

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc):
        self.store.close()
