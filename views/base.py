"""The base class of every view."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import ClassVar

import panel as pn
import param
from panel.io.state import set_curdoc

from sources.access.guard import Guard, Refused
from sources.base import Source
from sources.hub import Message

from .i18n import LANGS, t

log = logging.getLogger(__name__)


class View(pn.viewable.Viewer):
    """A view of the console: parameters in, one displayable out.

    Subclasses declare their parameters (with ``doc=``), take their data from ``source`` and
    implement ``__panel__``. They build their panes once and update them in place.
    ``view_type`` names the type in specs; concrete views are found with
    ``param.concrete_descendents(View)``.
    """

    view_type: ClassVar[str | None] = None
    #: the last live update failed (logged once until one succeeds again)
    _refresh_failed: bool = False

    source = param.ClassSelector(class_=Source, doc="The query source the view reads from.")
    lang = param.Selector(default="zh", objects=list(LANGS), doc="Interface language.")
    guard = param.ClassSelector(
        class_=Guard, default=None, allow_None=True,
        doc="Who acts on this page and what they may do (sources.access.guard.Guard); "
            "None: open (a notebook), every action allowed as 'anonymous'.")

    def __init__(self, **params):
        if params.get("guard") is None:
            params["guard"] = Guard.open()
        super().__init__(**params)

    def t(self, key: str, **fmt) -> str:
        """The label ``key`` in this view's language."""
        return t(key, self.lang, **fmt)

    def refusal(self, exc: Refused) -> str:
        """The message of a refused action, in this view's language."""
        return self.t(exc.key, **{k: v for k, v in exc.fmt.items() if v is not None})

    # ------------------------------------------------------------------ live updates
    def subscribe(
        self,
        topics: Iterable[str],
        on_messages: Callable[[list[Message], bool], None],
        *,
        period_ms: int = 250,
        maxsize: int = 1000,
        immediate: bool = False,
    ):
        """Receive hub messages for ``topics`` on this page's own thread.

        The hub puts messages in a bounded queue; a periodic callback of this page drains it
        every ``period_ms`` and calls ``on_messages(messages, missed)``. ``missed`` is True
        when the queue overflowed: reload from the store then. With ``immediate`` a
        publication also schedules a drain on the page's next tick (at most one pending),
        so a rare event that must show at once (a warning) does not wait for the period;
        the periodic drain stays as the safety net. Unsubscribes when the page closes.
        Returns the subscription, or None when the source has no hub (a snapshot).
        """
        hub = getattr(self.source, "hub", None)
        if hub is None:
            return None
        doc = pn.state.curdoc
        pending = threading.Event()

        def failed():
            sub.missed = True  # the next drain reloads from the store

        def drain():
            pending.clear()
            messages, missed = sub.drain()
            if messages or missed:
                on_messages(messages, missed)

        callbacks: list = []
        drain = self._guarded(drain, failed, callbacks)

        def drain_now():
            with set_curdoc(doc):
                drain()

        def notify():  # in the publisher's thread: only schedule, never run page code here
            if not pending.is_set():
                pending.set()
                doc.add_next_tick_callback(drain_now)  # Bokeh's one thread-safe doc method

        live = doc is not None and doc.session_context is not None
        sub = hub.subscribe(topics, maxsize=maxsize, notify=notify if immediate and live
                            else None)
        cb = pn.state.add_periodic_callback(drain, period=period_ms)  # already guarded
        callbacks.append(cb)
        self.on_close(lambda: (cb.stop(), hub.unsubscribe(sub)))
        return sub

    def every(self, fn: Callable[[], None], period: int, **kwargs):
        """Run ``fn`` every ``period`` ms on this page (Panel's periodic callback), guarded:
        a failing run is logged (once, until a run succeeds again) and the next run comes as
        usual. Keyword arguments go to ``pn.state.add_periodic_callback``."""
        callbacks: list = []
        cb = pn.state.add_periodic_callback(self._guarded(fn, callbacks=callbacks),
                                            period=period, **kwargs)
        callbacks.append(cb)
        return cb

    def _guarded(self, fn: Callable[[], None], on_error: Callable[[], None] | None = None,
                 callbacks: list | None = None):
        # A page's refresh that fails (a bad row, a store error) must not end its updates nor
        # raise out of Panel's callback task, whose unretrieved exception is logged later from
        # wherever the garbage collector happens to run. Once the console's store is closed
        # (shutdown, with pages still open) the page's periodic ``callbacks`` stop quietly.
        def run():
            try:
                fn()
            except Exception:
                if getattr(getattr(self.source, "store", None), "closed", False):
                    for cb in callbacks or ():
                        cb.stop()
                    return
                if on_error is not None:
                    on_error()
                if not self._refresh_failed:
                    log.exception("%s: a live update failed; the next one tries again",
                                  type(self).__name__)
                self._refresh_failed = True
            else:
                self._refresh_failed = False
        return run

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the page (session) that shows this view closes."""
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda _ctx: fn())
