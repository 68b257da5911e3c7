"""``/``: the index of the console's apps and the analysts' notebook dashboards."""
from __future__ import annotations

import html
from typing import ClassVar

from views.panes import HTML

from .base import Dashboard
from .theme import page


def notebook_pages() -> list[tuple[str, str]]:
    """(route, title) of the notebook dashboards served beside the apps (none by default)."""
    try:
        from .notebooks_served import notebook_routes
    except ImportError:
        return []
    return notebook_routes()


class IndexPage(Dashboard):
    """The console's home page: one card per app, then the notebook dashboards."""

    route: ClassVar[str] = ""
    title_key: ClassVar[str] = "console.title"
    order: ClassVar[int] = 0

    def layout(self):
        from . import discover

        cards = []
        for cls in discover():
            if cls.route in ("", None) or cls.description_key is None:
                continue
            cards.append(
                f'<a class="app-card" href="./{cls.route}?lang={self.lang}">'
                f"<h3>{html.escape(self.t(cls.title_key))}</h3>"
                f"<p>{html.escape(self.t(cls.description_key))}</p></a>"
            )
        cards.append(
            f'<a class="app-card" href="./health"><h3>{self.t("app.health")}</h3>'
            f'<p>{self.t("app.health.desc")}</p></a>'
        )
        notebooks = "".join(
            f'<li><a href="./{route}?lang={self.lang}">{html.escape(title)}</a></li>'
            for route, title in notebook_pages()
        )
        body = (
            f'<div class="index"><h2>{self.t("index.apps")}</h2>'
            f'<div class="cards">{"".join(cards)}</div>'
            + (f'<h2>{self.t("index.notebooks")}</h2><ul class="notebooks">{notebooks}</ul>'
               if notebooks else "")
            + "</div>"
        )
        main = HTML(body, sizing_mode="stretch_width", stylesheets=[INDEX_CSS])
        return page(self.t("console.title"), main, lang=self.lang, route=None)


INDEX_CSS = """
.index { padding: 16px 24px; }
.index h2 { font-size: 18px; color: #0f2747; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 16px; }
.app-card { display: block; padding: 16px; border-radius: 8px; background: #fff;
  border: 1px solid #d7dee8; color: #1f2937; text-decoration: none; }
.app-card:hover { border-color: #2f6fd6; box-shadow: 0 2px 8px rgba(0,0,0,.08); }
.app-card h3 { margin: 0 0 8px; color: #0f2747; font-size: 17px; }
.app-card p { margin: 0; color: #4b5563; font-size: 14px; }
"""
