"""The query console: a notebook-like page of read-only SQL cells over the store.

Each cell runs on demand (in a worker thread, so *Cancel* stays live) and shows its result as
a table and, where the columns allow, a chart (a number against a category or a time) or a
map (columns ``lon``/``lat``; rasterised with datashader when large). Cells can be added,
moved and deleted; a console is saved under a name, reopened, and pinned to the
pinned-analyses dashboard. Queries run in the sandbox processes of
:mod:`sources.analysis.sandbox`; the limits and the saved consoles' rules (owner, pin right)
live in :mod:`sources.analysis.query_console`: this view passes the user's rights along.
"""
from __future__ import annotations

import asyncio
import html
from urllib.parse import quote

import pandas as pd
import panel as pn
import param
import pyarrow as pa

from sources.analysis.query_console import (
    QueryResult,
    QueryRunner,
    SavedConsoleRefused,
    SavedConsoles,
)
from sources.analysis.sandbox import Sandbox

from .base import View
from .i18n import t
from .panes import HTML
from .result_chart import RASTERISE_ABOVE, chart_element, chart_spec

__all__ = ["RASTERISE_ABOVE", "PinnedConsole", "QueryCell", "QueryConsole", "chart_element",
           "chart_spec"]

#: Seconds a click waits for the editor's debounced text to reach the server.
EDIT_SETTLE_S = 0.2

CSS = """
:host { width: 100%; }
.qc-status { font-size: 13px; padding: 4px 8px; border-radius: 4px; white-space: pre-wrap; }
.qc-ok { color: #14532d; background: #ecfdf5; }
.qc-running { color: #1e3a8a; background: #eff6ff; }
.qc-refused { color: #7c2d12; background: #fff7ed; border: 1px solid #fdba74; }
.qc-error, .qc-timeout, .qc-cancelled { color: #7f1d1d; background: #fef2f2;
  border: 1px solid #fca5a5; }
.qc-note { color: #374151; background: #f3f4f6; }
"""
EDITOR_CSS = ":host textarea { font-family: 'DejaVu Sans Mono', monospace; font-size: 13px; }"
CELL_CSS = ":host { border: 1px solid #d7dee8; border-radius: 8px; background: #fff; }"


def _unique_columns(table: pa.Table) -> pa.Table:
    seen: dict[str, int] = {}
    names = []
    for name in table.column_names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        names.append(name if n == 0 else f"{name}_{n}")
    return table.rename_columns(names)


# ---------------------------------------------------------------------- one cell
class QueryCell(pn.viewable.Viewer):
    """One SQL cell: editor, run/cancel, then table, chart or map, and messages."""

    sql = param.String(default="", doc="The cell's query (one read-only statement).")
    title = param.String(default="", doc="An optional title shown above the cell.")
    row_limit = param.Integer(default=10_000, bounds=(1, 5_000_000),
                              doc="At most this many rows come back.")
    editable = param.Boolean(default=True, doc="Show the editor and buttons (False: results only).")
    lang = param.Selector(default="zh", objects=["zh", "en"], doc="Interface language.")
    result = param.Parameter(default=None, doc="The last QueryResult (read-only).")

    def __init__(self, *, runner: QueryRunner, on_action=None, **params):
        super().__init__(**params)
        self.runner = runner
        self._on_action = on_action or (lambda cell, action: None)
        self._runs = 0
        self._title = pn.widgets.TextInput(
            value=self.title, placeholder=self.t("console.title_placeholder"),
            sizing_mode="stretch_width", css_classes=["qc-title"])
        self._editor = pn.widgets.TextAreaInput(
            value=self.sql, value_input=self.sql, rows=4,
            placeholder=self.t("console.sql_placeholder"),
            auto_grow=True, sizing_mode="stretch_width", css_classes=["qc-sql"],
            stylesheets=[EDITOR_CSS])
        self._run_btn = pn.widgets.Button(label=self.t("console.run"), color="primary",
                                          width=90, css_classes=["qc-run"])
        self._cancel_btn = pn.widgets.Button(label=self.t("console.cancel"), width=90,
                                             disabled=True, css_classes=["qc-cancel"])
        self._limit = pn.widgets.IntInput(label=self.t("console.row_limit"),
                                          value=self.row_limit, start=1, end=5_000_000,
                                          step=1000, width=120)
        self._buttons = [pn.widgets.Button(label=self.t(f"console.{a}"), width=70,
                                           css_classes=[f"qc-{a}"]) for a in ("up", "down", "delete")]
        self._run_btn.on_click(self._on_run)
        self._cancel_btn.on_click(lambda _e: self.runner.cancel())
        for button, action in zip(self._buttons, ("up", "down", "delete"), strict=True):
            button.on_click(lambda _e, a=action: self._on_action(self, a))
        self._heading = HTML("", visible=bool(self.title) and not self.editable,
                             sizing_mode="stretch_width")
        self._status = HTML("", sizing_mode="stretch_width", stylesheets=[CSS],
                            css_classes=["qc-status-pane"], visible=False)
        self._table = pn.widgets.Tabulator(
            pd.DataFrame(), pagination="remote", page_size=12, disabled=True, visible=False,
            sizing_mode="stretch_width", css_classes=["qc-table"], show_index=False)
        self._chart = pn.pane.HoloViews(None, visible=False, sizing_mode="stretch_width",
                                        min_height=360, css_classes=["qc-chart"])
        controls = pn.Row(self._run_btn, self._cancel_btn, self._limit, pn.layout.HSpacer(),
                          *self._buttons, sizing_mode="stretch_width", visible=self.editable)
        editors = pn.Column(self._title, self._editor, sizing_mode="stretch_width",
                            visible=self.editable, margin=0)
        self._layout = pn.Column(
            self._heading, editors, controls, self._status,
            pn.Row(self._table, self._chart, sizing_mode="stretch_width"),
            sizing_mode="stretch_width", css_classes=["qc-cell"], stylesheets=[CELL_CSS])
        if self.title:
            self._heading.object = f"<h3>{html.escape(self.title)}</h3>"

    def __panel__(self):
        return self._layout

    def t(self, key: str, **fmt) -> str:
        """The label ``key`` in this cell's language."""
        return t(key, self.lang, **fmt)

    # ------------------------------------------------------------------ running
    def current_sql(self) -> str:
        """The text in the editor now (keystrokes included)."""
        value = self._editor.value_input
        return value if value is not None else self._editor.value

    def set_sql(self, sql: str) -> None:
        """Replace the cell's query (as if typed)."""
        self.sql = sql
        self._editor.param.update(value=sql, value_input=sql)

    def cell(self) -> dict:
        """The cell as saved: ``{'sql', 'title'}``."""
        return {"sql": self.current_sql(), "title": self._title.value}

    def run_now(self) -> QueryResult:
        """Run synchronously (notebooks, pinned dashboards) and show the result."""
        self.sql = self.current_sql()
        result = self.runner.run(self.sql, row_limit=self._limit.value)
        self.show(result)
        return result

    async def run_async(self) -> QueryResult | None:
        """Run in a worker thread, keeping the page responsive (Cancel works meanwhile)."""
        if self._run_btn.disabled:
            return None
        self.sql = self.current_sql()
        self._run_btn.disabled, self._cancel_btn.disabled = True, False
        self._set_status("running", self.t("console.running"))
        try:
            result = await asyncio.to_thread(self.runner.run, self.sql,
                                             row_limit=self._limit.value)
        finally:
            self._run_btn.disabled, self._cancel_btn.disabled = False, True
        self.show(result)
        return result

    async def _on_run(self, _event=None):
        # Panel debounces the editor's text (50 ms) but not the click: let the text land first
        await asyncio.sleep(EDIT_SETTLE_S)
        await self.run_async()

    # ------------------------------------------------------------------ showing
    def _set_status(self, kind: str, text: str) -> None:
        # data-run counts finished runs, so a test (or a script) can wait for the next one
        self._status.object = (f'<div class="qc-status qc-{kind}" data-status="{kind}" '
                               f'data-run="{self._runs}">{html.escape(text)}</div>')
        self._status.visible = True

    def show(self, result: QueryResult) -> None:
        """Show a result: status line, table, chart or map."""
        self.result = result
        self._runs += 1
        if result.status == "refused":
            self._set_status("refused", self.t(f"console.refused.{result.code}",
                                                detail=result.message))
        elif result.status == "timeout":
            self._set_status("timeout", self.t("console.timeout",
                                                s=result.extra.get("time_limit_s", 0)))
        elif result.status == "cancelled":
            self._set_status("cancelled", self.t("console.cancelled"))
        elif result.status == "error":
            self._set_status("error", f"{self.t('console.error')}: {result.message}")
        if not result.ok:
            # empty the table rather than hide it: Tabulator does not redraw once re-shown
            if self._table.visible:
                self._table.value = pd.DataFrame()
            self._chart.object, self._chart.visible = None, False
            return
        table = _unique_columns(result.table)
        text = self.t("console.rows", n=table.num_rows, s=result.elapsed_s)
        if result.truncated and result.cut == "bytes":
            text += " · " + self.t("console.truncated_bytes", n=table.num_rows,
                                   mb=result.extra.get("byte_limit", 0) / 2**20)
        elif result.truncated:
            text += " · " + self.t("console.truncated", n=table.num_rows)
        as_of = result.extra.get("as_of")
        if as_of is not None:
            text += " · " + self.t("console.as_of", t=as_of.astimezone().strftime("%H:%M:%S"))
        self._set_status("ok", text)
        df = table.to_pandas()
        self._table.value = df
        self._table.visible = True
        spec = chart_spec(table.schema) if table.num_rows else None
        outlines = self.runner.outlines() if spec and spec["kind"] == "map" else None
        self._chart.object = chart_element(df, spec, outlines) if spec else None
        self._chart.visible = spec is not None


# ---------------------------------------------------------------------- the console
class QueryConsole(View):
    """A page of SQL cells over the store (read-only), saved and reopened by name.

    In a notebook: ``QueryConsole(source=Source.from_path("var/console.duckdb"))``.
    """

    view_type = "query_console"

    console_name = param.String(default="", doc="The name the console is saved under.")
    cells = param.List(default=[], doc="Cells to start with: dicts {'sql', 'title'}.")
    row_limit = param.Integer(default=10_000, bounds=(1, 5_000_000),
                              doc="Default row limit of new cells.")
    time_limit_s = param.Number(default=30.0, bounds=(0.1, 3600),
                                doc="Queries running longer are interrupted.")
    user = param.String(default=None, allow_None=True,
                        doc="Who saves (pn.state.user): the owner of what they save first.")
    can_pin = param.Boolean(default=False,
                            doc="The user holds the pin right (pin, unpin, change pinned).")
    is_admin = param.Boolean(default=False,
                             doc="The user is an administrator (changes anyone's console).")
    snapshots = param.Parameter(default=None, doc="The console's SnapshotWriter (optional).")
    sandbox = param.ClassSelector(class_=Sandbox, default=None, allow_None=True,
                                  doc="The console's sandbox processes (Sandbox.shared() if None).")

    def __init__(self, **params):
        super().__init__(**params)
        self.runner = QueryRunner(store=self.source.store, row_limit=self.row_limit,
                                  time_limit_s=self.time_limit_s, sandbox=self.sandbox,
                                  snapshots=self.snapshots)
        self.runner.on_run = self._record  # every console query is in the audit log
        self.saved = SavedConsoles(store=self.source.store)
        self._cells: list[QueryCell] = []
        self._column = pn.Column(sizing_mode="stretch_width", css_classes=["qc-cells"])
        self._name = pn.widgets.TextInput(label=self.t("console.name"), value=self.console_name,
                                          width=220, css_classes=["qc-name"])
        self._saved_select = pn.widgets.Select(label=self.t("console.saved"), width=220,
                                               options=self._saved_names(),
                                               css_classes=["qc-saved"])
        self._message = HTML("", sizing_mode="stretch_width", stylesheets=[CSS],
                             css_classes=["qc-message"])
        buttons = {key: pn.widgets.Button(label=self.t(f"console.{key}"), width=120,
                                          css_classes=[f"qc-{key}"])
                   for key in ("add", "run_all", "save", "open", "pin", "unpin",
                               "delete_saved", "snapshot")}
        buttons["add"].on_click(lambda _e: self.add_cell())
        buttons["run_all"].on_click(self._on_run_all)
        buttons["save"].on_click(lambda _e: self.save())
        buttons["open"].on_click(lambda _e: self.open(self._saved_select.value or ""))
        buttons["pin"].on_click(lambda _e: self.pin(True))
        buttons["unpin"].on_click(lambda _e: self.pin(False))
        buttons["delete_saved"].on_click(lambda _e: self.delete_saved())
        buttons["snapshot"].on_click(self._on_snapshot)
        buttons["snapshot"].visible = self.snapshots is not None
        help_text = HTML(f'<p class="qc-help">{html.escape(self.t("console.help"))}</p>',
                         sizing_mode="stretch_width")
        toolbar = pn.FlexBox(
            buttons["add"], buttons["run_all"], self._name, buttons["save"],
            self._saved_select, buttons["open"], buttons["pin"], buttons["unpin"],
            buttons["delete_saved"], buttons["snapshot"],
            sizing_mode="stretch_width", align_items="flex-end", css_classes=["qc-toolbar"])
        add_below = pn.widgets.Button(label=self.t("console.add"), width=120,
                                      css_classes=["qc-add-below"])
        add_below.on_click(lambda _e: self.add_cell())
        self._layout = pn.Column(help_text, toolbar, self._message, self._column, add_below,
                                 sizing_mode="stretch_width", css_classes=["query-console"])
        for cell in self.cells or [{"sql": "", "title": ""}]:
            self.add_cell(cell.get("sql", ""), cell.get("title", ""))

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ cells
    def add_cell(self, sql: str = "", title: str = "") -> QueryCell:
        """Append a cell."""
        cell = QueryCell(runner=self.runner, sql=sql, title=title, lang=self.lang,
                         row_limit=self.row_limit, on_action=self._cell_action)
        self._cells.append(cell)
        self._column.append(cell)
        return cell

    def _cell_action(self, cell: QueryCell, action: str) -> None:
        i = self._cells.index(cell)
        if action == "delete":
            self._cells.pop(i)
        elif action == "up" and i > 0:
            self._cells[i - 1], self._cells[i] = self._cells[i], self._cells[i - 1]
        elif action == "down" and i < len(self._cells) - 1:
            self._cells[i + 1], self._cells[i] = self._cells[i], self._cells[i + 1]
        self._column.objects = list(self._cells)

    def move(self, index: int, action: str) -> None:
        """Move the cell at ``index`` 'up' or 'down', or 'delete' it."""
        self._cell_action(self._cells[index], action)

    @property
    def query_cells(self) -> list[QueryCell]:
        """The cells, in order."""
        return list(self._cells)

    async def _on_run_all(self, _event=None):
        await asyncio.sleep(EDIT_SETTLE_S)
        for cell in list(self._cells):
            await cell.run_async()

    def run_all(self) -> list[QueryResult]:
        """Run every cell in order, synchronously (notebooks)."""
        return [cell.run_now() for cell in self._cells]

    # ------------------------------------------------------------------ saving
    def _saved_names(self) -> list[str]:
        try:
            return [""] + self.saved.names()
        except Exception:  # a snapshot from before the table existed
            return [""]

    def _say(self, kind: str, text: str) -> None:
        self._message.object = (f'<div class="qc-status qc-{kind}" data-status="{kind}">'
                                f"{html.escape(text)}</div>")

    def _record(self, sql: str, result) -> None:
        rows = 0 if result.table is None else result.table.num_rows
        self.guard.record("console.query", outcome="ok" if result.ok else "failed",
                          reason=None if result.ok else (result.code or result.status),
                          details={"sql": str(sql)[:4000], "status": result.status,
                                   "rows": rows})

    def _rights(self) -> dict:
        return {"user": self.user or "", "is_admin": self.is_admin}

    def _refused(self, exc: PermissionError) -> bool:
        if isinstance(exc, SavedConsoleRefused):
            self._say("refused", self.t(f"console.refused.{exc.code}", detail=exc.name))
        else:
            self._say("refused", self.t("console.read_only_store"))
        return False

    def save(self, name: str | None = None) -> bool:
        """Save the cells under ``name`` (default: the name box); False with a message if not."""
        name = (name if name is not None else self._name.value).strip()
        if not name:
            self._say("refused", self.t("console.need_name"))
            return False
        try:
            self.saved.save(name, [c.cell() for c in self._cells], can_pin=self.can_pin,
                            **self._rights())
        except PermissionError as exc:
            return self._refused(exc)
        self.console_name = self._name.value = name
        self._saved_select.options = self._saved_names()
        self._saved_select.value = name
        self._say("ok", self.t("console.saved_ok", name=name))
        return True

    def open(self, name: str) -> bool:
        """Replace the cells with those of the saved console ``name``."""
        try:
            cells = self.saved.load(name)
        except KeyError:
            self._say("refused", self.t("console.not_found", name=name))
            return False
        self._cells = []
        self._column.objects = []
        for cell in cells or [{"sql": ""}]:
            self.add_cell(cell.get("sql", ""), cell.get("title", ""))
        self.console_name = self._name.value = name
        self._say("ok", self.t("console.opened", name=name))
        return True

    def pin(self, pinned: bool = True) -> bool:
        """Save, then pin (or unpin) this console to the pinned-analyses dashboard.

        Pinning needs the pin right. Without it, the owner may still unpin (without saving:
        a pinned console is changed only with the pin right).
        """
        name = self._name.value.strip()
        if not name:
            self._say("refused", self.t("console.need_name"))
            return False
        may_pin = self.can_pin or self.is_admin
        if pinned and not may_pin:  # refused before anything is saved
            return self._refused(SavedConsoleRefused("pin_right", name))
        if may_pin and not self.save(name):
            return False
        try:
            self.saved.pin(name, pinned, can_pin=self.can_pin, **self._rights())
        except KeyError:
            self._say("refused", self.t("console.not_found", name=name))
            return False
        except PermissionError as exc:
            return self._refused(exc)
        self._say("ok", self.t("console.pinned_ok" if pinned else "console.unpinned_ok",
                               name=name))
        return True

    def delete_saved(self) -> None:
        """Delete the saved console selected in the list."""
        name = self._saved_select.value or self._name.value
        if not name:
            self._say("refused", self.t("console.need_name"))
            return
        try:
            self.saved.delete(name, **self._rights())
        except PermissionError as exc:
            self._refused(exc)
            return
        self._saved_select.options = self._saved_names()
        self._say("ok", self.t("console.deleted_ok", name=name))

    async def _on_snapshot(self, _event=None):
        if self.snapshots is None:
            self._say("refused", self.t("console.snapshot_none"))
            return
        path = await asyncio.to_thread(self.snapshots.write)
        self._say("ok", self.t("console.snapshot_ok", name=path.name))


class PinnedConsole(View):
    """A saved console's results, run when shown, without editors: put it on any dashboard.

    ``PinnedConsole(source=src, console_name="县区概况")``; with no name, every pinned console.
    """

    view_type = "pinned_console"

    console_name = param.String(default="", doc="The saved console to show ('' = all pinned).")
    time_limit_s = param.Number(default=15.0, bounds=(0.1, 3600), doc="Per-query time limit.")
    sandbox = param.ClassSelector(class_=Sandbox, default=None, allow_None=True,
                                  doc="The console's sandbox processes (Sandbox.shared() if None).")
    snapshots = param.Parameter(default=None, doc="The console's SnapshotWriter (optional).")

    def __init__(self, **params):
        super().__init__(**params)
        runner = QueryRunner(store=self.source.store, time_limit_s=self.time_limit_s,
                             sandbox=self.sandbox, snapshots=self.snapshots)
        saved = SavedConsoles(store=self.source.store)
        self._cells: list[QueryCell] = []
        names = [self.console_name] if self.console_name else saved.names(pinned_only=True)
        parts: list = []
        for name in names:
            try:
                cells = saved.load(name)
            except KeyError:
                parts.append(HTML(html.escape(self.t("console.not_found", name=name))))
                continue
            edit = f"./console?open={quote(name)}&lang={self.lang}"
            parts.append(HTML(
                f'<h2 class="qc-pinned-name">{html.escape(name)} '
                f'<a href="{html.escape(edit)}" style="font-size:13px">'
                f'{html.escape(self.t("console.edit"))}</a></h2>',
                sizing_mode="stretch_width"))
            for cell in cells:
                qc = QueryCell(runner=runner, sql=cell.get("sql", ""),
                               title=cell.get("title", ""), editable=False, lang=self.lang)
                self._cells.append(qc)
                parts.append(qc)
        if not parts:
            parts.append(HTML(f'<p class="qc-none">{html.escape(self.t("console.no_pinned"))}</p>',
                              sizing_mode="stretch_width"))
        self._layout = pn.Column(*parts, sizing_mode="stretch_width",
                                 css_classes=["pinned-consoles"])
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            pn.state.onload(self._run_async)  # served: the page shows first, results follow
        else:
            for cell in self._cells:  # a notebook or a test: run now
                cell.run_now()

    async def _run_async(self):
        for cell in self._cells:
            await cell.run_async()

    def __panel__(self):
        return self._layout
