"""Parsing and validation of feed frames (FEED-PROTOCOL.md): pure functions, no I/O.

:func:`parse_frame` turns one websocket frame into valid readings (as columns, the fast
path), valid events (hotspots, quakes, warnings, incidents: one record each, named like
their table's columns) and rejects (reason + raw text). It never raises: whatever a gateway
sends, the valid messages around a bad one are kept and the bad one is reported with a
reason that says what was wrong (``"missing_field: value"``, ``"non_finite: value"``, ...).

Three decoders, fastest first: a frame made only of valid readings (the bulk of any feed)
is decoded and validated in one go by msgspec into typed structs; anything else goes through
orjson (strict JSON) and is checked message by message; when even that fails, the standard
library (which accepts NaN/Infinity and lone surrogates) decodes it, so that one bad value
does not cost the whole frame: the bad message is then rejected on its own.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson

from sources.levels import LEVELS

RAW_LIMIT = 64 * 1024
"""Quarantined raw text is cut at this many bytes (UTF-8)."""

MAX_SEQ = 2**63 - 1
MAX_ABS_VALUE = 1e15
"""A reading whose absolute value is larger is refused as out of range (a gateway bug)."""
TS_MIN_MS = 0
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01: later event times are a gateway bug
MAX_ID_LEN = 256
MAX_TEXT_LEN = 16_384

TYPES = ("reading", "hotspot", "quake", "warning", "incident")
MSG_TYPES = frozenset(("Alert", "Update", "Cancel"))
STATUSES = frozenset(("open", "closed"))

# Fields each type knows; anything else is kept in ``extra`` (JSON) where the table has one.
KNOWN = {
    "reading": frozenset(("type", "seq", "ts", "sensor_id", "value")),
    "hotspot": frozenset(("type", "seq", "ts", "id", "lon", "lat", "confidence", "satellite")),
    "quake": frozenset(("type", "seq", "ts", "id", "lon", "lat", "depth_km", "magnitude")),
    "warning": frozenset(("type", "seq", "ts", "id", "msg_type", "event", "level", "headline",
                          "area", "effective", "expires", "description")),
    "incident": frozenset(("type", "seq", "ts", "id", "kind", "lon", "lat", "title", "level",
                           "status")),
}


class _Reading(msgspec.Struct, tag="reading", tag_field="type"):
    """A valid reading, as msgspec checks it (unknown fields ignored: no ``extra`` column)."""

    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    ts: Annotated[int, msgspec.Meta(ge=TS_MIN_MS, le=TS_MAX_MS)] | str
    sensor_id: str
    value: Annotated[float, msgspec.Meta(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]


class _ReadingMs(msgspec.Struct, tag="reading", tag_field="type"):
    """The same with an epoch-millisecond ``ts`` only (no per-message time parsing)."""

    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    ts: Annotated[int, msgspec.Meta(ge=TS_MIN_MS, le=TS_MAX_MS)]
    sensor_id: str
    value: Annotated[float, msgspec.Meta(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]


_READINGS = msgspec.json.Decoder(list[_Reading] | _Reading)
_READINGS_MS = msgspec.json.Decoder(list[_ReadingMs] | _ReadingMs)


class Reject(Exception):  # noqa: N818 - a verdict, not an error of ours
    """A message is refused; ``reason`` is ``"code: detail"``."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.reason = str(self)


@dataclass
class Parsed:
    """What one frame held.

    Attributes
    ----------
    seq, ts_us, sensor_id, value : list
        Valid readings as columns (``ts_us``: epoch microseconds, UTC).
    events : list of (type, record)
        Valid non-reading messages; ``record`` has ``seq``, ``ts_us`` and the table columns.
    rejects : list of (reason, raw)
        Refused messages (or the whole frame when it is not JSON); ``raw`` is cut at 64 KiB.
    newest_ts_us : int or None
        Event time of the newest valid message.
    drills : dict of int to str
        The drill of each exercise reading, by its index in the reading columns (sparse:
        real readings have none). Events carry theirs as ``record["drill_id"]``.
    """

    seq: list[int] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    sensor_id: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    events: list[tuple[str, dict]] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    newest_ts_us: int | None = None
    drills: dict[int, str] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return len(self.seq) + len(self.events)


class Batch(Parsed):
    """Messages received and validated, not yet written: what the receiving thread fills and
    hands to the writer (:class:`sources.ingest.writer.FeedWriter`) in one piece."""

    def __init__(self):
        super().__init__()
        self.received_at: list[int] = []  # epoch µs of each reject's arrival
        self.started = time.monotonic()
        self.size = 0


def cut_raw(text: str | bytes) -> str:
    """The raw text of a bad input as valid UTF-8, cut at :data:`RAW_LIMIT` bytes."""
    if not isinstance(text, str):
        text = bytes(text[: RAW_LIMIT * 2]).decode("utf-8", "replace")
    text = text[: RAW_LIMIT * 2].replace("\x00", "\\u0000")
    data = text.encode("utf-8", "backslashreplace")[:RAW_LIMIT]
    return data.decode("utf-8", "ignore")


def _raw_of(message: Any) -> str:
    try:
        return cut_raw(json.dumps(message, ensure_ascii=False, default=str)[: RAW_LIMIT + 1])
    except (ValueError, TypeError, RecursionError):
        return cut_raw(repr(message)[: RAW_LIMIT + 1])


# ---------------------------------------------------------------------- time
_TS_CACHE: dict[str, int] = {}


def parse_ts(value: Any, name: str = "ts") -> int:
    """An event time (RFC 3339 with offset, or epoch milliseconds) as epoch microseconds.

    Raises
    ------
    Reject
        When the value is missing, mistyped, has no UTC offset or is out of range.
    """
    t = type(value)
    if t is int:
        if not TS_MIN_MS <= value <= TS_MAX_MS:
            raise Reject("out_of_range", name)
        return value * 1000
    if t is str:
        cached = _TS_CACHE.get(value)
        if cached is not None:
            return cached
        if len(value) > 64:
            raise Reject("bad_time", name)
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise Reject("bad_time", name) from None
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise Reject("bad_time", f"{name} has no UTC offset")
        us = round(dt.timestamp() * 1_000_000)
        if not TS_MIN_MS * 1000 <= us <= TS_MAX_MS * 1000:
            raise Reject("out_of_range", name)
        if len(_TS_CACHE) > 4096:
            _TS_CACHE.clear()
        _TS_CACHE[value] = us
        return us
    if value is None:
        raise Reject("missing_field", name)
    raise Reject("wrong_type", name)


# ---------------------------------------------------------------------- fields
def _get(m: dict, name: str) -> Any:
    value = m.get(name)
    if value is None:
        raise Reject("missing_field", name)
    return value


def _number(m: dict, name: str, lo: float | None = None, hi: float | None = None) -> float:
    value = _get(m, name)
    t = type(value)
    if t is not float and t is not int:  # bool is not a number here
        raise Reject("wrong_type", name)
    if t is float and not math.isfinite(value):
        raise Reject("non_finite", name)
    if t is int and abs(value) > 2**53:
        raise Reject("out_of_range", name)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise Reject("out_of_range", name)
    return float(value)


def _text(m: dict, name: str, limit: int = MAX_TEXT_LEN, allowed: Collection | None = None,
          optional: bool = False) -> str | None:
    value = m.get(name)
    if value is None:
        if optional:
            return None
        raise Reject("missing_field", name)
    if type(value) is not str:
        raise Reject("wrong_type", name)
    if not value or len(value) > limit:
        raise Reject("out_of_range", name)
    if allowed is not None and value not in allowed:
        raise Reject("bad_value", name)
    return value


def _seq(m: dict) -> int:
    seq = m.get("seq")
    if seq is None:
        raise Reject("missing_field", "seq")
    if type(seq) is not int:
        if type(seq) is float and (not math.isfinite(seq) or abs(seq) >= 2**63):
            raise Reject("out_of_range", "seq")  # an integer too big for the decoder
        raise Reject("wrong_type", "seq")
    if not 0 <= seq <= MAX_SEQ:
        raise Reject("out_of_range", "seq")
    return seq


def _extra(m: dict, known: frozenset) -> str | None:
    extra = {k: v for k, v in m.items() if k not in known}
    if not extra:
        return None
    text = json.dumps(extra, ensure_ascii=False, allow_nan=True, default=str)
    return cut_raw(text)


def _lon_lat(m: dict) -> tuple[float, float]:
    return _number(m, "lon", -180.0, 180.0), _number(m, "lat", -90.0, 90.0)


def _area(m: dict) -> tuple[list[str] | None, str | None]:
    """``area``: a list of county codes, or a GeoJSON Polygon (WGS84)."""
    area = _get(m, "area")
    if type(area) is list:
        if not area or len(area) > 1000:
            raise Reject("out_of_range", "area")
        for code in area:
            if type(code) is not str or not 1 <= len(code) <= 12:
                raise Reject("wrong_type", "area")
        return list(area), None
    if type(area) is dict:
        if area.get("type") != "Polygon":
            raise Reject("bad_value", "area")
        rings = area.get("coordinates")
        if type(rings) is not list or not rings:
            raise Reject("wrong_type", "area")
        for ring in rings:
            if type(ring) is not list or len(ring) < 4 or len(ring) > 100_000:
                raise Reject("bad_value", "area")
            for pt in ring:
                if type(pt) is not list or len(pt) < 2:
                    raise Reject("wrong_type", "area")
                lon, lat = pt[0], pt[1]
                for v in (lon, lat):
                    if type(v) not in (int, float) or not math.isfinite(v):
                        raise Reject("wrong_type", "area")
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise Reject("out_of_range", "area")
        return None, json.dumps({"type": "Polygon", "coordinates": rings})
    raise Reject("wrong_type", "area")


MAX_DRILL_LEN = 64


def drill_of(m: dict) -> str | None:
    """The drill a message belongs to: its ``drill_id`` when it says ``"exercise": true``
    (``"exercise"`` when it names none), else None. An exercise is never taken for real:
    ``exercise`` alone is enough to mark it; a ``drill_id`` alone marks nothing."""
    if m.get("exercise") is not True:
        return None
    drill = m.get("drill_id")
    if type(drill) is str and 0 < len(drill) <= MAX_DRILL_LEN and drill.isprintable():
        return drill
    return "exercise"


def parse_event(kind: str, m: dict) -> dict:
    """Validate a non-reading message and return its record (table column names).

    Raises
    ------
    Reject
        With the reason of the first problem found.
    """
    seq = _seq(m)
    ts_us = parse_ts(m.get("ts"))
    rec: dict[str, Any] = {"seq": seq, "ts_us": ts_us}
    if kind == "hotspot":
        rec["hotspot_id"] = _text(m, "id", MAX_ID_LEN)
        rec["lon"], rec["lat"] = _lon_lat(m)
        rec["confidence"] = _number(m, "confidence", 0.0, 100.0)
        rec["satellite"] = _text(m, "satellite", MAX_ID_LEN)
    elif kind == "quake":
        rec["quake_id"] = _text(m, "id", MAX_ID_LEN)
        rec["lon"], rec["lat"] = _lon_lat(m)
        rec["depth_km"] = _number(m, "depth_km", 0.0, 1000.0)
        rec["magnitude"] = _number(m, "magnitude", -2.0, 10.0)
    elif kind == "warning":
        rec["warning_id"] = _text(m, "id", MAX_ID_LEN)
        rec["msg_type"] = _text(m, "msg_type", allowed=MSG_TYPES)
        rec["event"] = _text(m, "event", MAX_ID_LEN)
        rec["level"] = _text(m, "level", allowed=LEVELS)
        rec["headline"] = _text(m, "headline")
        rec["description"] = _text(m, "description", optional=True)
        rec["area_codes"], rec["area_geojson"] = _area(m)
        rec["effective_us"] = parse_ts(m.get("effective"), "effective")
        rec["expires_us"] = parse_ts(m.get("expires"), "expires")
    elif kind == "incident":
        rec["incident_id"] = _text(m, "id", MAX_ID_LEN)
        rec["kind"] = _text(m, "kind", MAX_ID_LEN)
        rec["lon"], rec["lat"] = _lon_lat(m)
        rec["title"] = _text(m, "title")
        rec["level"] = _text(m, "level", allowed=LEVELS)
        rec["status"] = _text(m, "status", allowed=STATUSES)
    else:  # pragma: no cover - callers check the type first
        raise Reject("unknown_type", str(kind)[:64])
    rec["extra"] = _extra(m, KNOWN[kind])
    rec["drill_id"] = drill_of(m)
    return rec


def check_reading(m: dict, sensors: Collection[str]) -> tuple[int, int, str, float]:
    """Validate a reading the slow way (to find the reason); returns its four columns."""
    seq = _seq(m)
    ts_us = parse_ts(m.get("ts"))
    sensor_id = _text(m, "sensor_id", MAX_ID_LEN)
    value = _number(m, "value", -MAX_ABS_VALUE, MAX_ABS_VALUE)
    if sensor_id not in sensors:
        raise Reject("unknown_sensor", sensor_id[:64])
    return seq, ts_us, sensor_id, value


# ---------------------------------------------------------------------- frames
def decode_frame(frame: str | bytes) -> tuple[Any, bool]:
    """JSON of a frame; the flag says the lenient decoder was needed (check strings)."""
    try:
        return orjson.loads(frame), False
    except orjson.JSONDecodeError:
        text = frame if isinstance(frame, str) else bytes(frame).decode("utf-8")
        return json.loads(text), True


def _encodable(m: Any) -> bool:
    try:
        json.dumps(m, ensure_ascii=False, allow_nan=True).encode("utf-8")
        return True
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
        return False


def parse_frame(frame: str | bytes, sensors: Collection[str], into: Parsed | None = None) -> Parsed:
    """Validate every message of one frame (an object or an array of objects).

    Parameters
    ----------
    frame : str or bytes
        The frame's text.
    sensors : set of str
        Known sensor ids; a reading of another sensor is refused (``unknown_sensor``).
    into : Parsed, optional
        Append to this (the ingest's pending batch) instead of a new one.

    Returns
    -------
    Parsed
        Valid readings (columns), valid events and rejects. Never raises.
    """
    out = Parsed() if into is None else into
    if _all_readings(frame, sensors, out):
        return out
    try:
        data, lenient = decode_frame(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):
        out.rejects.append(("malformed_json", cut_raw(frame)))
        return out
    except Exception as exc:  # noqa: BLE001 - nothing a gateway sends may escape
        out.rejects.append((f"malformed_json: {type(exc).__name__}", cut_raw(frame)))
        return out
    messages = data if type(data) is list else (data,)
    seqs, tss, sids, vals = out.seq, out.ts_us, out.sensor_id, out.value
    ts_cache = _TS_CACHE
    newest = -1 if out.newest_ts_us is None else out.newest_ts_us
    isfinite = math.isfinite
    for m in messages:
        if type(m) is not dict:
            out.rejects.append(("not_an_object", _raw_of(m)))
            continue
        if lenient and not _encodable(m):
            out.rejects.append(("bad_text: invalid unicode", _raw_of(m)))
            continue
        kind = m.get("type")
        if kind == "reading":
            # fast path: every check in one expression; the slow path finds the reason
            seq = m.get("seq")
            ts = m.get("ts")
            sid = m.get("sensor_id")
            v = m.get("value")
            tv = type(v)
            tts = type(ts)
            if (type(seq) is int and 0 <= seq <= MAX_SEQ and type(sid) is str and sid in sensors
                    and ((tv is float and isfinite(v)) or tv is int)
                    and -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE):
                if tts is int and TS_MIN_MS <= ts <= TS_MAX_MS:
                    ts_us = ts * 1000
                elif tts is str and (ts_us := ts_cache.get(ts)) is not None:
                    pass
                else:
                    try:
                        ts_us = parse_ts(ts)
                    except Reject as r:
                        out.rejects.append((r.reason, _raw_of(m)))
                        continue
                if "exercise" in m and (drill := drill_of(m)) is not None:
                    out.drills[len(seqs)] = drill
                seqs.append(seq)
                tss.append(ts_us)
                sids.append(sid)
                vals.append(float(v))
                if ts_us > newest:
                    newest = ts_us
                continue
            try:
                check_reading(m, sensors)
            except Reject as r:
                out.rejects.append((r.reason, _raw_of(m)))
            else:  # pragma: no cover - the fast path accepts whatever check_reading does
                out.rejects.append(("invalid", _raw_of(m)))
            continue
        if kind is None:
            out.rejects.append(("missing_field: type", _raw_of(m)))
            continue
        if type(kind) is not str or kind not in KNOWN:
            out.rejects.append(("unknown_type", _raw_of(m)))
            continue
        try:
            rec = parse_event(kind, m)
        except Reject as r:
            out.rejects.append((r.reason, _raw_of(m)))
            continue
        except Exception as exc:  # noqa: BLE001 - a validator bug must not stop the feed
            out.rejects.append((f"invalid: {type(exc).__name__}", _raw_of(m)))
            continue
        out.events.append((kind, rec))
        if rec["ts_us"] > newest:
            newest = rec["ts_us"]
    if newest >= 0:
        out.newest_ts_us = newest
    return out


def _all_readings(frame: str | bytes, sensors: Collection[str], out: Parsed) -> bool:
    """Fast path: append the frame to ``out`` if it holds only valid readings, else False.

    A frame that mentions ``exercise`` goes the slow way, which records each reading's drill
    (a drill's frames are few; real ones never pay for it)."""
    if (b'"exercise"' in frame) if isinstance(frame, bytes) else ('"exercise"' in frame):
        return False
    try:
        try:
            msgs = _READINGS_MS.decode(frame)  # the usual case: epoch-millisecond times
            text_ts = False
        except msgspec.ValidationError:
            msgs = _READINGS.decode(frame)
            text_ts = True
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return False
    if type(msgs) is not list:
        msgs = [msgs]
    if not msgs:
        return True
    sids = [m.sensor_id for m in msgs]
    if not (sensors.issuperset(sids) if isinstance(sensors, frozenset | set)
            else all(x in sensors for x in sids)):
        return False
    if text_ts:
        ts_us = []
        cache = _TS_CACHE
        for m in msgs:
            t = m.ts
            if type(t) is int:
                ts_us.append(t * 1000)
            elif (us := cache.get(t)) is not None:
                ts_us.append(us)
            else:
                try:
                    ts_us.append(parse_ts(t))
                except Reject:
                    return False
    else:
        ts_us = [m.ts * 1000 for m in msgs]
    out.seq.extend([m.seq for m in msgs])
    out.ts_us.extend(ts_us)
    out.sensor_id.extend(sids)
    out.value.extend([m.value for m in msgs])
    newest = max(ts_us)
    if out.newest_ts_us is None or newest > out.newest_ts_us:
        out.newest_ts_us = newest
    return True


def reason_code(reason: str) -> str:
    """The counter key of a reject reason: ``"missing_field: value"`` → ``"missing_field"``."""
    return reason.split(":", 1)[0]
