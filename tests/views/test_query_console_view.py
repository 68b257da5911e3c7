"""The query console's cells without a browser: run, reorder, delete, save, open, pin."""
from __future__ import annotations

import asyncio
import concurrent.futures

from sources.base import Source
from sources.store.snapshot import open_read_only
from tests.conftest import rendered
from views.query_console import PinnedConsole, QueryConsole


def run_coroutine(coro):
    """Run a coroutine to completion on a thread of its own: in the full suite the
    session-wide Playwright browser keeps an event loop running on the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sqls(console):
    return [cell.current_sql() for cell in console.query_cells]


def test_cells_run_show_and_reorder(store):
    console = QueryConsole(source=Source(store=store), cells=[
        {"sql": "SELECT city, count(*) AS n FROM counties GROUP BY 1"},
        {"sql": "SELECT lon, lat, risk_level FROM risk_points"},
        {"sql": "DROP TABLE counties"},
        {"sql": "SELECT nope FROM counties"},
    ])
    results = console.run_all()
    assert [r.status for r in results] == ["ok", "ok", "refused", "error"]
    cells = console.query_cells
    assert cells[0]._chart.visible and cells[1]._chart.visible      # bars, map
    assert not cells[2]._chart.visible and "DROP" in cells[2]._status.object
    assert "nope" in cells[3]._status.object
    assert store.scalar("SELECT count(*) FROM counties") > 0
    console.move(0, "down")
    assert sqls(console)[1].startswith("SELECT city")
    console.move(1, "up")
    console.move(3, "delete")
    assert len(console.query_cells) == 3
    console.add_cell("SELECT 1 AS one")
    assert run_coroutine(console.query_cells[-1].run_async()).ok
    page = rendered(console)
    assert "SELECT 1 AS one" in page["text"] and page["rows"] >= 1


def test_save_open_pin_and_pinned_view(store):
    source = Source(store=store)
    console = QueryConsole(source=source, cells=[{"sql": "SELECT 42 AS answer", "title": "t"}],
                           user="analyst", can_pin=True)
    assert not console.save("")                      # a name is needed
    assert not console.pin(True)                     # pin saves first: it needs the name too
    console._name.value = "县区 <b>概况</b>"           # shown as text, not HTML
    assert console.pin(True)
    other = QueryConsole(source=source)
    assert other.open("县区 <b>概况</b>")
    assert sqls(other) == ["SELECT 42 AS answer"]
    assert not other.open("no such console")
    pinned = PinnedConsole(source=source)
    assert "县区 &lt;b&gt;概况&lt;/b&gt;" in rendered(pinned)["text"]  # its name, as text
    assert pinned._cells[0].result.table.column("answer")[0].as_py() == 42
    assert "<b>概况</b>" not in pinned._layout[0].object and "&lt;b&gt;" in pinned._layout[0].object


def test_saving_on_a_snapshot_says_it_is_read_only(tiny_db):
    store = open_read_only(tiny_db)
    try:
        console = QueryConsole(source=Source(store=store), console_name="x")
        assert not console.save()
        assert "read-only" in console._message.object or "只读" in console._message.object
        assert console.run_all()[0].status in ("ok", "refused")
    finally:
        store.close()


def test_saved_console_rights_are_passed_on_and_refusals_said(store):
    """Owner and pin right, through the view: a clear message each time, nothing changed."""
    source = Source(store=store)
    alice = QueryConsole(source=source, cells=[{"sql": "SELECT 1 AS one"}], user="alice",
                         lang="en")
    assert alice.save("alice's")
    assert not alice.pin(True)                       # no pin right: refused before saving
    assert "pin right" in alice._message.object and not alice.saved.is_pinned("alice's")
    lead = QueryConsole(source=source, user="lead", can_pin=True, lang="en")
    assert lead.open("alice's")
    assert not lead.save()                           # the pin right does not make an owner
    assert "belongs to another user" in lead._message.object
    lead._saved_select.value = "alice's"
    lead.delete_saved()
    assert "belongs to another user" in lead._message.object
    assert lead.saved.names() == ["alice's"]
    assert lead.saved.owner("alice's") == "alice"
    lead.saved.pin("alice's", user="lead", can_pin=True)
    alice.query_cells[0].set_sql("SELECT 2 AS two")
    assert not alice.save()                          # pinned: changing it needs the right
    assert "is pinned" in alice._message.object
    assert alice.saved.load("alice's")[0]["sql"] == "SELECT 1 AS one"
    assert alice.pin(False)                          # the owner may take it down
    assert not alice.saved.is_pinned("alice's")
    admin = QueryConsole(source=source, user="root", is_admin=True, lang="en")
    admin._saved_select.value = "alice's"
    admin.delete_saved()
    assert admin.saved.names() == []


def test_every_refusal_code_has_a_message_in_both_languages():
    from sources.analysis.sql_guard import REFUSAL_CODES
    from views.i18n import LABELS

    missing = [code for code in REFUSAL_CODES if f"console.refused.{code}" not in LABELS]
    assert not missing, missing


def test_a_result_cut_by_bytes_says_so_and_when_the_data_was_taken(store):
    console = QueryConsole(source=Source(store=store), lang="en",
                           cells=[{"sql": "SELECT repeat('x', 1000) AS s FROM range(5000)"}])
    console.runner.byte_limit = 100_000
    result = console.run_all()[0]
    assert result.ok and result.cut == "bytes" and 0 < result.table.num_rows < 5000
    text = console.query_cells[0]._status.object
    assert "result limit" in text and "data as of" in text
