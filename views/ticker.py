"""The board's ticker: the latest alarms, warnings, incidents and quakes, newest first."""
from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import param

from sources.levels import WALL_COLORS, WALL_TEXT_ON
from sources.situation.source import SituationSource

from .base import View
from .i18n import t
from .panes import HTML
from .shared import Shared

NO_LEVEL = "#8aa0b8"  # badge of an event with no level (a quake, a hotspot)
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving in China

TICKER_CSS = """
:host { display: block; height: 100%; width: 100%; }
.ticker { height: 100%; overflow: hidden; background: #0e1728; border: 1px solid #22324a;
  border-radius: .8vh; box-sizing: border-box; padding: .6vh .6vw; }
.ticker h3 { margin: 0 0 .6vh; font-size: 2vh; color: #9ec5ff; font-weight: 600; }
.ticker ol { list-style: none; margin: 0; padding: 0; }
.ticker li { display: flex; gap: .5vw; align-items: baseline; padding: .45vh 0;
  border-bottom: 1px solid #1b2940; font-size: 1.75vh; color: #dbe6f3; white-space: nowrap; }
.ticker li.new { animation: flash 3s ease-out; }
@keyframes flash { from { background: #2b4a7a; } to { background: transparent; } }
.ticker .t { color: #8aa0b8; font-variant-numeric: tabular-nums; }
.ticker .k { border-radius: .4vh; padding: 0 .35vw; color: #0b1220; font-weight: 700;
  font-size: 1.5vh; }
.ticker .x { overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.ticker .d { color: #8aa0b8; font-size: 1.5vh; }
.ticker .empty { color: #8aa0b8; font-size: 1.8vh; }
"""


def local_time(ts_ms: float, with_date: bool = False) -> str:
    """Epoch ms as local (Asia/Shanghai) time ``HH:MM:SS`` (``MM-DD HH:MM`` with date)."""
    t = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(SHANGHAI)
    return t.strftime("%m-%d %H:%M" if with_date else "%H:%M:%S")


class TickerText:
    """The ticker's rows in one language (plain: shared by every page, no Panel)."""

    def __init__(self, lang: str):
        self.lang = lang

    def t(self, key: str, **fmt) -> str:
        return t(key, self.lang, **fmt)

    def detail(self, row) -> str:
        """The short detail of an event in the page's language."""
        kind, detail = row.kind, str(row.detail) if row.detail is not None else ""
        if kind == "quake":
            return f"M{detail}"
        key = f"board.detail.{kind}.{detail}"
        label = self.t(key)
        return detail if label == key else label

    def rows(self, df: pd.DataFrame, max_rows: int) -> tuple[tuple[str, str], ...]:
        """``(key, markup after the row's class)`` of the newest ``max_rows`` events."""
        out = []
        for r in df.head(max_rows).itertuples():
            color = WALL_COLORS.get(r.level, NO_LEVEL)
            text = WALL_TEXT_ON.get(r.level, "#0b1220")
            # the badge says the level in words too: its colour is never the only carrier
            level = f" · {self.t('level.' + r.level)}" if r.level in WALL_COLORS else ""
            ts = "" if pd.isna(r.ts_ms) else local_time(r.ts_ms)
            out.append((r.key,
                        f' data-kind="{html.escape(r.kind)}">'
                        f'<span class="t">{ts}</span>'
                        f'<span class="k" style="background:{color};color:{text}">'
                        f'{self.t("board.kind." + r.kind)}'
                        f"{level}</span>"
                        f'<span class="x">{html.escape(str(r.title))}</span>'
                        f'<span class="d">{html.escape(self.detail(r))}</span></li>'))
        return tuple(out)


#: Rows per (events, language, rows shown): every page showing the same events shares them.
SHARED_ROWS = Shared("ticker")


def ticker_rows(events: pd.DataFrame, lang: str, max_rows: int) -> tuple[tuple[str, str], ...]:
    """The rows of ``events`` in ``lang``, made once for every page."""
    return SHARED_ROWS.get(events, (lang, max_rows),
                           lambda: TickerText(lang).rows(events, max_rows))


class Ticker(View):
    """Latest events, newest first; new ones flash once."""

    view_type = "ticker"

    source = param.ClassSelector(class_=SituationSource,
                                 doc="The shared situation of the board.")

    events = param.DataFrame(default=None, allow_None=True,
                             doc="Events as SituationSource.ticker returns them.")
    max_rows = param.Integer(default=30, bounds=(1, 200), doc="Rows shown at most.")

    def __init__(self, **params):
        super().__init__(**params)
        self._seen: set[str] = set()
        self._pane = HTML(self._html(), sizing_mode="stretch_both", margin=0,
                          stylesheets=[TICKER_CSS], css_classes=["board-ticker"])

    def __panel__(self):
        return self._pane

    @param.depends("events", watch=True)
    def _refresh(self):
        text = self._html()
        if text != self._pane.object:
            self._pane.object = text

    def detail(self, row) -> str:
        """The short detail of an event in the page's language."""
        return TickerText(self.lang).detail(row)

    def _html(self) -> str:
        df = self.events
        title = f"<h3>{self.t('board.ticker')}</h3>"
        if df is None or not len(df):
            return f'<div class="ticker">{title}<div class="empty">{self.t("board.ticker.empty")}</div></div>'
        # the rows are shared; only which of them are new to this page is the page's own
        rows = ticker_rows(df, self.lang, self.max_rows)
        first = not self._seen
        seen = self._seen
        items = "".join(
            f'<li class="{"new" if not first and key not in seen else ""}"{rest}'
            for key, rest in rows)
        self._seen = {key for key, _ in rows}  # bounded: only what is on screen
        return f'<div class="ticker">{title}<ol>{items}</ol></div>'
