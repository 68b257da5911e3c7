"""Small pieces shared by the inventory views: messages, pickers, table helpers."""
from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn

from sources.access.guard import Refused
from sources.inventory.common import InventoryError

from .panes import HTML, Alert

log = logging.getLogger(__name__)

TABLE_CSS = """
.tabulator { font-size: 13px; }
"""

# names the sources put in error messages -> labels
FIELD_LABELS = {
    "professionalism": "inventory.rate.professionalism", "conduct": "inventory.rate.conduct",
    "timeliness": "inventory.rate.timeliness", "days": "inventory.fee.days",
    "daily_rate": "inventory.fee.rate", "travel": "inventory.fee.travel",
    **{s: f"inventory.status.{s}" for s in ("requested", "approved", "shipped", "received",
                                            "rejected")},
}


class Notice:
    """A message line under a form: success in green, refusals in red (text, escaped)."""

    def __init__(self, t: Callable[..., str], css_class: str):
        self._t = t
        self.pane = Alert("", alert_type="light", visible=False,
                          css_classes=[css_class], margin=(4, 8),
                          sizing_mode="stretch_width")

    def ok(self, text: str) -> None:
        self.pane.param.update(object=html.escape(text), alert_type="success", visible=True)

    def refuse(self, text: str) -> None:
        self.pane.param.update(object=html.escape(text), alert_type="danger", visible=True)

    def error(self, exc: Exception) -> None:
        if isinstance(exc, Refused):
            text = self._t(exc.key, **{k: v for k, v in exc.fmt.items() if v is not None})
        elif isinstance(exc, InventoryError):
            fmt = {k: self._t(FIELD_LABELS[v]) if k in ("field", "status", "step")
                   and v in FIELD_LABELS else v for k, v in exc.fmt.items()}
            text = self._t(exc.key, **fmt)
        else:
            text = f"{self._t('error.unknown')}: {exc}"
        self.pane.param.update(object=html.escape(text), alert_type="danger", visible=True)

    def run(self, action: Callable[[], Any], success: Callable[[Any], str]) -> Any:
        """Run an officer action; show what it did, or why it was refused. Never raises."""
        try:
            result = action()
        except (InventoryError, Refused) as exc:
            self.error(exc)
            return None
        except Exception as exc:  # e.g. a read-only snapshot in a notebook: say so, don't crash
            log.warning("inventory action failed: %r", exc)
            self.error(exc)
            return None
        self.ok(success(result))
        return result


def rule() -> pn.pane.HTML:
    """A horizontal rule (pn.layout.Divider fetches its CSS from a CDN: not offline)."""
    return HTML('<hr style="border: 0; border-top: 1px solid #d7dee8; margin: 8px 0">',
                sizing_mode="stretch_width", margin=(4, 0))


def options(df: pd.DataFrame, value: str, label: str, *, blank: str | None = None) -> dict:
    """Select options {label: value} from a frame (labels made unique), with an optional blank."""
    out: dict[str, Any] = {} if blank is None else {blank: ""}
    for v, lab in zip(df[value], df[label], strict=True):
        key = str(lab)
        if key in out:
            key = f"{lab} ({v})"
        out[key] = v
    return out


#: Height of a table row and of the pager (px), for a page's room.
ROW_PX, PAGER_PX = 29, 40


def table(df: pd.DataFrame | None = None, *, page_size: int = 12, selectable: Any = False,
          css_class: str = "", **kwargs) -> pn.widgets.Tabulator:
    """A read-only Tabulator, paginated on the server (large registries stay server-side).

    It keeps the room of a full page from the start (header, ``page_size`` rows, pager), so
    the page does not jump when rows arrive and an empty list still reads as a table.
    """
    kwargs.setdefault("height", ROW_PX * (page_size + 1) + PAGER_PX)
    return pn.widgets.Tabulator(
        pd.DataFrame() if df is None else df, disabled=True, show_index=False,
        pagination="remote", page_size=page_size, selectable=selectable,
        sizing_mode="stretch_width", css_classes=[css_class] if css_class else [],
        stylesheets=[TABLE_CSS], **kwargs)


def translate(series: pd.Series, t: Callable[..., str], prefix: str) -> pd.Series:
    """Labels of coded values (``prefix + value``), looked up once per distinct value."""
    return series.map({v: t(prefix + str(v)) for v in series.dropna().unique()})


def listify(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Turn list columns into comma-separated text for tables and exports."""
    out = df.copy()
    for c in columns:
        if c in out:
            out[c] = out[c].map(lambda v: "、".join(map(str, v)) if v is not None else "")
    return out
