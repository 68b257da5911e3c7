"""Feed status: one card per feed (connected, lag, rate, rejected by reason, last error) and
the quarantine of rejected messages, latest first, filtered by reason."""
from __future__ import annotations

import html
from typing import ClassVar

import pandas as pd
import panel as pn
import param

from sources.alarms.desk import AlarmSource

from .base import View
from .panes import HTML

CARD_CSS = """
.feed-card { border: 1px solid #d7dee8; border-radius: 6px; padding: 8px 12px; margin: 4px 0;
  background: #fff; font-size: 14px; }
.feed-card h4 { margin: 0 0 6px; font-size: 14px; word-break: break-all; }
.feed-card .on { color: #176b2c; font-weight: 600; } .feed-card .off { color: #b00020; font-weight: 600; }
.feed-card dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
.feed-card dt { color: #4b5563; } .feed-card dd { margin: 0; }
.feed-card .err { color: #b00020; word-break: break-all; }
"""
SHOWN = ["received", "stored", "duplicates", "rejected", "last_seq", "reconnects"]


class FeedStatus(View):
    """A card per feed ingest, refreshed every ``refresh_s``, and the quarantine browser."""

    view_type: ClassVar[str] = "feed_status"

    source = param.ClassSelector(class_=AlarmSource, doc="Source of the quarantine table.")
    ingests = param.List(default=[], doc="Feed ingests (objects with a status() dict).")
    refresh_s = param.Number(default=2.0, bounds=(0.5, None), doc="Seconds between refreshes.")
    quarantine_rows = param.Integer(default=500, bounds=(1, None),
                                    doc="Most quarantined messages shown.")

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self._rejected_seen = 0
        self.cards = HTML(self.cards_html(), stylesheets=[CARD_CSS],
                          sizing_mode="stretch_width", css_classes=["feed-cards"])
        self.reason = pn.widgets.Select(label=t("feed.q.reason"), width=220,
                                        options=self._reason_options())
        self.refresh = pn.widgets.Button(label=t("feed.q.refresh"))
        self.refresh.on_click(lambda e: self.update_quarantine())
        self.reason.param.watch(lambda e: self.update_quarantine(), "value")
        self.quarantine = pn.widgets.Tabulator(
            self._quarantine_frame(), show_index=False, disabled=True, min_height=240,
            sizing_mode="stretch_both", layout="fit_data_stretch",
            titles={c: t(f"feed.q.{c}") for c in ("received_at", "feed", "reason", "raw")})
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            cb = self.every(self.update_cards, period=int(self.refresh_s * 1000))
            self.on_close(cb.stop)

    # ------------------------------------------------------------------ cards
    def cards_html(self) -> str:
        """The cards of every feed, from each ingest's ``status()``."""
        if not self.ingests:
            return f'<div class="feed-card">{html.escape(self.t("feed.none"))}</div>'
        return "".join(self._card(ing.status()) for ing in self.ingests)

    def _card(self, st: dict) -> str:
        t, esc = self.t, html.escape
        on = bool(st.get("connected"))
        state = (f'<span class="{"on" if on else "off"}">'
                 f'{esc(t("feed.connected" if on else "feed.disconnected"))}</span>')
        lag = st.get("lag_s")
        items = [(t("feed.lag"), "—" if lag is None else f"{lag:.1f} s"),
                 (t("feed.rate"), f"{st.get('rate_per_s') or 0:,.0f} /s")]
        items += [(t(f"feed.{k}"), f"{st[k]:,}" if isinstance(st.get(k), int) else str(st.get(k)))
                  for k in SHOWN if k in st]
        reasons = st.get("rejected_by_reason") or {}
        if reasons:
            items.append((t("feed.rejected_by_reason"),
                          ", ".join(f"{r}: {n:,}" for r, n in sorted(reasons.items()))))
        rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
        err = st.get("last_error")
        err_html = (f'<dt>{esc(t("feed.last_error"))}</dt><dd class="err">{esc(str(err))}</dd>'
                    if err else "")
        return (f'<div class="feed-card"><h4>{esc(str(st.get("url", "")))} {state}</h4>'
                f"<dl>{rows}{err_html}</dl></div>")

    def update_cards(self) -> None:
        """Refresh the cards; reload the quarantine when a feed rejected something new."""
        self.cards.object = self.cards_html()
        rejected = sum(int(ing.status().get("rejected") or 0) for ing in self.ingests)
        if rejected != self._rejected_seen:
            self._rejected_seen = rejected
            self.update_quarantine()

    # ------------------------------------------------------------------ quarantine
    def _reason_options(self) -> dict[str, str]:
        return {self.t("alarm.filter.all"): "",
                **{r: r for r in self.source.quarantine_reasons()}}

    def _quarantine_frame(self) -> pd.DataFrame:
        df = self.source.quarantine(self.reason.value or None, limit=self.quarantine_rows)
        df["received_at"] = df["received_at"].dt.tz_convert("Asia/Shanghai").dt.strftime(
            "%m-%d %H:%M:%S.%f").str[:-3]
        return df

    def update_quarantine(self) -> None:
        """Reload the quarantine (and its reasons) from the store."""
        self.reason.options = self._reason_options()
        self.quarantine.value = self._quarantine_frame()

    def __panel__(self):
        return pn.Column(
            HTML(f"<h3>{html.escape(self.t('feed.status.title'))}</h3>"),
            self.cards,
            HTML(f"<h3>{html.escape(self.t('feed.quarantine'))}</h3>"),
            pn.Row(self.reason, self.refresh),
            self.quarantine,
            sizing_mode="stretch_both", css_classes=["feed-status"],
        )
