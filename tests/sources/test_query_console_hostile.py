"""The attacker's list against the query console: every attempt is contained.

Each attack runs twice: with the statement guard (the clear message) and without it, to show
that the sandbox itself — a read-only, locked-down DuckDB instance in a confined process —
holds. For each: a ``QueryResult`` comes back (never an exception); the canary secret (in
files beside the store, in the console's environment) never appears in it; nothing is written
(the canary output folder stays empty, the snapshot folder holds only snapshots, the store's
tables, row counts, sequences, macros and settings are unchanged); the console process stays
within bounds (RSS growth measured with psutil).

A control test runs the same file reads on a plain DuckDB connection and finds the secret:
the attacks are real.
"""
from __future__ import annotations

import gc
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sources.analysis.query_console import QueryResult, QueryRunner
from sources.analysis.sandbox import Sandbox
from sources.store.snapshot import list_snapshots, snapshot_dir
from sources.store.store import Store

SECRET = "CANARY-7f3a9c-secret"
BYTE_LIMIT = 4 * 2**20
#: How much the console process may grow over one attack (results are cut at BYTE_LIMIT).
RSS_SLACK = 64 * 2**20
STATUSES = {"ok", "refused", "error", "timeout", "cancelled"}


# ---------------------------------------------------------------------- the scene
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A store file, canary files with the secret, an empty output folder, the sandbox."""
    root = tmp_path_factory.mktemp("hostile")
    canary, out = root / "canary", root / "out"
    canary.mkdir()
    out.mkdir()
    (canary / "secret.txt").write_text(SECRET + "\n")
    (canary / "secret.csv").write_text(f"k,v\nkey,{SECRET}\n")
    (canary / "secret.json").write_text(f'{{"k": "{SECRET}"}}\n')
    pq.write_table(pa.table({"k": [SECRET]}), canary / "secret.parquet")
    store = Store(root / "console.duckdb")
    store.insert("counties", pa.table({
        "county_code": ["370102", "370103"], "name": ["历下区", "市中区"],
        "city": ["济南市", "济南市"], "city_code": ["370100", "370100"],
        "lon": [117.07, 116.99], "lat": [36.67, 36.65]}))
    n = 2000
    store.insert("risk_points", pa.table({
        "point_id": list(range(n)), "enterprise_id": [i % 50 for i in range(n)],
        "county_code": ["370102" if i % 2 else "370103" for i in range(n)],
        "kind": ["equipment"] * n,
        "risk_level": [("red", "orange", "yellow", "blue")[i % 4] for i in range(n)],
        "lon": [117.0 + i * 1e-5 for i in range(n)], "lat": [36.6 + i * 1e-5 for i in range(n)]}))
    store.checkpoint()
    old_env = os.environ.get("CONSOLE_TEST_SECRET")
    os.environ["CONSOLE_TEST_SECRET"] = SECRET  # what /proc/<console>/environ would leak
    sandbox = Sandbox(workers=2, memory_limit="256MB")
    guarded = QueryRunner(store=store, sandbox=sandbox, time_limit_s=2, byte_limit=BYTE_LIMIT,
                          max_age_s=1e9)
    bare = QueryRunner(store=store, sandbox=sandbox, time_limit_s=2, byte_limit=BYTE_LIMIT,
                       max_age_s=1e9, guard=False)
    guarded.run("SELECT 1")  # the one snapshot all attacks read (max_age_s keeps it)
    snaps = list_snapshots(store.path)
    assert len(snaps) == 1
    scene = {"root": root, "canary": canary, "out": out, "store": store, "sandbox": sandbox,
             "runners": {"guarded": guarded, "bare": bare}, "snapshot": snaps[0],
             "snapshot_sha": hashlib.sha256(snaps[0].read_bytes()).hexdigest(),
             "fingerprint": fingerprint(store),
             "attacks": dict(attacks(canary, out, store.path))}
    yield scene
    sandbox.stop()
    store.close()
    if old_env is None:
        os.environ.pop("CONSOLE_TEST_SECRET", None)
    else:
        os.environ["CONSOLE_TEST_SECRET"] = old_env


def fingerprint(store: Store) -> dict:
    """What an attack must not change in the live store (and its database instance)."""
    tables = store.tables()
    return {
        "tables": store.arrow("SELECT " + ", ".join(  # one round trip for every table
            f'(SELECT count(*) FROM "{t}") AS "{t}"' for t in tables)).to_pylist(),
        "catalog": store.arrow(
            "SELECT database_name, schema_name, table_name, estimated_size IS NOT NULL "
            "FROM duckdb_tables() ORDER BY ALL").to_pylist(),
        "views": store.arrow("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                             "ORDER BY 1").to_pylist(),
        "sequences": store.arrow("SELECT sequence_name, last_value FROM duckdb_sequences() "
                                 "ORDER BY 1").to_pylist(),
        "macros": store.arrow("SELECT function_name FROM duckdb_functions() WHERE NOT internal "
                              "ORDER BY 1").to_pylist(),
        "databases": store.arrow("SELECT database_name FROM duckdb_databases() "
                                 "ORDER BY 1").to_pylist(),
        "settings": store.arrow("SELECT name, value FROM duckdb_settings() ORDER BY 1"
                                ).to_pylist(),
    }


# ---------------------------------------------------------------------- the attacks
def q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attacks(canary, out, store_path) -> list[tuple[str, str]]:
    """(name, SQL) an attacker would try; paths are those of the scene."""
    txt, csv, js, pqf = (str(canary / f"secret.{e}") for e in ("txt", "csv", "json", "parquet"))
    read = f"SELECT content FROM read_text({q(txt)})"
    cmdline = "SELECT content FROM read_text('/proc/self/cmdline')"
    parent = f"/proc/{os.getpid()}"
    copy = f"COPY (SELECT 1) TO {q(str(out / 'q.csv'))}"
    found = [
        # the two reported escapes, and variants through every SQL-executing function
        ("json_execute_serialized_sql", "SELECT * FROM json_execute_serialized_sql("
                                        f"json_serialize_sql({q(cmdline)}))"),
        ("json_execute_canary", f"SELECT * FROM json_execute_serialized_sql(json_serialize_sql({q(read)}))"),
        ("pragma_json_execute", f"PRAGMA json_execute_serialized_sql(json_serialize_sql({q(read)}))"),
        ("query_canary", f"SELECT * FROM query({q(read)})"),
        ("query_cmdline", f"SELECT * FROM query({q(cmdline)})"),
        ("query_copy", f"SELECT * FROM query({q(copy)})"),
        ("query_table_file", f"SELECT * FROM query_table({q(txt)})"),
        ("enable_logging_file", "SELECT * FROM enable_logging(storage := 'file', "
                                f"storage_path := {q(str(out))})"),
        ("enable_logging", "SELECT * FROM enable_logging()"),
        ("call_enable_logging", f"CALL enable_logging(storage := 'file', storage_path := {q(str(out))})"),
        ("enable_profiling_file", f"SELECT * FROM enable_profiling(save_location := {q(str(out / 'p.json'))})"),
        ("disable_logging", "SELECT * FROM disable_logging()"),
        ("truncate_logs", "SELECT * FROM truncate_duckdb_logs()"),
        # file readers
        ("read_text", f"SELECT * FROM read_text({q(txt)})"),
        ("read_blob", f"SELECT * FROM read_blob({q(txt)})"),
        ("read_csv", f"SELECT * FROM read_csv({q(csv)})"),
        ("read_csv_auto", f"SELECT * FROM read_csv_auto({q(csv)})"),
        ("read_json", f"SELECT * FROM read_json({q(js)})"),
        ("read_json_auto", f"SELECT * FROM read_json_auto({q(js)})"),
        ("read_json_objects", f"SELECT * FROM read_json_objects({q(js)})"),
        ("read_ndjson", f"SELECT * FROM read_ndjson_objects({q(js)})"),
        ("read_parquet", f"SELECT * FROM read_parquet({q(pqf)})"),
        ("parquet_scan", f"SELECT * FROM parquet_scan({q(pqf)})"),
        ("parquet_metadata", f"SELECT * FROM parquet_kv_metadata({q(pqf)})"),
        ("sniff_csv", f"SELECT * FROM sniff_csv({q(csv)})"),
        ("glob", f"SELECT * FROM glob({q(str(canary / '*'))})"),
        ("replacement_scan", f"SELECT * FROM {q(csv)}"),
        ("from_file", f"FROM {q(txt)}"),
        ("etc_passwd", "SELECT * FROM '/etc/passwd'"),
        ("proc_environ", "FROM '/proc/self/environ'"),
        ("read_parent_environ", f"SELECT * FROM read_text('{parent}/environ')"),
        ("read_parent_cmdline", f"SELECT * FROM read_text('{parent}/cmdline')"),
        ("read_live_store", f"SELECT * FROM read_duckdb({q(str(store_path))}, table_name := 'counties')"),
        ("read_csv_in_cte", f"WITH s AS (SELECT * FROM read_csv({q(csv)})) SELECT * FROM s"),
        ("read_text_subquery", f"SELECT (SELECT content FROM read_text({q(txt)})) AS x"),
        ("read_text_lateral", f"SELECT t.* FROM range(1), LATERAL read_text({q(txt)}) t"),
        # writes to files, databases, extensions
        ("copy_to", f"COPY (SELECT 42) TO {q(str(out / 'x.csv'))}"),
        ("copy_table_to", f"COPY risk_points TO {q(str(out / 'r.parquet'))} (FORMAT parquet)"),
        ("copy_from", f"COPY counties FROM {q(csv)}"),
        ("export_database", f"EXPORT DATABASE {q(str(out / 'exp'))}"),
        ("import_database", f"IMPORT DATABASE {q(str(canary))}"),
        ("attach_new", f"ATTACH {q(str(out / 'new.duckdb'))} AS n"),
        ("attach_live", f"ATTACH {q(str(store_path))} AS live"),
        ("attach_memory", "ATTACH ':memory:' AS m"),
        ("copy_database", "COPY FROM DATABASE memory TO other"),
        ("detach", "DETACH console"),
        ("install", "INSTALL spatial"),
        ("force_install", "FORCE INSTALL httpfs"),
        ("load", "LOAD spatial"),
        ("load_file", f"LOAD {q(str(canary / 'secret.txt'))}"),
        # settings
        ("set_threads", "SET threads = 64"),
        ("set_memory", "SET memory_limit = '100GB'"),
        ("set_external_access", "SET enable_external_access = true"),
        ("unlock", "SET lock_configuration = false"),
        ("reset_all", "RESET ALL"),
        ("set_profiling_output", f"SET profiling_output = {q(str(out / 'prof.json'))}"),
        ("pragma_profiling", "PRAGMA enable_profiling = 'json'"),
        ("pragma_threads", "PRAGMA threads = 1"),
        ("set_search_path", "SET search_path = 'temp'"),
        ("use", "USE memory"),
        ("set_variable", "SET VARIABLE leak = 1"),
        ("set_variable_fn", "SELECT set_variable('leak', 1)"),
        ("current_setting", "SELECT current_setting('secret_directory') AS s"),
        ("settings", "SELECT name, value FROM duckdb_settings()"),
        ("getenv", "SELECT getenv('CONSOLE_TEST_SECRET') AS s"),
        ("getenv_home", "SELECT getenv('HOME') AS s"),
        # secrets
        ("secrets", "SELECT * FROM duckdb_secrets()"),
        ("which_secret", "SELECT * FROM which_secret('s3://x/y', 's3')"),
        ("create_secret", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')"),
        ("create_persistent_secret", "CREATE PERSISTENT SECRET p (TYPE s3, KEY_ID 'k', SECRET 'v')"),
        # writes to the store
        ("delete", "DELETE FROM risk_points"),
        ("update", "UPDATE risk_points SET risk_level = 'red'"),
        ("insert_returning", "INSERT INTO counties (county_code, name, city, city_code, lon, lat) "
                              "VALUES ('1', 'x', 'y', 'z', 0, 0) RETURNING *"),
        ("cte_delete_returning", "WITH d AS (DELETE FROM risk_points RETURNING *) "
                                 "SELECT count(*) FROM d"),
        ("drop", "DROP TABLE risk_points"),
        ("create_table", "CREATE TABLE pwned AS SELECT 1"),
        ("create_temp_table", "CREATE TEMP TABLE pwned AS SELECT 1"),
        ("create_view", "CREATE VIEW pwned AS SELECT 1"),
        ("create_macro", "CREATE MACRO pwned(x) AS x"),
        ("create_temp_macro", "CREATE TEMP MACRO pwned(x) AS x"),
        ("create_sequence", "CREATE SEQUENCE pwned"),
        ("nextval", "SELECT nextval('inventory_ids')"),
        ("alter", "ALTER TABLE risk_points ADD COLUMN pwned INT"),
        ("comment", "COMMENT ON TABLE risk_points IS 'pwned'"),
        ("checkpoint", "CHECKPOINT"),
        ("call_checkpoint", "CALL checkpoint()"),
        ("checkpoint_fn", "SELECT * FROM checkpoint()"),
        ("force_checkpoint", "SELECT * FROM force_checkpoint()"),
        ("vacuum", "VACUUM"),
        ("begin", "BEGIN TRANSACTION"),
        ("prepare", "PREPARE p AS DELETE FROM risk_points"),
        ("explain_analyze", "EXPLAIN ANALYZE DELETE FROM risk_points"),
        ("multi", f"SELECT 1; COPY (SELECT 1) TO {q(str(out / 'm.csv'))}"),
        ("grammar_extension", "SELECT * FROM add_grammar_extension('x')"),
        ("external_resource", "SELECT * FROM register_external_resource_type('x', 'y', 'a', 'b', "
                              "'c', 'd', 'e')"),
        # resources
        ("rows", "SELECT * FROM range(100000000)"),
        ("bytes", "SELECT repeat('x', 10000000) AS s FROM range(100)"),
        ("one_huge_string", "SELECT repeat('x', 10000000) AS s"),
        ("huge_string_1gb", "SELECT length(repeat('x', 1000000000)) AS n"),
        ("memory_agg", "SELECT length(string_agg(repeat('x', 1000), ',')) FROM range(2000000)"),
        ("memory_list", "SELECT len(list(range)) FROM range(200000000)"),
        ("sort_would_spill", "SELECT * FROM range(200000000) ORDER BY random() LIMIT 1"),
        ("cross_join_count", "SELECT count(*) FROM range(1000000) a, range(1000000) b"),
        ("cross_join_rows", "SELECT * FROM range(100000) a, range(100000) b"),
        ("recursive_forever", "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                              "SELECT count(*) FROM r"),
        ("deep_parens_600", "SELECT " + "(" * 600 + "1" + ")" * 600),
        ("deep_plus_600", "SELECT " + "1+" * 600 + "1"),
        ("deep_subquery_600", "SELECT " + "(SELECT " * 600 + "1" + ")" * 600),
        ("deep_list_600", "SELECT " + "[" * 600 + "1" + "]" * 600),
        ("deep_concat_300", "SELECT " + " || ".join(f"'{i}'" for i in range(300))),
        ("deep_parens_100000", "SELECT " + "(" * 100000 + "1" + ")" * 100000),
        ("union_300_rows", " UNION ALL ".join(f"SELECT {i} AS i" for i in range(300))),
        ("sql_too_long", "SELECT 1" + " " * 200_000),
        ("lone_surrogate", "SELECT '\ud800' AS s"),
        ("nul_byte", "SELECT 'a\x00b' AS s"),
        ("invalid_utf8_blob", "SELECT '\xff\xfe'::BLOB::VARCHAR AS s"),
    ]
    return found + generated(txt, read)


def generated(path: str, read: str) -> list[tuple[str, str]]:
    """Every table and pragma function of the installed DuckDB whose first argument is a
    string, called with the canary's path and with SQL that reads it."""
    con = duckdb.connect()
    rows = con.execute(
        "SELECT DISTINCT function_name, function_type FROM duckdb_functions() "
        "WHERE function_type IN ('table', 'pragma') AND len(parameter_types) >= 1 "
        "AND parameter_types[1] IN ('VARCHAR', 'ANY') ORDER BY 1, 2").fetchall()
    con.close()
    out = []
    for name, kind in rows:
        for label, arg in (("path", q(path)), ("sql", q(read))):
            sql = (f"PRAGMA {name}({arg})" if kind == "pragma"
                   else f"SELECT * FROM {name}({arg})")
            out.append((f"fn_{kind}_{name}_{label}", sql))
    return out


ATTACK_NAMES = [name for name, _ in attacks(Path("/c"), Path("/o"), "/s.duckdb")]


def attack_sql(scene, name: str) -> str:
    return scene["attacks"][name]


def shown(result: QueryResult) -> str:
    """Everything of a result a user could see."""
    text = f"{result.message}\n{result.code}"
    if result.table is not None:
        text += "\n" + repr(result.table.to_pylist()) + repr(result.table.schema)
    return text


def rss() -> int:
    return psutil.Process().memory_info().rss


def growth(before: int) -> int:
    """RSS growth since ``before``; over the slack, garbage is collected and it is measured
    again (a full collection per attack was most of this suite's time)."""
    grown = rss() - before
    if grown >= RSS_SLACK:
        gc.collect()
        grown = rss() - before
    return grown


# ---------------------------------------------------------------------- the suite
@pytest.mark.parametrize("mode", ["guarded", "bare"])
@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_is_contained(scene, name, mode):
    runner = scene["runners"][mode]
    sql = attack_sql(scene, name)
    before = rss()
    result = runner.run(sql)
    grown = growth(before)
    assert isinstance(result, QueryResult), result
    assert result.status in STATUSES, result
    if not result.ok:
        assert result.message or result.code, result
    if result.ok and result.table is not None:
        assert result.extra["bytes"] <= BYTE_LIMIT and result.table.nbytes <= BYTE_LIMIT
    assert SECRET not in shown(result), f"{name}: the canary leaked"
    assert "--basic-auth" not in shown(result)
    assert list(scene["out"].iterdir()) == [], f"{name} wrote {list(scene['out'].iterdir())}"
    assert sorted(p.name for p in scene["canary"].iterdir()) == [
        "secret.csv", "secret.json", "secret.parquet", "secret.txt"]
    assert [p.name for p in snapshot_dir(scene["store"].path).iterdir()] == [
        scene["snapshot"].name], f"{name} wrote beside the snapshots"
    assert sorted(p.name for p in scene["root"].iterdir()) == [
        "canary", "console.duckdb", "out", "snapshots"], "no spill or log file beside the store"
    assert fingerprint(scene["store"]) == scene["fingerprint"], f"{name} changed the store"
    assert grown < RSS_SLACK, f"{name}: the console grew by {grown / 2**20:.0f} MB"


EXPECTED = {  # what the bare engine (no guard) answers for the clearest cases
    "json_execute_serialized_sql": "file", "query_canary": "file", "read_text": "file",
    "enable_logging_file": "setting", "enable_logging": "setting", "set_threads": "setting",
    "unlock": "setting", "delete": "write", "cte_delete_returning": "write",
    "insert_returning": "write", "load": "extension", "copy_to": "file",
    "attach_new": "file", "memory_list": "memory",
}


@pytest.mark.parametrize(("name", "code"), sorted(EXPECTED.items()))
def test_the_engine_names_what_it_refused(scene, name, code):
    result = scene["runners"]["bare"].run(attack_sql(scene, name))
    assert result.status == "refused" and result.code == code, result


@pytest.mark.parametrize("mode", ["guarded", "bare"])
def test_limits_cut_cleanly_and_say_so(scene, mode):
    runner = scene["runners"][mode]
    rows = runner.run("SELECT * FROM range(100000000)")
    assert rows.ok and rows.truncated and rows.cut == "rows"
    assert rows.table.num_rows == runner.row_limit
    one = runner.run("SELECT repeat('x', 10000000) AS s")  # 10 MB > the 4 MB limit
    assert one.ok and one.cut == "bytes" and one.table.num_rows == 0
    assert one.table.column_names == ["s"]
    many = runner.run("SELECT i, repeat('x', 100000) AS s FROM range(1000) t(i)")
    assert many.ok and many.cut == "bytes" and 0 < many.table.num_rows < 1000
    assert many.table.column("i").to_pylist() == list(range(many.table.num_rows))
    assert many.extra["byte_limit"] == BYTE_LIMIT
    slow = runner.run("SELECT count(*) FROM range(1000000) a, range(1000000) b")
    assert slow.status == "timeout" and slow.extra["time_limit_s"] == 2
    memory = runner.run("SELECT len(list(range)) FROM range(200000000)")
    assert memory.status == "refused" and memory.code == "memory", memory
    deep = runner.run("SELECT " + "(" * 5000 + "1" + ")" * 5000)
    assert deep.status == "refused" and deep.code == "depth", deep
    assert runner.run("SELECT " + "1+" * 600 + "1").table.column(0)[0].as_py() == 601


def test_nothing_a_query_does_outlives_it(scene):
    """Each query gets a fresh locked instance: state set by one is gone for the next."""
    bare = scene["runners"]["bare"]
    bare.run("SET VARIABLE leak = 42")
    assert bare.run("SELECT getvariable('leak') AS v").table.to_pylist() == [{"v": None}]
    bare.run("CREATE TEMP MACRO pwned(x) AS x")
    assert bare.run("SELECT pwned(1)").status == "error"
    bare.run("ATTACH ':memory:' AS m")
    names = bare.run("SELECT database_name FROM duckdb_databases()").table.column(0).to_pylist()
    assert "m" not in names
    bare.run("CREATE TEMP TABLE pwned AS SELECT 1")
    assert bare.run("SELECT * FROM pwned").status == "error"


def test_the_sandbox_processes_hold_no_secret_and_are_confined(scene):
    sandbox = scene["sandbox"]
    for _ in range(3):  # a process worn by the attacks is replaced after its next query
        scene["runners"]["guarded"].run("SELECT 1")
        if sandbox.pids():
            break
    pids = sandbox.pids()
    assert pids and os.getpid() not in pids
    for pid in pids:
        proc = psutil.Process(pid)
        assert SECRET not in " ".join(proc.cmdline())
        assert "CONSOLE_TEST_SECRET" not in proc.environ()
        assert proc.rlimit(psutil.RLIMIT_FSIZE) == (0, 0)
        assert proc.rlimit(psutil.RLIMIT_CORE) == (0, 0)
        assert proc.rlimit(psutil.RLIMIT_AS)[1] == sandbox.address_space_mb * 2**20
        assert proc.nice() >= sandbox.nice
        assert proc.ppid() == os.getpid()


def test_the_snapshot_read_is_unchanged(scene):
    assert hashlib.sha256(scene["snapshot"].read_bytes()).hexdigest() == scene["snapshot_sha"]


def test_a_crashed_sandbox_answers_and_is_replaced(scene):
    runner = scene["runners"]["guarded"]
    runner.run("SELECT 1")
    for pid in scene["sandbox"].pids():
        os.kill(pid, 9)
    result = runner.run("SELECT 41 + 1 AS n")  # a dead idle process is replaced
    assert result.ok and result.table.column("n")[0].as_py() == 42


def test_the_attacks_are_real_on_an_unlocked_duckdb(scene):
    """Control: the same reads on a plain connection return the secret."""
    con = duckdb.connect()
    try:
        for name in ("read_text", "read_csv", "read_json", "read_parquet", "replacement_scan",
                     "json_execute_canary", "query_canary"):
            rows = con.execute(attack_sql(scene, name)).fetchall()
            assert SECRET in repr(rows), name
    finally:
        con.close()


def test_the_sandbox_runs_under_a_plain_interpreter():
    """The worker imports nothing of the project's packages (they would bring the console's
    configuration with them): it runs from its own folder with only duckdb and pyarrow."""
    from sources.analysis import sandbox_worker

    code = ("import sys; "
            f"sys.path.insert(0, {str(os.path.dirname(sandbox_worker.__file__))!r}); "
            "import sandbox_worker; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sources', 'views', 'dashboards', 'data')))")
    out = subprocess.run([sys.executable, "-E", "-s", "-B", "-c", code], capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(sandbox_worker.__file__))
    assert out.stdout.strip() == "[]", out


def test_a_query_that_crashes_its_process_gets_a_message(scene):
    """A process that dies inside a query (here: SIGSEGV from outside, twice, as DuckDB
    crashing on the query would) answers 'sandbox' with the signal; the next query runs."""
    import threading

    from tests.conftest import wait_until

    runner = QueryRunner(store=scene["store"], sandbox=scene["sandbox"], time_limit_s=20,
                         max_age_s=1e9)
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("r", runner.run(
        "SELECT count(*) FROM range(1000000) a, range(1000000) b")))
    worker.start()
    killed: set[int] = set()
    for _ in range(2):  # the console tries a process that died on its own once more
        pid = wait_until(lambda: _running_pid(runner, killed), timeout=20)
        killed.add(pid)
        os.kill(pid, 11)
    worker.join(30)
    result = out["r"]
    assert result.status == "refused" and result.code == "sandbox", result
    assert "SIGSEGV" in result.message
    assert runner.run("SELECT 7 AS n").table.column("n")[0].as_py() == 7


def _running_pid(runner: QueryRunner, not_these: set[int]) -> int | None:
    """The sandbox process running the runner's query now (not one already killed)."""
    for ticket in list(runner._active.values()):
        worker = ticket._worker
        if worker is not None and worker.proc.pid not in not_these:
            return worker.proc.pid
    return None
