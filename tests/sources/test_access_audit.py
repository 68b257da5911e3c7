"""The audit log: entries of each kind, a hash chain that any alteration breaks, retention."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sources.access.audit import CHAINED, GENESIS, AuditLog
from sources.access.sessions import Principal
from sources.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
LI = Principal(name="li.county", role="officer", jurisdiction="371302", session="ab" * 32,
               address="10.1.2.3")
QIAN = Principal(name="qian.analyst", role="analyst", jurisdiction="370000")


class Clock:
    def __init__(self):
        self.now = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def audit(tmp_path):
    store = Store(tmp_path / "audit.duckdb")
    log = AuditLog(store, clock=Clock())
    yield log
    store.close()


def fill(audit: AuditLog) -> None:
    """One entry of each kind the console records."""
    audit.record("login.failure", user_name="li.county", outcome="failed", address="10.1.2.3",
                 reason="bad_password")
    audit.record("login.success", actor=LI)
    audit.record("alarm.acknowledge", actor=LI, target="alarm:42", target_jurisdiction="371302",
                 details={"status": ["open", "acknowledged"]})
    audit.record("alarm.acknowledge", actor=LI, outcome="denied", target="alarm:43",
                 target_jurisdiction="371311", reason="access.denied.jurisdiction")
    audit.record("export", actor=QIAN, target="enterprises.csv", details={"rows": 1200})
    audit.record("console.query", actor=QIAN, details={"sql": "SELECT 1", "rows": 1})
    audit.record("logout", actor=LI)


def test_each_kind_is_recorded_with_who_what_where(audit):
    fill(audit)
    df = audit.export()
    assert list(df["seq"]) == [7, 6, 5, 4, 3, 2, 1]  # newest first
    assert list(df["action"][::-1]) == ["login.failure", "login.success", "alarm.acknowledge",
                                        "alarm.acknowledge", "export", "console.query", "logout"]
    ack = df[df.seq == 3].iloc[0]
    assert (ack.user_name, ack.role, ack.jurisdiction, ack.address, ack.target) == (
        "li.county", "officer", "371302", "10.1.2.3", "alarm:42")
    assert json.loads(ack.details) == {"status": ["open", "acknowledged"]}
    assert df[df.seq == 1].iloc[0].reason == "bad_password"
    assert df[df.seq == 4].iloc[0].outcome == "denied"
    assert audit.verify().ok and audit.verify().checked == 7


def raw_rows(store, where: str = "") -> list[dict]:
    """Rows as DuckDB returns them (no pandas NaN), ``ts`` as epoch microseconds."""
    cur = store.cursor()
    try:
        res = cur.execute(f"SELECT *, epoch_us(ts) AS ts_us FROM audit_log {where} ORDER BY seq")
        names = [d[0] for d in res.description]
        return [dict(zip(names, r, strict=True)) for r in res.fetchall()]
    finally:
        cur.close()


def test_the_chain_matches_an_independent_recomputation(audit):
    """SHA-256 over the compact JSON array of the chained columns, prev hash included."""
    fill(audit)
    prev = GENESIS
    for r in raw_rows(audit.store):
        values = [r[c] for c in CHAINED]
        encoded = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
        assert r["prev_hash"] == prev
        assert hashlib.sha256(encoded).hexdigest() == r["hash"]
        prev = r["hash"]


ALTERATIONS = {
    "ts": "ts = ts + INTERVAL 1 SECOND",
    "user_name": "user_name = 'zhao.city'",
    "role": "role = 'admin'",
    "jurisdiction": "jurisdiction = '370000'",
    "action": "action = 'alarm.close'",
    "outcome": "outcome = 'denied'",
    "target": "target = 'alarm:44'",
    "target_jurisdiction": "target_jurisdiction = '371300'",
    "address": "address = '10.9.9.9'",
    "reason": "reason = 'x'",
    "details": "details = '{\"status\":[\"open\",\"closed\"]}'",
    "prev_hash": "prev_hash = repeat('0', 64)",
    "hash": "hash = repeat('f', 64)",
}


@pytest.mark.parametrize("column", sorted(ALTERATIONS))
def test_altering_any_column_of_an_entry_breaks_verification_there(audit, column):
    fill(audit)
    audit.store.execute(f"UPDATE audit_log SET {ALTERATIONS[column]} WHERE seq = 3")
    result = audit.verify()
    assert not result.ok and result.first_bad == 3, result


def test_rewriting_an_entry_with_a_fresh_hash_breaks_the_next_link(audit):
    from sources.access.audit import entry_hash

    fill(audit)
    row = raw_rows(audit.store, "WHERE seq = 3")[0]
    row["user_name"] = "zhao.city"
    forged = entry_hash(row)
    audit.store.execute("UPDATE audit_log SET user_name = 'zhao.city', hash = ? WHERE seq = 3",
                        [forged])
    result = audit.verify()
    assert not result.ok and result.first_bad == 4
    assert "prev_hash" in result.problem


def test_deleting_an_entry_in_the_middle_names_it(audit):
    fill(audit)
    audit.store.execute("DELETE FROM audit_log WHERE seq = 4")
    result = audit.verify()
    assert not result.ok and result.first_bad == 4 and "missing" in result.problem


def test_a_deleted_tail_is_caught_by_a_head_kept_elsewhere(audit):
    fill(audit)
    head = audit.head()
    audit.store.execute("DELETE FROM audit_log WHERE seq >= 6")
    assert audit.verify().ok  # the chain alone cannot see a cut tail …
    result = audit.verify(expect_head=(head.seq, head.hash))
    assert not result.ok and result.first_bad == 7  # … the head noted earlier does


def test_a_rolled_back_action_leaves_no_entry_and_no_gap(audit):
    fill(audit)
    with pytest.raises(RuntimeError), audit.store.transaction() as cur:
        audit.record("alarm.close", actor=LI, target="alarm:42", cur=cur)
        raise RuntimeError("the action failed")
    entry = audit.record("alarm.close", actor=LI, target="alarm:42")
    assert entry.seq == 8 and audit.verify().ok


def test_hostile_text_is_recorded_and_verifies(audit):
    audit.record("login.failure", user_name="\ud800<script>\x00'; DROP TABLE audit_log;--",
                 outcome="failed", details={"sql": "x" * 100_000, "odd": "\udfff"})
    audit.record("login.failure", user_name="=HYPERLINK(\"http://evil\")", outcome="failed")
    assert audit.verify().ok
    df = audit.export()
    assert "DROP TABLE" in df.iloc[1].user_name and "\x00" not in df.iloc[1].user_name
    assert json.loads(df.iloc[1].details)["truncated"] is True
    csv = audit.export_csv().decode("utf-8-sig")
    assert "'=HYPERLINK" in csv and ",=HYPERLINK" not in csv


def test_retention_keeps_verification_working(audit):
    fill(audit)  # 08:00:01 … 08:00:07
    audit._clock.now += timedelta(days=400)
    audit.record("alarm.close", actor=LI, target="alarm:42")
    with pytest.raises(ValueError, match="180 days"):
        audit.prune(audit._clock.now - timedelta(days=10))
    cutoff = datetime(2025, 6, 1, 8, 0, 4, 500_000, tzinfo=UTC)  # after entry 4
    assert audit.prune(cutoff, force=True) == 4
    df = audit.export()
    assert sorted(df.seq) == [5, 6, 7, 8, 9]
    prune = df[df.action == "audit.prune"].iloc[0]
    assert json.loads(prune.details)["after_seq"] == 4
    assert audit.verify().ok, audit.verify()
    audit.record("logout", actor=LI)
    assert audit.verify().ok
    # deleting the oldest remaining entries without an anchor is caught
    audit.store.execute("DELETE FROM audit_log WHERE seq = 5")
    assert audit.verify().first_bad == 5


def test_a_forged_anchor_is_caught(audit):
    fill(audit)
    audit.prune(datetime(2025, 6, 1, 8, 0, 3, 500_000, tzinfo=UTC), force=True)
    audit.store.execute("DELETE FROM audit_log WHERE seq = 4")
    h4 = audit.store.scalar("SELECT prev_hash FROM audit_log WHERE seq = 5")
    audit.store.execute("INSERT INTO audit_anchor VALUES (4, ?, now())", [h4])
    result = audit.verify()
    assert not result.ok and "anchor" in result.problem


def test_user_changes_from_the_command_line_are_imported_once(tmp_path, audit):
    from sources.access.users import UserDirectory
    from tests.sources.access_fixtures import make_users, users_cli

    users = tmp_path / "users.json"
    make_users(users, users=[("wang.admin", "admin", "370000"), ("li.county", "officer",
                                                                 "371302")], wall=None)
    directory = UserDirectory(users, check_interval_s=0)
    assert audit.import_user_log(directory) == 2
    assert audit.import_user_log(directory) == 0
    users_cli(users, "--by", "wang.admin", "disable", "li.county")
    directory.refresh()
    assert audit.import_user_log(directory) == 1
    last = audit.export(action="user.*").iloc[0]
    assert (last.action, last.user_name, last.role, last.target, last.address) == (
        "user.disable", "wang.admin", "admin", "li.county", "cli")
    assert json.loads(last.details)["disabled"] is True
    assert audit.verify().ok


# ---------------------------------------------------------------------- command line
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sources.access.audit", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_verify_passes_then_names_the_altered_entry(tmp_path):
    db = tmp_path / "store.duckdb"
    store = Store(db)
    fill(AuditLog(store, clock=Clock()))
    store.close()
    ok = run_cli("verify", "--db", str(db))
    assert ok.returncode == 0 and "intact: 7 entries" in ok.stdout
    head = run_cli("head", "--db", str(db)).stdout.strip()
    store = Store(db)
    store.execute("UPDATE audit_log SET target = 'alarm:1' WHERE seq = 5")
    store.close()
    bad = run_cli("verify", "--db", str(db))
    assert bad.returncode == 1 and "BROKEN at entry 5" in bad.stdout
    store = Store(db)
    store.execute("UPDATE audit_log SET target = 'enterprises.csv' WHERE seq = 5")
    store.execute("DELETE FROM audit_log WHERE seq = 7")
    store.close()
    cut = run_cli("verify", "--db", str(db), "--expect-head", head)
    assert cut.returncode == 1 and "entry 7" in cut.stdout


def test_cli_verifies_the_newest_snapshot_while_the_console_holds_the_store(tmp_path):
    from sources.store.snapshot import write_snapshot

    db = tmp_path / "console.duckdb"
    store = Store(db)  # the "console": holds the file read-write
    try:
        fill(AuditLog(store, clock=Clock()))
        shared = write_snapshot(store)  # what analysts read: no audit trail in it
        probe = Store(shared, read_only=True)
        assert "audit_log" not in probe.tables()
        probe.close()
        snap = write_snapshot(store, private=True)  # the administrators' copy
        assert oct(snap.stat().st_mode & 0o777) == "0o600"
        out = run_cli("verify", "--db", str(db))
        assert out.returncode == 0 and str(snap) in out.stdout and "7 entries" in out.stdout
        csv_path = tmp_path / "audit.csv"
        assert run_cli("--db", str(db), "export", "--out", str(csv_path)).returncode == 0
        assert csv_path.read_bytes().startswith(b"\xef\xbb\xbfseq,ts,user_name")
    finally:
        store.close()


def test_cli_on_a_store_without_an_audit_log(tmp_path):
    db = tmp_path / "plain.duckdb"
    Store(db).close()
    out = run_cli("verify", "--db", str(db))
    assert out.returncode == 1 and "no audit log" in out.stdout
    missing = run_cli("verify", "--db", str(tmp_path / "nope.duckdb"))
    assert missing.returncode == 2 and "no such store" in missing.stderr
