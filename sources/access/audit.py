"""The audit log (审计日志): who did what, when, from where — appended, hash-chained, verifiable.

It lives in the store, as the table ``audit_log``, written by the console's single writer:

* an officer's action and its audit entry commit in the same transaction
  (``record(..., cur=cur)`` inside ``store.transaction()``): no action without its entry,
  no entry for an action that rolled back;
* it travels with the store's snapshots, so ``python -m sources.access.audit verify`` checks
  it while the console runs (on the newest snapshot), and backups carry it;
* the analysts' sandbox is where reading it must be refused (issue #14 item 4), not a
  second file with its own locking and retention.

Changes made to the users file with the command line (while the console may be running)
are copied in from the file's own log (:meth:`AuditLog.import_user_log`).

Each entry's ``hash`` is SHA-256 over the canonical encoding of the entry — the UTF-8 of the
compact JSON array of its columns in :data:`CHAINED` order, ``ts`` as integer microseconds
since the epoch (UTC), ``prev_hash`` included — so altering any column of an entry, or
deleting or inserting one, breaks the chain from there on. Retention deletes the oldest
entries and leaves an anchor (the last deleted entry's seq and hash, in ``audit_anchor``),
itself recorded by an ``audit.prune`` entry in the chain, so verification still starts from
a known hash. A chain can be rewritten wholesale by someone who can write the file: keep the
head (:meth:`AuditLog.head`, logged by the console) elsewhere and pass it to ``verify
--expect-head``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

GENESIS = "0" * 64
CHAINED = ("seq", "ts_us", "user_name", "role", "jurisdiction", "action", "outcome", "target",
           "target_jurisdiction", "address", "reason", "details", "prev_hash")
OUTCOMES = ("ok", "denied", "failed")
MAX_TEXT, MAX_DETAILS = 256, 32_768
MIN_KEEP_DAYS = 180  # PRC Cybersecurity Law art. 21: network logs kept at least six months
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq                 BIGINT PRIMARY KEY,   -- 1, 2, 3 … never reused
    ts                  TIMESTAMPTZ NOT NULL,
    user_name           VARCHAR,              -- the actor, or the name tried at a failed login
    role                VARCHAR,
    jurisdiction        VARCHAR,
    action              VARCHAR NOT NULL,     -- login.success, alarm.acknowledge, console.query …
    outcome             VARCHAR NOT NULL,     -- ok | denied | failed
    target              VARCHAR,              -- what was acted on (alarm id, warning id, page …)
    target_jurisdiction VARCHAR,
    address             VARCHAR,              -- the client's address ('cli' for the command line)
    reason              VARCHAR,              -- why refused (an access.denied.* key) or failed
    details             VARCHAR,              -- canonical JSON: what changed
    prev_hash           VARCHAR NOT NULL,
    hash                VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_anchor (
    after_seq  BIGINT NOT NULL,               -- entries up to this seq were deleted …
    hash       VARCHAR NOT NULL,              -- … the last of them had this hash
    pruned_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_state (key VARCHAR PRIMARY KEY, value VARCHAR);
"""

_SELECT = ("SELECT seq, epoch_us(ts) AS ts_us, user_name, role, jurisdiction, action, outcome, "
           "target, target_jurisdiction, address, reason, details, prev_hash, hash "
           "FROM audit_log")


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """Text fit for the log: never fails on odd input (lone surrogates, NUL), bounded."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def canonical_details(details: dict | None) -> str | None:
    """Details as compact, key-sorted JSON; too long: a digest and the head instead."""
    if not details:
        return None
    text = json.dumps(details, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str)
    text = _text(text, limit=10**9)
    if len(text) > MAX_DETAILS:
        text = json.dumps({"truncated": True, "length": len(text),
                           "sha256": hashlib.sha256(text.encode()).hexdigest(),
                           "head": text[: MAX_DETAILS // 2]},
                          ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text


def entry_hash(row: dict) -> str:
    """SHA-256 of the canonical encoding of an entry (the :data:`CHAINED` columns)."""
    encoded = json.dumps([row[c] for c in CHAINED], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("audit times must carry a time zone")
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Entry:
    seq: int
    hash: str


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`: ``ok``, how many entries were checked, and the first
    broken entry's seq with what is wrong with it."""

    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str = ""
    head: Entry | None = None

    def line(self) -> str:
        if self.ok:
            head = f"; head {self.head.seq} {self.head.hash}" if self.head else ""
            return f"audit log intact: {self.checked} entries{head}"
        return f"audit log BROKEN at entry {self.first_bad}: {self.problem}"


def ensure_tables(cur) -> None:
    cur.execute(DDL)


def _tail(cur, hint: int = 0) -> tuple[int, str]:
    """The newest entry's (seq, hash), or the anchor's, or the genesis.

    ``hint`` (a seq known to exist, usually the last appended) lets DuckDB skip every row
    group below it by its min/max statistics; a stale hint (a rolled-back append) only
    falls back to the full scan."""
    row = None
    if hint:
        row = cur.execute("SELECT seq, hash FROM audit_log WHERE seq >= ? "
                          "ORDER BY seq DESC LIMIT 1", [hint]).fetchone()
    if row is None:
        row = cur.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), row[1]
    anchor = cur.execute(
        "SELECT after_seq, hash FROM audit_anchor ORDER BY after_seq DESC LIMIT 1").fetchone()
    return (int(anchor[0]), anchor[1]) if anchor else (0, GENESIS)


class AuditLog:
    """Appends to and reads the store's audit log.

    Parameters
    ----------
    store : sources.store.store.Store
        The console's read-write store (the tables are created if missing).
    clock : callable
        Returns the current aware datetime (tests pass their own).
    """

    def __init__(self, store, *, clock=lambda: datetime.now(UTC)):
        self.store = store
        self._clock = clock
        self._hint = 0  # the last seq appended (a hint only: see _tail)
        if not store.read_only:
            with store.transaction() as cur:
                ensure_tables(cur)

    # ------------------------------------------------------------------ writing
    def record(self, action: str, *, actor: Any = None, user_name: str | None = None,
               outcome: str = "ok", target: Any = None, target_jurisdiction: str | None = None,
               address: str | None = None, reason: str | None = None,
               details: dict | None = None, at: datetime | None = None, cur=None) -> Entry:
        """Append one entry and return its seq and hash.

        Parameters
        ----------
        action : str
            What happened: ``login.success``, ``login.failure``, ``logout``, an action of
            :data:`sources.access.policy.ACTIONS`, ``export``, ``console.query`` …
        actor : User or Principal, optional
            Who: supplies ``user_name``, ``role``, ``jurisdiction`` (and ``address``).
        user_name : str, optional
            Who, without an account (the name tried at a failed login).
        outcome : "ok", "denied" or "failed"
        target, target_jurisdiction : optional
            What was acted on, and where it lies.
        reason : str, optional
            Why it was refused or failed (an ``access.denied.*`` key, ``bad_password`` …).
        details : dict, optional
            What changed (before/after values, the query, the row count …).
        cur : DuckDB cursor, optional
            Append inside the caller's open ``store.transaction()`` (atomic with the action).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        at = at or self._clock()
        row = {
            "ts_us": _micros(at),
            "user_name": _text(user_name if user_name is not None
                               else getattr(actor, "name", None)),
            "role": _text(getattr(actor, "role", None)),
            "jurisdiction": _text(getattr(actor, "jurisdiction", None)),
            "action": _text(action), "outcome": outcome,
            "target": _text(target), "target_jurisdiction": _text(target_jurisdiction),
            "address": _text(address if address is not None
                             else getattr(actor, "address", None) or None),
            "reason": _text(reason), "details": canonical_details(details),
        }
        if cur is not None:
            return self._append(cur, row, at)
        with self.store.transaction() as tx:
            return self._append(tx, row, at)

    def _append(self, cur, row: dict, at: datetime) -> Entry:
        # The store's write lock is held (store.transaction): nobody else appends meanwhile.
        seq, prev = _tail(cur, self._hint)
        row = {**row, "seq": seq + 1, "prev_hash": prev}
        row["hash"] = entry_hash(row)
        cur.execute(
            "INSERT INTO audit_log (seq, ts, user_name, role, jurisdiction, action, outcome, "
            "target, target_jurisdiction, address, reason, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row["seq"], at, row["user_name"], row["role"], row["jurisdiction"],
             row["action"], row["outcome"], row["target"], row["target_jurisdiction"],
             row["address"], row["reason"], row["details"], row["prev_hash"], row["hash"]])
        self._hint = row["seq"]
        return Entry(row["seq"], row["hash"])

    def prune(self, before: datetime, *, actor: Any = None, force: bool = False) -> int:
        """Delete the entries older than ``before``, leaving an anchor; return how many.

        Refuses to keep less than :data:`MIN_KEEP_DAYS` days unless ``force``."""
        now = self._clock()
        if not force and before > now - timedelta(days=MIN_KEEP_DAYS):
            raise ValueError(f"the audit log is kept at least {MIN_KEEP_DAYS} days")
        with self.store.transaction() as cur:
            row = cur.execute("SELECT max(seq), count(*) FROM audit_log WHERE ts < ?",
                              [before]).fetchone()
            if row is None or row[0] is None:
                return 0
            last = int(row[0])
            last_hash = cur.execute("SELECT hash FROM audit_log WHERE seq = ?",
                                    [last]).fetchone()[0]
            n = cur.execute("SELECT count(*) FROM audit_log WHERE seq <= ?",
                            [last]).fetchone()[0]
            self.record("audit.prune", actor=actor, cur=cur,
                        details={"after_seq": last, "hash": last_hash, "deleted": n,
                                 "before": before.astimezone(UTC).isoformat()})
            cur.execute("INSERT INTO audit_anchor VALUES (?, ?, ?)", [last, last_hash, now])
            cur.execute("DELETE FROM audit_log WHERE seq <= ?", [last])
        log.info("audit log: %d entries up to %d deleted (anchor %s)", n, last, last_hash[:12])
        return int(n)

    def import_user_log(self, directory) -> int:
        """Copy the users file's new change-log entries into the audit log; return how many.

        The position reached is kept per users file (its ``id``) in ``audit_state``, in the
        same transaction, so each change is recorded once."""
        key = f"users_log:{directory.file_id}"
        count = 0
        with self.store.transaction() as cur:
            row = cur.execute("SELECT value FROM audit_state WHERE key = ?", [key]).fetchone()
            done = int(row[0]) if row else 0
            for e in directory.log_since(done):
                by = e.get("by")
                admin = directory.get(by) if by else None
                changes = e.get("changes") if isinstance(e.get("changes"), dict) else {}
                self.record(_text(e.get("action")) or "user.change", actor=admin,
                            user_name=by or f"os:{e.get('os_user')}", target=e.get("user"),
                            address="cli", cur=cur,
                            details={**changes, "os_user": e.get("os_user"),
                                     "file_entry": e.get("n"), "file_time": e.get("at")})
                done = max(done, int(e.get("n", 0)))
                count += 1
            if count:
                cur.execute("INSERT OR REPLACE INTO audit_state VALUES (?, ?)", [key, str(done)])
        return count

    # ------------------------------------------------------------------ reading
    def head(self) -> Entry | None:
        """The newest entry (seq, hash): keep it elsewhere to detect a rewritten tail."""
        cur = self.store.cursor()
        try:
            row = cur.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            cur.close()
        return Entry(int(row[0]), row[1]) if row else None

    def verify(self, **kwargs) -> Verification:
        """:func:`verify` on this log's store."""
        return verify(self.store, **kwargs)

    def export(self, *, start: datetime | None = None, end: datetime | None = None,
               user: str | None = None, action: str | None = None,
               jurisdiction_prefix: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Entries as a DataFrame, newest first, filtered (``action`` may end with ``*``)."""
        return export(self.store, start=start, end=end, user=user, action=action,
                      jurisdiction_prefix=jurisdiction_prefix, limit=limit)

    def export_csv(self, **filters) -> bytes:
        """:meth:`export` as CSV (UTF-8 with BOM for spreadsheets; formulas neutralised)."""
        return to_csv(self.export(**filters))


def export(store, *, start=None, end=None, user=None, action=None, jurisdiction_prefix=None,
           limit=None) -> pd.DataFrame:
    """The audit log of ``store`` (any Store, read-only ones included) as a DataFrame."""
    where, params = [], []
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts < ?")
        params.append(end)
    if user is not None:
        where.append("user_name = ?")
        params.append(user)
    if action is not None:
        if action.endswith("*"):
            where.append("starts_with(action, ?)")
            params.append(action[:-1])
        else:
            where.append("action = ?")
            params.append(action)
    if jurisdiction_prefix is not None:  # entries about or by this jurisdiction
        where.append("(starts_with(jurisdiction, ?) OR starts_with(target_jurisdiction, ?))")
        params += [jurisdiction_prefix, jurisdiction_prefix]
    sql = ("SELECT seq, ts, user_name, role, jurisdiction, action, outcome, target, "
           "target_jurisdiction, address, reason, details, hash FROM audit_log")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return store.df(sql, params)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def to_csv(df: pd.DataFrame) -> bytes:
    """CSV for spreadsheets: UTF-8 with BOM; a cell that starts like a formula (a name tried
    at the login could be ``=HYPERLINK(…)``) gets a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(df.columns))
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and v != v):
                cells.append("")
            elif isinstance(v, pd.Timestamp | datetime):
                cells.append(pd.Timestamp(v).tz_convert("Asia/Shanghai").isoformat())
            else:
                text = str(v)
                cells.append("'" + text if text.startswith(_FORMULA) else text)
        writer.writerow(cells)
    return out.getvalue().encode("utf-8-sig")


def verify(store, *, expect_head: tuple[int, str] | None = None,
           batch: int = 10_000) -> Verification:
    """Check the chain of ``store``'s audit log; name the first broken entry.

    Parameters
    ----------
    expect_head : (seq, hash), optional
        An entry known from elsewhere (a printed or logged head): it must still be there
        with that hash (detects a deleted or rewritten tail).
    """
    cur = store.cursor()
    try:
        tables = {r[0] for r in cur.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name IN ('audit_log', 'audit_anchor')").fetchall()}
        if "audit_log" not in tables:
            return Verification(False, 0, 0, "this store has no audit log")
        anchor = None
        if "audit_anchor" in tables:
            anchor = cur.execute("SELECT after_seq, hash FROM audit_anchor "
                                 "ORDER BY after_seq DESC LIMIT 1").fetchone()
        expected_seq, prev = (int(anchor[0]) + 1, anchor[1]) if anchor else (1, GENESIS)
        anchor_confirmed = anchor is None
        checked, last = 0, None
        seen_head = expect_head is None
        result = cur.execute(_SELECT + " ORDER BY seq")
        names = [d[0] for d in result.description]
        while rows := result.fetchmany(batch):
            for values in rows:
                row = dict(zip(names, values, strict=True))
                seq = int(row["seq"])
                if seq != expected_seq:
                    what = (f"entry {expected_seq} is missing (the next is {seq})"
                            if seq > expected_seq else f"entry {seq} is out of order")
                    return Verification(False, checked, expected_seq if seq > expected_seq
                                        else seq, what)
                if row["prev_hash"] != prev:
                    return Verification(False, checked, seq,
                                        "its prev_hash is not the hash of the entry before")
                if entry_hash(row) != row["hash"]:
                    return Verification(False, checked, seq,
                                        "its contents do not match its hash (altered)")
                if not anchor_confirmed and row["action"] == "audit.prune":
                    d = json.loads(row["details"] or "{}")
                    anchor_confirmed = (d.get("after_seq") == int(anchor[0])
                                        and d.get("hash") == anchor[1])
                if not seen_head and seq == expect_head[0]:
                    if row["hash"] != expect_head[1]:
                        return Verification(False, checked, seq,
                                            "it is not the entry the expected head names")
                    seen_head = True
                prev, expected_seq, checked = row["hash"], seq + 1, checked + 1
                last = Entry(seq, row["hash"])
    finally:
        cur.close()
    if not anchor_confirmed:
        return Verification(False, checked, int(anchor[0]) + 1,
                            "the retention anchor is not recorded by an audit.prune entry")
    if not seen_head:
        return Verification(False, checked, expect_head[0],
                            "the expected head is gone (the tail was deleted)")
    return Verification(True, checked, head=last)


if __name__ == "__main__":
    from sources.access.audit_cli import main

    raise SystemExit(main())
