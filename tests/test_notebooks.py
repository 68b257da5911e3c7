"""Notebooks run under a real Jupyter kernel (nbclient): the analysts' examples, the notebook
dashboards and the README's recipe. Each view's output carries its rendered Panel/Bokeh model,
and each executed notebook renders with no network: exported to HTML (nbconvert) and opened in
Debian's Chromium with every outside request aborted, its figures are drawn and its tables
filled from resources sent inline (``views.notebook_extension``)."""
from __future__ import annotations

import colorsys
import copy
import json
import re
import shutil
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from sources.levels import COLORS
from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.slow

LOAD = "application/vnd.holoviews_load.v0+json"   # pn.extension(): the JS of the models
EXEC = "application/vnd.holoviews_exec.v0+json"   # a displayed Panel object (its Bokeh model)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, tiny_db_template):
    """A kernel spec running this very interpreter (the project's venv), on the tiny store."""
    tmp = tmp_path_factory.mktemp("kernel")
    db = tmp / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    spec = tmp / "jupyter" / "kernels" / "console-venv"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "console venv", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
        mp.setenv("CONSOLE_DB", str(db))
        mp.setenv("PYTHONPATH", str(ROOT))
        mp.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        yield "console-venv"


def run_notebook(path, kernel, cwd=None):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=240,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    client.execute()
    return nb


@pytest.fixture(scope="module")
def executed(kernel):
    """``executed(path, cwd=None)``: the notebook run once per module (the views' notebook
    takes a minute on two cores); the kernel tests read its outputs, the browser tests
    render the same run."""
    runs: dict = {}

    def run(path, cwd=None):
        key = (str(path), str(cwd))
        if key not in runs:
            runs[key] = run_notebook(path, kernel, cwd)
        return runs[key]

    return run


VIEWS_NOTEBOOK = ROOT / "examples" / "views_in_jupyter.ipynb"
COUNTY_NOTEBOOK = ROOT / "dashboards" / "notebooks" / "county_overview.ipynb"


def mimetypes(cell) -> set[str]:
    return {m for out in cell.get("outputs", []) for m in out.get("data", {})}


def text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream")


def cell_with(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def test_views_in_jupyter_notebook(executed):
    nb = executed(VIEWS_NOTEBOOK)
    assert LOAD in mimetypes(nb.cells[1]), "notebook_extension() did not load the models' JS"
    assert "True" in text(nb.cells[1])  # the store is read-only
    statuses = cell_with(nb, "console.run_all()").outputs[0]["data"]["text/plain"]
    assert statuses == "['ok', 'ok', 'refused']"
    for last in ("console", "RiskPointMap(source=RiskSource(store=store))", "mine"):
        cell = next(c for c in nb.cells
                    if c.cell_type == "code" and c.source.strip().splitlines()[-1] == last)
        assert EXEC in mimetypes(cell), f"no rendered model for {last!r}"
    # every view of views/: a name, then its rendered model
    sweep = cell_with(nb, "concrete_views()")
    failed = [line for line in text(sweep).splitlines() if line.startswith("FAILED")]
    assert not failed, "views that do not build in a notebook:\n" + "\n".join(failed)
    # one rendered model per view named; the kernel may interleave or merge its stream and
    # display messages, so the outputs are counted, not paired by position
    names = [line[5:] for line in text(sweep).splitlines() if line.startswith("VIEW ")]
    rendered = [out for out in sweep.outputs
                if out.get("output_type") == "display_data" and EXEC in out.get("data", {})]
    assert len(names) >= 10, names
    assert len(rendered) == len(names), (len(rendered), names)
    assert {"QueryConsole", "PinnedConsole", "RiskPointMap"} <= set(names), names
    # interactive: a parameter change updates the view in the kernel
    cities = cell_with(nb, "mine.city = ").outputs[0]["data"]["text/plain"]
    assert cities == "['青岛市']"


def test_county_overview_notebook_dashboard_runs_in_jupyter(executed):
    nb = executed(COUNTY_NOTEBOOK, cwd=ROOT)
    assert LOAD in mimetypes(nb.cells[1])
    assert "'ok'" in cell_with(nb, "runner.run(COUNTY_SQL)").outputs[0]["data"]["text/plain"]
    assert EXEC in mimetypes(cell_with(nb, "dashboard.servable()"))


def test_notebook_dashboards_are_listed_and_built():
    from dashboards.notebooks_served import notebook_apps, notebook_code, notebook_routes

    routes = dict(notebook_routes("en"))
    assert routes["notebook-county_overview"] == "County overview"
    assert dict(notebook_routes("zh"))["notebook-county_overview"] == "县区概况"
    from sources.console import Console

    console = Console.open(":memory:", load_layers=False)
    apps = notebook_apps(console)
    assert set(apps) == set(routes)
    assert {title for _, title in apps.values()} == set(dict(notebook_routes("zh")).values())
    console.stop()
    code = notebook_code(ROOT / "dashboards" / "notebooks" / "county_overview.ipynb")
    compile(code, "county_overview", "exec")


# ---------------------------------------------------------------------- rendered offline
PAGE = "http://127.0.0.1:1/notebook.html"  # answered by the test itself, never by a server

#: nbconvert's own page loads require.js, MathJax and Mermaid from public CDNs. They are not
#: the notebook's and JupyterLab has none of them, so the export leaves them out: every
#: request the page makes is then the notebook's own.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock -%}
{%- block html_head_js_mathjax -%}{%- endblock -%}
{%- block html_head_js_mermaidjs -%}{%- endblock -%}
"""

#: What the page drew: Bokeh's version, every output root and whether BokehJS built a view
#: for it, every figure (its canvases' pixels: area, "ink" = pixels other than the most
#: common colour, and saturated pixels per risk-colour hue) and every Tabulator's rows ({field: text}).
PROBE = """(hues) => {
  const walk = (start, keep) => {
    const found = [], stack = [start];
    while (stack.length) {
      const node = stack.pop();
      if (node.shadowRoot) stack.push(node.shadowRoot);
      for (const child of node.children || []) stack.push(child);
      if (keep(node)) found.push(node);
    }
    return found;
  };
  const has = (cls) => (n) => n.classList && n.classList.contains(cls);
  const hueOf = (r, g, b) => {
    const mx = Math.max(r, g, b), mn = Math.min(r, g, b), d = mx - mn;
    if (d < 60) return null;  // greys: outlines, axes, background
    let h = mx === r ? ((g - b) / d) % 6 : mx === g ? (b - r) / d + 2 : (r - g) / d + 4;
    return (h * 60 + 360) % 360;
  };
  const figure = (div) => {
    const counts = new Map(), byHue = {};
    let area = 0;
    for (const name of Object.keys(hues)) byHue[name] = 0;
    for (const canvas of walk(div, (n) => n.tagName === 'CANVAS')) {
      const ctx = canvas.width && canvas.height ? canvas.getContext('2d') : null;
      if (!ctx) continue;
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] === 0) continue;
        area++;
        const key = (px[i] >> 3) << 10 | (px[i + 1] >> 3) << 5 | (px[i + 2] >> 3);
        counts.set(key, (counts.get(key) || 0) + 1);
        const h = hueOf(px[i], px[i + 1], px[i + 2]);
        if (h === null) continue;
        for (const [name, want] of Object.entries(hues)) {
          if (Math.min(Math.abs(h - want), 360 - Math.abs(h - want)) < 8) byHue[name]++;
        }
      }
    }
    const background = Math.max(0, ...counts.values());
    return {width: div.clientWidth, height: div.clientHeight, area, ink: area - background,
            hues: byHue};
  };
  const views = window.Bokeh ? Object.keys(Bokeh.index) : [];
  return {
    bokeh: window.Bokeh ? Bokeh.version : null,
    roots: [...document.querySelectorAll('[data-root-id]')].map(
      (el) => ({id: el.dataset.rootId, view: views.includes(el.dataset.rootId)})),
    figures: walk(document, has('bk-Canvas')).map(figure),
    tables: walk(document, has('tabulator')).map((t) => [...t.querySelectorAll('.tabulator-row')]
      .map((row) => Object.fromEntries([...row.querySelectorAll('.tabulator-cell[tabulator-field]')]
        .map((c) => [c.getAttribute('tabulator-field'), c.textContent.trim()])))),
  };
}"""


def hue(color: str) -> float:
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


#: Hues of the four official risk colours (blended with the map's background, a point keeps
#: its hue while its value and saturation change).
RISK_HUES = {level: hue(color) for level, color in COLORS.items()}


def export_html(nb) -> str:
    """The executed notebook as one HTML page (what "File → Save and Export as HTML" does)."""
    import jinja2
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # HoloViews' display hook also publishes outputs with no data at all
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs
                            if out.get("output_type") != "display_data" or out.get("data")]
    exporter = HTMLExporter(template_name="lab", template_file="offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb)
    return body


def render_offline(browser, nb, ready) -> dict:
    """Open the exported notebook in Chromium with every outside request aborted and recorded.

    Returns :data:`PROBE`'s answer once BokehJS built every root and ``ready(probe)`` holds
    (or after 120 s), with
    ``outside`` (requests aborted), ``sockets`` (websockets opened) and ``errors`` (page
    errors) added.
    """
    html = export_html(nb)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url == PAGE:
            request_route.fulfill(status=200, body=html, content_type="text/html; charset=utf-8")
        elif url.startswith(PAGE.rsplit("/", 1)[0] + "/"):  # local: what a Jupyter server would 404
            local.append(url)
            request_route.fulfill(status=404, body="")
        else:
            outside.append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    sockets: list[str] = []
    errors: list[str] = []
    local: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # console errors (a script or a resource that failed); warnings are held to zero on the
    # console's own pages (tests/ui/test_clean_logs_ui.py): in a notebook each multi-choice
    # still gets Choices.js' allowHTML notice, the fix being a script of the served pages
    page.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text}")
            if msg.type == "error" else None)
    try:
        page.goto(PAGE, wait_until="load", timeout=120_000)
        seen: dict = {}

        def drawn():
            seen.update(page.evaluate(PROBE, RISK_HUES))
            return (all(root["view"] for root in seen["roots"])
                    and not blank_figures(seen["figures"])[1] and ready(seen))

        try:
            wait_until(drawn, timeout=120, interval=1.0)
        except AssertionError:
            pass  # the assertions below say what is missing
        return {**seen, "outside": outside, "sockets": sockets, "errors": errors, "local": local}
    finally:
        context.close()


def blank_figures(figures: list[dict]) -> tuple[list[dict], list[dict]]:
    """The figures of a real size, and those of them that drew nothing but background (a
    figure squeezed to a strip, a stretch_both map with no height, has no room to draw)."""
    sized = [f for f in figures if f["width"] >= 100 and f["height"] >= 100]
    return sized, [f for f in sized if f["ink"] < 0.005 * f["area"]]


def exec_outputs(nb) -> int:
    """How many Panel objects the notebook displayed (each one is a Bokeh root on the page)."""
    return sum(EXEC in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


def assert_rendered_offline(nb, seen: dict) -> list[dict]:
    """No outside request, BokehJS built a view for every displayed object, and every figure
    of a real size drew more than its background. Returns those figures."""
    assert seen["outside"] == [], f"requests that left the machine: {seen['outside']}"
    assert seen["sockets"] == [], seen["sockets"]
    assert seen["errors"] == [], f"page and console errors: {seen['errors']}"
    import bokeh

    assert seen.get("bokeh") == bokeh.__version__, "BokehJS did not load from the notebook"
    roots = seen["roots"]
    assert len(roots) == exec_outputs(nb), (len(roots), exec_outputs(nb))
    assert all(root["view"] for root in roots), [r for r in roots if not r["view"]]
    figures, blank = blank_figures(seen["figures"])
    assert figures and not blank, f"figures drawn blank: {blank} of {len(figures)}"
    return figures


def shows_every_risk_colour(figure: dict) -> bool:
    return all(figure["hues"][level] > 0 for level in COLORS)


@pytest.mark.ui
def test_county_overview_renders_with_no_network(executed, browser):
    nb = executed(COUNTY_NOTEBOOK, cwd=ROOT)

    def ready(seen):
        return (any(f["hues"]["red"] > 2000 for f in seen.get("figures", []))
                and any(len(rows) == 15 for rows in seen.get("tables", [])))

    seen = render_offline(browser, nb, ready)
    figures = assert_rendered_offline(nb, seen)
    # the bars of major risk points per city, in the official red
    assert max(f["hues"]["red"] for f in figures) > 2000, figures
    # the county table, first page of 15, most red points first
    table = next(rows for rows in seen["tables"] if len(rows) == 15)
    assert all(row["city"].endswith("市") for row in table), table
    red = [int(row["red"]) for row in table]
    assert red == sorted(red, reverse=True) and red[0] > 0, red


@pytest.mark.ui
def test_views_notebook_renders_with_no_network(executed, browser):
    nb = executed(VIEWS_NOTEBOOK)

    def ready(seen):
        return (any(shows_every_risk_colour(f) for f in seen.get("figures", []))
                and any(len(rows) == 4 for rows in seen.get("tables", [])))

    seen = render_offline(browser, nb, ready)
    figures = assert_rendered_offline(nb, seen)
    assert len(figures) >= 8, figures
    # the risk map: points of all four grades drawn in their colours
    risk = [f for f in figures if shows_every_risk_colour(f)]
    assert risk, [f["hues"] for f in figures]
    # the query console's first cell: points by grade, one row per grade
    grades = [rows for rows in seen["tables"]
              if {row.get("risk_level") for row in rows} == set(COLORS)]
    assert grades, seen["tables"]
    assert sum(len(rows) > 0 for rows in seen["tables"]) >= 6, seen["tables"]


def readme_recipe() -> str:
    """The README's "Read the store from Jupyter" recipe: its Python block showing a view."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return next(block for block in re.findall(r"```python\n(.*?)```", text, re.S)
                if "RiskPointMap(" in block)


@pytest.mark.ui
def test_readme_recipe_renders_with_no_network(executed, browser, tmp_path, tiny_db):
    (tmp_path / "var").mkdir()
    shutil.copy2(tiny_db, tmp_path / "var" / "console.duckdb")  # the recipe's own path
    path = tmp_path / "recipe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(readme_recipe())]),
                   path)
    nb = executed(path, cwd=tmp_path)
    assert EXEC in mimetypes(nb.cells[0]), "the recipe displayed no view"
    seen = render_offline(browser, nb, lambda seen: any(
        shows_every_risk_colour(f) for f in seen.get("figures", [])))
    figures = assert_rendered_offline(nb, seen)
    assert any(shows_every_risk_colour(f) for f in figures), [f["hues"] for f in figures]
