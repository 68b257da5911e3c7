"""Benchmark (not a test): what access control costs — a password check, an audit entry,
verifying the audit chain.

``python bench/access.py [--entries 100000] [--repeat 30]``

* login: one scrypt check (N=2**15, r=8, p=1) against one SHA-256 of the same text (the
  cost of checking a wall token), medians of ``--repeat``;
* audit: ``AuditLog.record`` (own transaction: reads the chain's tail, hashes, inserts)
  against a plain one-row INSERT of the same columns in its own transaction, both on a
  DuckDB file that already holds ``--entries`` entries;
* verify: entries checked per second over the whole chain.

Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sources.access.audit import AuditLog  # noqa: E402
from sources.access.passwords import hash_password, verify_password  # noqa: E402
from sources.access.sessions import Principal  # noqa: E402
from sources.store.store import Store  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def prefill(store: Store, n: int, start: datetime) -> None:
    """``n`` chained entries, hashed exactly as ``AuditLog.record`` does, in one insert."""
    import pandas as pd

    from sources.access.audit import GENESIS, canonical_details, entry_hash

    rows, prev = [], GENESIS
    details = canonical_details({"status": ["open", "ack"]})
    for i in range(n):
        at = start + timedelta(seconds=i)
        row = {"seq": i + 1, "ts_us": int(at.timestamp()) * 1_000_000,
               "user_name": "li.county", "role": "officer", "jurisdiction": "371302",
               "action": "alarm.acknowledge", "outcome": "ok", "target": f"alarm:{i}",
               "target_jurisdiction": "371302", "address": "10.0.0.1", "reason": None,
               "details": details, "prev_hash": prev}
        row["hash"] = prev = entry_hash(row)
        rows.append(row)
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df.pop("ts_us"), unit="us", utc=True)
    store.insert("audit_log", df)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()

    stored = hash_password("a duty officer's password")
    kdf_ms = median_ms(lambda: verify_password("a duty officer's password", stored),
                       args.repeat)
    sha_ms = median_ms(lambda: hashlib.sha256(b"a duty officer's password").hexdigest(),
                       args.repeat)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        audit = AuditLog(store)
        who = Principal(name="li.county", role="officer", jurisdiction="371302",
                        address="10.0.0.1")
        start = datetime.now(UTC) - timedelta(days=30)
        t0 = time.perf_counter()
        prefill(store, args.entries, start)  # the chain computed here, inserted in one batch
        prefill_s = time.perf_counter() - t0
        store.execute("CREATE TABLE plain AS SELECT * FROM audit_log LIMIT 0")
        n = [args.entries]

        def plain():
            n[0] += 1
            store.execute("INSERT INTO plain VALUES (?, now(), 'li.county', 'officer', "
                          "'371302', 'alarm.acknowledge', 'ok', 'alarm:1', '371302', "
                          "'10.0.0.1', NULL, '{}', ?, ?)", [n[0], "0" * 64, "0" * 64])

        plain_ms = median_ms(plain, args.repeat)
        record_ms = median_ms(lambda: audit.record("alarm.acknowledge", actor=who,
                                                   target="alarm:1"), args.repeat)
        t0 = time.perf_counter()
        result = audit.verify()
        verify_s = time.perf_counter() - t0
        store.close()
    assert result.ok, result

    rows = [("scrypt password check (ms)", kdf_ms), ("sha-256 token check (ms)", sha_ms),
            ("plain insert, own transaction (ms)", plain_ms),
            (f"audit.record with {args.entries} entries (ms)", record_ms),
            (f"verify {result.checked} entries (s)", verify_s),
            ("prefill, one transaction (s)", prefill_s)]
    for label, value in rows:
        print(f"{label:<45} {value:10.3f}")
    print(json.dumps({
        "scrypt_check_ms": round(kdf_ms, 1), "sha256_check_ms": round(sha_ms, 4),
        "audit_record_ms": round(record_ms, 2), "plain_insert_ms": round(plain_ms, 2),
        "record_vs_plain_insert": round(record_ms / plain_ms, 2),
        "verify_entries_per_s": round(result.checked / verify_s),
        "entries": result.checked}))


if __name__ == "__main__":
    main()
