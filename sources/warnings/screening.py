"""Feed warnings held to the form's checks before they are stored.

``sources/ingest/messages.py`` checks a warning message's shape (types, levels, times); what
it cannot know is the province: a county code outside the registry, or a polygon that lies
outside the province, would reach the map, the CAP documents and the regional SMS list.
:class:`FeedWarningCheck` finds those, in the feed's writer thread, just before the batch is
written: the refused message goes to the ``quarantine`` table with a reason in the ingest's
own ``"code: detail"`` form (``unknown_county: 999999``, ``outside_province: area``,
``bad_value: expires``), its raw text rebuilt from the parsed message; nothing is lost.

Control characters in a feed's text are *not* refused here: a real warning must not be held
back for an invisible character; every document leaves them out on output
(:func:`sources.warnings.cap.xml_text`), and the stored text stays as it came.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

import shapely

from sources.geo import CountyGeometry, clip_to
from sources.ingest.messages import cut_raw, reason_code

log = logging.getLogger(__name__)

MIN_AREA = 1e-7
"""Square degrees; an area with less inside the province (≈ 1 000 m²) is outside it (the
same sliver ``CountyGeometry.intersecting`` ignores)."""


def warning_problem(rec: dict[str, Any], geo: CountyGeometry) -> str | None:
    """Why a parsed feed warning cannot be published (``"code: detail"``), or None.

    Parameters
    ----------
    rec : dict
        A warning record as :func:`sources.ingest.messages.parse_event` returns it.
    geo : CountyGeometry
        The province's counties (the registry the form checks against).
    """
    codes = rec.get("area_codes")
    if codes is not None:
        unknown = [str(c) for c in codes if str(c) not in geo.names]
        if unknown:
            return f"unknown_county: {', '.join(unknown)}"[:200]
    geojson = rec.get("area_geojson")
    if geojson:
        shape = shapely.from_geojson(geojson)
        if not shape.is_valid:
            shape = shapely.make_valid(shape)
        if shape.area <= 0:
            return "bad_value: area has no area"
        if clip_to(shape, geo.province).area <= MIN_AREA:
            return "outside_province: area"
    if rec.get("expires_us") is not None and rec.get("effective_us") is not None \
            and rec["expires_us"] <= rec["effective_us"]:
        return "bad_value: expires is not after effective"
    return None


def raw_message(rec: dict[str, Any]) -> str:
    """The message's JSON rebuilt from its parsed record (for the quarantine)."""
    area = rec.get("area_codes")
    if area is None and rec.get("area_geojson"):
        area = json.loads(rec["area_geojson"])
    message = {"type": "warning", "seq": rec.get("seq"), "ts": _ms(rec.get("ts_us")),
               "id": rec.get("warning_id"), "msg_type": rec.get("msg_type"),
               "event": rec.get("event"), "level": rec.get("level"),
               "headline": rec.get("headline"), "description": rec.get("description"),
               "area": area, "effective": _ms(rec.get("effective_us")),
               "expires": _ms(rec.get("expires_us"))}
    try:
        extra = json.loads(rec.get("extra") or "{}")
    except ValueError:
        extra = {"extra": rec.get("extra")}
    if isinstance(extra, dict):
        message.update({k: v for k, v in extra.items() if k not in message})
    return cut_raw(json.dumps({k: v for k, v in message.items() if v is not None},
                              ensure_ascii=False, default=str))


def _ms(us: int | None) -> int | None:
    return None if us is None else int(us) // 1000


class FeedWarningCheck:
    """The form's area checks for one feed's warnings (owned by its writer thread).

    ``rejected`` counts refusals by reason code; only the writer thread replaces it (a new
    Counter per refusal, so readers in other threads see a whole one).
    """

    def __init__(self, geography: CountyGeometry):
        self.geo = geography  # parsed on the first warning: most feeds never send one
        self.rejected: Counter[str] = Counter()

    def screen(self, recs: list[dict], batch) -> list[dict]:
        """The records that pass; each refused one is appended to ``batch.rejects``
        (with its ``received_at``), so it is quarantined in the same transaction."""
        kept = []
        for rec in recs:
            try:
                problem = warning_problem(rec, self.geo)
            except Exception as exc:  # noqa: BLE001 - a checker bug must not stop the feed
                log.exception("feed warning %r: check failed", rec.get("warning_id"))
                problem = f"invalid: {type(exc).__name__}"
            if problem is None:
                kept.append(rec)
                continue
            batch.rejects.append((problem, raw_message(rec)))
            batch.received_at.append(int(time.time() * 1e6))
            # a new Counter each time: /health reads it from other threads (copy on write)
            self.rejected = self.rejected + Counter({reason_code(problem): 1})
        return kept
