"""The base class of every dashboard (a page served at a route)."""
from __future__ import annotations

from typing import ClassVar

import panel as pn
import param

from sources.access.guard import Guard
from sources.console import Console
from views.i18n import LANGS, session_lang, t


def with_drill_banner(layout, console: Console, lang: str, guard: Guard):
    """Every page (the wall too) carries the exercise banner while a drill runs: first
    under the page's header, or at the top of a page without one (the kiosk wall)."""
    from views.drill_banner import DrillBanner

    banner = DrillBanner(source=console.drills, lang=lang, guard=guard)
    if isinstance(layout, pn.Column):
        at = 1 if "console-page" in (layout.css_classes or []) else 0
        layout.insert(at, banner)
        return layout
    return pn.Column(banner, layout, sizing_mode="stretch_both", margin=0)


class Dashboard(param.Parameterized):
    """A page of the console.

    Subclasses set ``route`` (served at ``/<route>``), ``title_key`` and ``description_key``
    (labels of :mod:`views.i18n`) and ``order`` (menu position), and implement
    :meth:`layout`. One instance is made per browser session, on the shared console: a page
    lays out views over the console's sources and starts nothing.
    """

    route: ClassVar[str | None] = None
    title_key: ClassVar[str] = "console.title"
    description_key: ClassVar[str | None] = None
    order: ClassVar[int] = 100
    dark: ClassVar[bool] = False

    console = param.ClassSelector(class_=Console, doc="The console: its sources and services.")
    lang = param.Selector(default="zh", objects=list(LANGS), doc="Interface language.")
    guard = param.ClassSelector(class_=Guard, default=None, allow_None=True,
                                doc="Who acts on this page (the console's guard of it).")

    def __init__(self, **params):
        super().__init__(**params)
        if self.guard is None:
            self.guard = self.console.guard(pn.state.curdoc)

    def t(self, key: str, **fmt) -> str:
        return t(key, self.lang, **fmt)

    def layout(self) -> pn.viewable.Viewable:
        """Build this session's page (called once per session)."""
        raise NotImplementedError

    @classmethod
    def app(cls, console: Console):
        """The function Panel calls for each new session of this page."""

        def create():
            lang = session_lang(console.lang)
            dashboard = cls(console=console, lang=lang)
            return with_drill_banner(dashboard.layout(), console, lang, dashboard.guard)

        create.__name__ = f"{cls.__name__}_app"
        return create
