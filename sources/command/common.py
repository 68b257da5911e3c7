"""Shared pieces of the command package: the refusal, times, task states, row helpers."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd

from sources.inventory.common import InventoryError

#: Local time of the users; a naive time given to an action is taken as this.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

#: The task state machine: state -> states it may move to.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "assigned": ("en_route", "cancelled"),
    "en_route": ("on_scene", "cancelled"),
    "on_scene": ("done", "cancelled"),
    "done": (),
    "cancelled": (),
}
TASK_STATES = tuple(TRANSITIONS)
ACTIVE_STATES = ("assigned", "en_route", "on_scene")
TASK_KINDS = ("team", "materials", "experts", "shelter")
#: the incident's changes (command_incidents.change)
CHANGES = ("intake", "correct", "grade", "response", "close")
#: the feed name under which officers' incident versions are appended to ``incidents``
COMMAND_FEED = "command"


class CommandError(InventoryError):
    """A refused command action: bad input or a state that forbids it.

    Like :class:`~sources.inventory.common.InventoryError` (whose views already show it):
    ``key`` names the label in :mod:`views.i18n`, ``fmt`` its fields, ``str(error)`` is the
    English message. Nothing has been written when this is raised.
    """


def aware(value, field: str = "time") -> datetime | None:
    """A timezone-aware datetime (naive: China time); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise CommandError("command.error.bad_time", "{field} is not a time: {value}",
                           field=field, value=value)
    return value.replace(tzinfo=CHINA_TZ) if value.tzinfo is None else value


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC (what TIMESTAMPTZ columns hand back)."""
    return value.astimezone(UTC)


def records(df: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts: pandas timestamps become datetimes, NaN/NaT become None."""
    out = []
    for row in df.to_dict("records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, pd.Timestamp):
                v = v.to_pydatetime()
            elif v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v):
                v = None
            elif hasattr(v, "item") and not isinstance(v, list | tuple | dict):
                v = v.item()  # numpy scalar
            clean[k] = v
        out.append(clean)
    return out


def clean_text(value, limit: int = 20_000) -> str:
    """Text from a form: stripped, control characters except newlines and tabs removed."""
    text = "" if value is None else str(value)
    text = "".join(ch for ch in text if ch in "\n\t" or ord(ch) >= 32)
    return text.strip()[:limit]
