"""Notebooks run under a real Jupyter kernel (nbclient): the analysts' examples and the
notebook dashboards. Each view's output carries its rendered Panel/Bokeh model."""
from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

LOAD = "application/vnd.holoviews_load.v0+json"   # pn.extension(): the JS of the models
EXEC = "application/vnd.holoviews_exec.v0+json"   # a displayed Panel object (its Bokeh model)


@pytest.fixture
def kernel(tmp_path, monkeypatch, tiny_db):
    """A kernel spec running this very interpreter (the project's venv), on the tiny store."""
    spec = tmp_path / "jupyter" / "kernels" / "console-venv"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "console venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("CONSOLE_DB", str(tiny_db))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return "console-venv"


def run_notebook(path, kernel, cwd=None):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=240,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    client.execute()
    return nb


def mimetypes(cell) -> set[str]:
    return {m for out in cell.get("outputs", []) for m in out.get("data", {})}


def text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream")


def cell_with(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def test_views_in_jupyter_notebook(kernel):
    nb = run_notebook(ROOT / "examples" / "views_in_jupyter.ipynb", kernel)
    assert LOAD in mimetypes(nb.cells[1]), "pn.extension() did not load the models' JS"
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


def test_county_overview_notebook_dashboard_runs_in_jupyter(kernel):
    path = ROOT / "dashboards" / "notebooks" / "county_overview.ipynb"
    nb = run_notebook(path, kernel, cwd=ROOT)
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
