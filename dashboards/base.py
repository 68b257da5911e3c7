"""The base class of every dashboard (a page served at a route)."""
from __future__ import annotations

from typing import ClassVar

import panel as pn
import param

from sources.runtime import Runtime
from views.i18n import LANGS, session_lang, t


class Dashboard(param.Parameterized):
    """A page of the console.

    Subclasses set ``route`` (served at ``/<route>``), ``title_key`` and ``description_key``
    (labels of :mod:`views.i18n`) and ``order`` (menu position), and implement
    :meth:`layout`. One instance is made per browser session, on the shared runtime.
    Extra HTTP endpoints (e.g. ``/cap/index.xml``) come from :meth:`handlers`.
    """

    route: ClassVar[str | None] = None
    title_key: ClassVar[str] = "console.title"
    description_key: ClassVar[str | None] = None
    order: ClassVar[int] = 100
    dark: ClassVar[bool] = False

    runtime = param.ClassSelector(class_=Runtime, doc="The console's shared services.")
    lang = param.Selector(default="zh", objects=list(LANGS), doc="Interface language.")

    def t(self, key: str, **fmt) -> str:
        return t(key, self.lang, **fmt)

    def layout(self) -> pn.viewable.Viewable:
        """Build this session's page (called once per session)."""
        raise NotImplementedError

    @classmethod
    def handlers(cls, runtime: Runtime) -> list[tuple]:
        """Extra tornado URL patterns ``(regex, handler, kwargs)`` served beside the page."""
        return []

    @classmethod
    def app(cls, runtime: Runtime):
        """The function Panel calls for each new session of this page."""

        def create():
            lang = session_lang(runtime.lang)
            board = cls(runtime=runtime, lang=lang)
            return board.layout()

        create.__name__ = f"{cls.__name__}_app"
        return create
