"""Notebook dashboards: every ``dashboards/notebooks/*.ipynb`` is served as a page.

An analyst drops a notebook in ``dashboards/notebooks/``; on the next start the console
serves it at ``/notebook-<file stem>`` and lists it on ``/``. For each session the
notebook's code cells run in a fresh namespace, in the console process, and whatever the
notebook marks ``.servable()`` (or passes to ``display``) becomes the page, under the
console's header. ``sources.store.snapshot.notebook_source`` gives the notebook the console's live
store when served and a read-only snapshot in Jupyter, so the same code runs in both.

The title comes from the notebook's metadata ``{"console": {"title": {"zh": ..., "en": ...}}}``,
else its first markdown heading, else its file name.
"""
from __future__ import annotations

import html
import json
import traceback
from pathlib import Path

import panel as pn

from views.i18n import session_lang
from views.panes import HTML

NOTEBOOK_DIR = Path(__file__).resolve().with_name("notebooks")
ROUTE_PREFIX = "notebook-"


def notebook_paths(directory: str | Path | None = None) -> list[Path]:
    """The notebooks served, sorted by file name."""
    folder = Path(directory) if directory else NOTEBOOK_DIR
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def notebook_title(path: str | Path, lang: str = "zh") -> str:
    """The title of a notebook dashboard in ``lang``."""
    path = Path(path)
    try:
        nb = _read(path)
    except (OSError, ValueError):
        return path.stem
    titles = (nb.get("metadata", {}).get("console", {}) or {}).get("title", {})
    if isinstance(titles, dict) and titles.get(lang):
        return str(titles[lang])
    if isinstance(titles, str) and titles:
        return titles
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem.replace("_", " ")


def notebook_route(path: str | Path) -> str:
    """The route a notebook is served at (flat, so the header's relative links work)."""
    return ROUTE_PREFIX + Path(path).stem


def notebook_routes(lang: str | None = None) -> list[tuple[str, str]]:
    """``(route, title)`` of every notebook dashboard, for the index page.

    ``lang`` defaults to the current page's language (``?lang=``), else Chinese.
    """
    lang = lang or session_lang("zh")
    return [(notebook_route(p), notebook_title(p, lang)) for p in notebook_paths()]


def notebook_code(path: str | Path) -> str:
    """The notebook's code cells as one script (IPython magics and shell lines dropped)."""
    lines: list[str] = []
    for cell in _read(Path(path)).get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for line in _source(cell).splitlines():
            stripped = line.lstrip()
            if stripped.startswith(("%", "!")):
                continue
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def notebook_app(path: str | Path, console):
    """The function Panel calls per session to build the notebook's page."""
    path = Path(path)

    def create():
        from .theme import page

        lang = session_lang(console.lang)
        # the console's header row only: the page shell would take the whole viewport
        header = page(notebook_title(path, lang), pn.Spacer(height=0), lang=lang)[0]
        header.servable()
        doc = pn.state.curdoc
        before = set(doc.roots) if doc is not None else set()
        shown: list = []

        def display(*objs, **_kw):  # what ``display(...)`` does in Jupyter
            for obj in objs:
                shown.append(pn.panel(obj).servable())

        namespace = {"__name__": "__main__", "__file__": str(path), "display": display}
        try:
            with console.serving():
                exec(compile(notebook_code(path), str(path), "exec"), namespace)
        except Exception:
            detail = html.escape(traceback.format_exc(limit=6))
            HTML(f'<pre class="notebook-error">{detail}</pre>',
                 sizing_mode="stretch_width").servable()
        if doc is not None:  # the notebook's first displayed root is the page's main region
            content = [r for r in doc.roots if r not in before and hasattr(r, "html_attributes")]
            if content:
                content[0].html_attributes = {**content[0].html_attributes, "role": "main"}
        return None

    create.__name__ = f"notebook_{path.stem}"
    return create


def notebook_apps(console, directory: str | Path | None = None) -> dict:
    """``{route: (app, title)}`` of every notebook dashboard, served for ``console``."""
    return {notebook_route(p): (notebook_app(p, console), notebook_title(p, console.lang))
            for p in notebook_paths(directory)}
