"""``/board``: the command-hall situation board (综合态势大屏) for the video wall.

URL arguments: ``kiosk=1`` (no controls), ``layout=full|map|kpi|incidents``,
``rotate=SECONDS`` (cycle /board, /warnings, /risk, /inventory), ``layers=risk,alarms,...``,
``stale=SECONDS`` (data older than this shows red; default 20) and ``lang=zh|en``. Values
the wall cannot honour are clamped or replaced by their default, and the page says so.
The board itself is the view :class:`views.board.SituationBoard`.
"""
from __future__ import annotations

import html
from typing import ClassVar

import panel as pn

from views.board import CSS, LAYOUTS, SituationBoard
from views.board_map import LAYERS
from views.panes import HTML
from views.urlargs import Args

from .base import Dashboard
from .theme import LandmarkColumn, declare_page, page

#: Shortest and longest page of a wall's playlist (s): a faster rotation reloads pages as
#: fast as the browser can and takes the server down; beyond a day is a typo.
ROTATE_S = (5.0, 86_400.0)
#: Shortest and longest age of data before the wall turns red (s).
STALE_S = (3.0, 3_600.0)


class BoardDashboard(Dashboard):
    """The situation board of the command hall."""

    route: ClassVar[str] = "board"
    title_key: ClassVar[str] = "app.board"
    description_key: ClassVar[str] = "app.board.desc"
    order: ClassVar[int] = 10
    dark: ClassVar[bool] = True

    def layout(self):
        args = Args()
        kiosk = args.flag("kiosk")
        self.board = board = SituationBoard(
            source=self.console.situation, ingests=list(self.console.ingests), lang=self.lang,
            guard=self.guard,
            kiosk=kiosk,
            layout=args.choice("layout", LAYOUTS, "full"),
            rotate_s=args.number("rotate", 0.0, lo=ROTATE_S[0], hi=ROTATE_S[1], zero=True),
            layers=args.items("layers", LAYERS, LAYERS),
            stale_after_s=args.number("stale", 20.0, lo=STALE_S[0], hi=STALE_S[1]))
        parts = [board]
        if args.problems:  # the wall's URL asked for something it cannot do: say what was used
            text = "; ".join(self.t("board.url_problem", name=html.escape(name),
                                    given=html.escape(given[:40]), used=html.escape(used))
                             for name, given, used in args.problems)
            parts.insert(0, HTML(f'<div class="board-url-problem" role="status">{text}</div>',
                                 sizing_mode="stretch_width", margin=0, stylesheets=[CSS]))
        if kiosk:  # the wall: no shell, the board is the page's one main region
            declare_page(self.t("app.board"), self.lang)
            return LandmarkColumn(*parts, sizing_mode="stretch_both", margin=0,
                                  stylesheets=[CSS], css_classes=["board-page", "kiosk"],
                                  html_attributes={"role": "main"})
        body = parts[0] if len(parts) == 1 else pn.Column(*parts, sizing_mode="stretch_both",
                                                          margin=0)
        return page(self.t("app.board"), body, lang=self.lang, route="board", dark=True)
