"""``python -m sources.access.audit``: verify the audit log's chain, print its head, export it.

``verify`` exits 0 when the chain is intact and 1 naming the first broken entry. It reads
the store file itself when the console is stopped and the newest snapshot while it runs
(the console holds the file exclusively); the line printed says which file was checked.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from sources.access.audit import export, to_csv, verify


class CliError(Exception):
    pass


def open_store(db: str | None):
    """The store itself (read-only) or, while the console holds it, its newest private copy
    (the snapshots analysts read leave the audit trail out)."""
    from sources.store.snapshot import default_db, list_snapshots, private_dir
    from sources.store.store import Store

    path = Path(db) if db else default_db()
    if not path.is_file():
        raise CliError(f"{path}: no such store")
    try:
        return Store(path, read_only=True), path
    except Exception as exc:
        copies = list_snapshots(path, private_dir(path))
        snap = copies[-1] if copies else None
        if snap is None:
            raise CliError(f"{path} cannot be opened ({type(exc).__name__}) and has no "
                           "snapshot yet: write one from the console, or stop it") from None
        return Store(snap, read_only=True), snap


def _head(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise CliError("--expect-head is SEQ:SHA256HEX (as `head` prints it)")
    return int(seq), digest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sources.access.audit",
                                description="Check and export the console's audit log.")
    p.add_argument("--db", default=None, help="the store (default $CONSOLE_DB or "
                   "var/console.duckdb); its newest snapshot while the console runs")
    # --db is taken before or after the command: `verify --db PATH` reads naturally
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", parents=[common],
                       help="verify the hash chain (exit 1 names the first break)")
    v.add_argument("--expect-head", default=None, metavar="SEQ:HASH",
                   help="an entry noted earlier that must still be there")
    sub.add_parser("head", parents=[common], help="print the newest entry as SEQ:HASH")
    e = sub.add_parser("export", parents=[common], help="write the log as CSV (newest first)")
    e.add_argument("--out", required=True, help="CSV file ('-' for stdout)")
    e.add_argument("--since", default=None, help="ISO time, e.g. 2025-06-01T00:00:00+08:00")
    e.add_argument("--user", default=None)
    e.add_argument("--action", default=None, help="an action, or a prefix ending in *")
    args = p.parse_args(argv)
    try:
        expect = _head(getattr(args, "expect_head", None))
        store, path = open_store(args.db)
        try:
            if args.command == "verify":
                result = verify(store, expect_head=expect)
                sys.stdout.write(f"{path}: {result.line()}\n")
                return 0 if result.ok else 1
            if args.command == "head":
                result = verify(store)
                if not result.ok or result.head is None:
                    sys.stdout.write(f"{path}: {result.line()}\n")
                    return 1
                sys.stdout.write(f"{result.head.seq}:{result.head.hash}\n")
                return 0
            since = datetime.fromisoformat(args.since) if args.since else None
            if since is not None and since.tzinfo is None:
                raise CliError("--since needs a time zone (…+08:00)")
            data = to_csv(export(store, start=since, user=args.user, action=args.action))
            if args.out == "-":
                sys.stdout.buffer.write(data)
            else:
                Path(args.out).write_bytes(data)
            return 0
        finally:
            store.close()
    except (CliError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
