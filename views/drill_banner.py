"""The exercise banner (演练): on every page while a drill runs, so nobody takes it for real."""
from __future__ import annotations

import html
import logging
import threading
import time
from typing import ClassVar

import panel as pn
import param

from sources.drills.desk import DrillSource

from .base import View
from .panes import HTML

log = logging.getLogger(__name__)

BANNER_CSS = """
:host { display: block; width: 100%; }
.drill-banner { display: flex; align-items: center; gap: 1em; padding: .35em 1em;
  background: repeating-linear-gradient(135deg, #ffcf33 0 14px, #1a1a1a 14px 28px);
  font-weight: 700; }
.drill-banner span { background: #1a1a1a; color: #ffd84d; padding: .15em .8em;
  border-radius: .3em; letter-spacing: .05em; font-size: 1.05em; }
.drill-banner.paused span { color: #ffffff; }
"""


#: Seconds every page of a console shares one answer to "which drill runs now?".
SHARED_S = 1.0
_SHARED: dict[int, tuple[float, DrillSource, dict | None]] = {}
_SHARED_LOCK = threading.Lock()


def shared_active(source: DrillSource, max_age: float = SHARED_S) -> dict | None:
    """``source.active()``, asked once a second for every open page: during a drill every
    batch of the feed is an event, and each page asking the store for itself was work per
    page per event (ten walls under a storm: a tenth of the server's loop)."""
    now = time.monotonic()
    with _SHARED_LOCK:
        hit = _SHARED.get(id(source))
        if hit is not None and hit[1] is source and now - hit[0] < max_age:
            return hit[2]
    value = source.active()
    with _SHARED_LOCK:
        _SHARED[id(source)] = (now, source, value)
    return value


def _clock(seconds) -> str:
    if seconds is None or seconds != seconds:
        return ""
    s = int(max(0, seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


class DrillBanner(View):
    """A striped banner naming the running drill (hidden when none runs)."""

    view_type = "drill_banner"
    #: Shows nothing while no drill runs (the sweep checks that instead of content).
    empty_when_idle: ClassVar[bool] = True

    source = param.ClassSelector(class_=DrillSource, doc="The console's drills.")
    check_s = param.Number(default=5.0, bounds=(0.5, None),
                           doc="Seconds between checks of the drill's state and position.")

    def __init__(self, **params):
        super().__init__(**params)
        # empty when no drill runs (an empty pane takes no room; its text is what changes:
        # the console's text panes send only their text)
        self._pane = HTML("", sizing_mode="stretch_width", margin=0,
                          stylesheets=[BANNER_CSS], css_classes=["drill-banner-pane"])
        self.update()
        # every batch of a drill's messages is a "drill" event: drained once a second
        self.subscribe(["drill"], lambda _m, _missed: self.update(), period_ms=1000)
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            cb = self.every(self.update, period=int(self.check_s * 1000))
            self.on_close(cb.stop)

    def text(self, active: dict | None = None) -> str | None:
        """What the banner says now (None: no drill)."""
        active = shared_active(self.source) if active is None else active
        if active is None:
            return None
        title = active.get("title") or active.get("scenario") or active["drill_id"]
        if active.get("state") == "paused":
            return self.t("drill.banner.paused", title=title)
        position = _clock(active.get("position_s"))
        total = _clock(active.get("duration_s"))
        return self.t("drill.banner", title=title,
                      position=f"{position} / {total}" if total else position)

    def update(self) -> None:
        try:
            active = shared_active(self.source)
        except Exception:  # noqa: BLE001 - a store busy or closing: keep what is shown
            log.exception("drill banner")
            return
        text = None if active is None else self.text(active)
        if text is None:
            if self._pane.object:
                self._pane.object = ""
            return
        paused = "paused" if active.get("state") == "paused" else ""
        markup = (f'<div class="drill-banner {paused}" role="alert" data-drill="1">'
                  f'<span>{html.escape(text)}</span></div>')
        if markup != self._pane.object:
            self._pane.object = markup

    def __panel__(self):
        return self._pane
