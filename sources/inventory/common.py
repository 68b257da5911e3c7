"""Shared pieces of the expert and material inventories: errors, distances, ids, exports."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd


class InventoryError(ValueError):
    """A refused inventory action: bad input or a state that forbids it.

    ``key`` names the label in :mod:`views.i18n` and ``fmt`` its fields, so a view can
    show the message in the page's language; ``str(error)`` is the English message.
    Nothing has been written when this is raised.
    """

    def __init__(self, key: str, message: str, **fmt):
        super().__init__(message.format(**fmt) if fmt else message)
        self.key = key
        self.fmt = fmt


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (what TIMESTAMPTZ columns store)."""
    return datetime.now(UTC)


def next_id(cur) -> int:
    """A new id from the inventory sequence (inside the caller's transaction)."""
    return int(cur.execute("SELECT nextval('inventory_ids')").fetchone()[0])


def actor_name(actor: str | None) -> str:
    """Who acts: the logged-in user, or 'anonymous' when there is none."""
    actor = (actor or "").strip()
    return actor or "anonymous"


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV with a UTF-8 BOM, so spreadsheet programs read the Chinese names right."""
    return _plain(df).to_csv(index=False).encode("utf-8-sig")


def to_excel_bytes(sheets: dict[str, pd.DataFrame]) -> bytes:
    """An .xlsx workbook (openpyxl) with one sheet per frame."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for name, df in sheets.items():
            _plain(df).to_excel(writer, sheet_name=name[:31], index=False)
    return buf.getvalue()


def _listlike(value) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Drop time zones (Excel has none) and turn lists into text."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_convert("UTC").dt.tz_localize(None)
        elif s.dtype == object and s.map(_listlike).any():
            out[col] = s.map(lambda v: ", ".join(map(str, v)) if _listlike(v) else v)
    return out


def county_table(store) -> pd.DataFrame:
    """Counties with their city and representative point, for pickers and distances."""
    return store.df(
        "SELECT county_code, name, city, lon, lat FROM counties ORDER BY county_code"
    )


def county_point(store, county_code: str) -> tuple[float, float]:
    """The representative (lon, lat) of a county; raises :class:`InventoryError` if unknown."""
    t = store.arrow("SELECT lon, lat FROM counties WHERE county_code = ?", [str(county_code)])
    if t.num_rows == 0 or t.column(0)[0].as_py() is None:
        raise InventoryError("inventory.error.unknown_county", "unknown county: {code}",
                             code=county_code)
    return float(t.column(0)[0].as_py()), float(t.column(1)[0].as_py())
