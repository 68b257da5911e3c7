"""The query console's read-only guard, limits, cancel and saved consoles, on a real DuckDB file.

The attacker's list is in ``test_query_console_hostile.py``.
"""
from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from sources.analysis.query_console import (
    QueryRefused,
    QueryRunner,
    SavedConsoleRefused,
    SavedConsoles,
    check_read_only,
)
from sources.store.store import Store
from tests.conftest import wait_until


@pytest.fixture
def small_store(tmp_path):
    """A real store file with the schema and a few thousand rows (no generator needed)."""
    s = Store(tmp_path / "q.duckdb")
    n = 5000
    s.insert("counties", pa.table({
        "county_code": ["370102", "370103"], "name": ["历下区", "市中区"],
        "city": ["济南市", "济南市"], "city_code": ["370100", "370100"],
        "lon": [117.07, 116.99], "lat": [36.67, 36.65]}))
    s.insert("risk_points", pa.table({
        "point_id": list(range(n)), "enterprise_id": [i % 50 for i in range(n)],
        "county_code": ["370102" if i % 2 else "370103" for i in range(n)],
        "kind": ["equipment"] * n,
        "risk_level": [("red", "orange", "yellow", "blue")[i % 4] for i in range(n)],
        "lon": [117.0 + i * 1e-5 for i in range(n)], "lat": [36.6 + i * 1e-5 for i in range(n)]}))
    yield s
    s.close()


ALLOWED = [
    "SELECT 1",
    "select count(*) from risk_points",
    "WITH x AS (SELECT * FROM risk_points) SELECT risk_level, count(*) FROM x GROUP BY 1",
    "FROM risk_points LIMIT 3",
    "SUMMARIZE risk_points",
    "DESCRIBE risk_points",
    "SHOW TABLES",
    "PRAGMA table_info('risk_points')",
    "PRAGMA show_tables",
    "CALL pragma_table_info('risk_points')",
    "EXPLAIN SELECT * FROM risk_points",
    "SELECT 1;",
]

REFUSED = [
    ("DELETE FROM risk_points", "write"),
    ("delete from risk_points where point_id < 10", "write"),
    ("DROP TABLE risk_points", "write"),
    ("INSERT INTO counties VALUES ('1', 'x', 'y', 'z', 0, 0, 0, 0)", "write"),
    ("UPDATE risk_points SET risk_level = 'red'", "write"),
    ("CREATE TABLE t AS SELECT 1", "write"),
    ("CREATE TEMP TABLE t AS SELECT 1", "write"),
    ("CREATE VIEW v AS SELECT 1", "write"),
    ("ALTER TABLE risk_points ADD COLUMN x INT", "write"),
    ("ATTACH '/tmp/other.duckdb' AS o", "write"),
    ("DETACH o", "write"),
    ("COPY risk_points TO '/tmp/x.csv'", "write"),
    ("COPY risk_points FROM '/tmp/x.csv'", "write"),
    ("EXPORT DATABASE '/tmp/exp'", "write"),
    ("IMPORT DATABASE '/tmp/exp'", "write"),
    ("COPY FROM DATABASE a TO b", "write"),
    ("INSTALL spatial", "extension"),
    ("LOAD spatial", "extension"),
    ("SET threads = 1", "setting"),
    ("SET GLOBAL memory_limit = '1GB'", "setting"),
    ("RESET threads", "setting"),
    ("PRAGMA threads = 1", "setting"),
    ("PRAGMA enable_profiling", "setting"),
    ("CALL checkpoint()", "write"),
    ("CHECKPOINT", "write"),
    ("VACUUM", "write"),
    ("BEGIN TRANSACTION", "write"),
    ("USE memory", "setting"),
    ("EXPLAIN ANALYZE DELETE FROM risk_points", "write"),
    ("EXPLAIN DELETE FROM risk_points", "write"),
    ("PREPARE p AS SELECT 1", "write"),
    ("SELECT 1; DELETE FROM risk_points", "multi"),
    ("SELECT 1; SELECT 2", "multi"),
    ("", "empty"),
    ("  -- only a comment", "empty"),
    ("SELECT * FROM read_csv('/etc/passwd')", "function"),
    ("SELECT * FROM glob('/*')", "function"),
    ("SELECT getenv('HOME')", "function"),
    ("SELECT nextval('s')", "function"),
    ("SELECT * FROM query('SELECT 1')", "function"),
    ("SELECT * FROM '/etc/passwd'", "file"),
    ("SELECT * FROM 'data.parquet'", "file"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_guard_allows_reading(sql):
    assert check_read_only(sql)


@pytest.mark.parametrize(("sql", "code"), REFUSED)
def test_guard_refuses_writing_and_state_changes(sql, code):
    with pytest.raises(QueryRefused) as info:
        check_read_only(sql)
    assert info.value.code == code


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_statements_run(small_store, sql):
    result = QueryRunner(store=small_store).run(sql)
    assert result.status == "ok", result.message
    assert isinstance(result.table, pa.Table)


@pytest.mark.parametrize(("sql", "code"), [r for r in REFUSED if r[1] != "empty"])
def test_refused_statements_leave_the_data_unchanged(small_store, sql, code):
    before = small_store.arrow("SELECT * FROM risk_points ORDER BY point_id")
    tables = small_store.tables()
    result = QueryRunner(store=small_store).run(sql)
    assert result.status == "refused" and result.code == code, result
    assert small_store.tables() == tables
    assert small_store.arrow("SELECT * FROM risk_points ORDER BY point_id").equals(before)


def test_the_sandbox_refuses_writes_even_without_the_guard(small_store):
    """The guard only gives the message: the sandbox opens a read-only snapshot."""
    result = QueryRunner(store=small_store, guard=False).run("DELETE FROM risk_points")
    assert result.status == "refused" and result.code == "write", result
    assert "read-only" in result.message
    assert small_store.scalar("SELECT count(*) FROM risk_points") == 5000


def test_settings_are_unchanged_after_a_refused_set(small_store):
    threads = small_store.scalar("SELECT current_setting('threads')")
    QueryRunner(store=small_store).run("SET threads = 1")
    assert small_store.scalar("SELECT current_setting('threads')") == threads


def test_errors_carry_duckdbs_message(small_store):
    runner = QueryRunner(store=small_store)
    result = runner.run("SELECT no_such_column FROM risk_points")
    assert result.status == "error"
    assert "no_such_column" in result.message
    result = runner.run("SELEC 1")
    assert result.status == "error" and "syntax error" in result.message.lower()


def test_row_limit_cuts_and_says_so(small_store):
    runner = QueryRunner(store=small_store, row_limit=100)
    result = runner.run("SELECT * FROM risk_points")
    assert result.ok and result.table.num_rows == 100 and result.truncated
    assert result.cut == "rows"
    result = runner.run("SELECT * FROM risk_points LIMIT 100")
    assert result.ok and result.table.num_rows == 100 and not result.truncated
    result = runner.run("SELECT * FROM risk_points WHERE false")
    assert result.ok and result.table.num_rows == 0 and result.table.num_columns == 7


SLOW = "SELECT count(*) FROM range(100000000000) a, range(10) b"


def test_time_limit_interrupts(small_store):
    runner = QueryRunner(store=small_store, time_limit_s=0.5)
    started = time.perf_counter()
    result = runner.run(SLOW)
    elapsed = time.perf_counter() - started
    assert result.status == "timeout", result
    assert elapsed < 5, elapsed
    # the store still answers on other cursors and the runner runs the next query
    assert runner.run("SELECT count(*) FROM risk_points").table.column(0)[0].as_py() == 5000


def test_cancel_interrupts_a_running_query(small_store):
    runner = QueryRunner(store=small_store, time_limit_s=60)
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("r", runner.run(SLOW)))
    worker.start()
    wait_until(lambda: runner.running == 1, timeout=5)
    time.sleep(0.2)  # let it get into the scan (a cancel before start is tested too)
    assert runner.cancel() == 1
    worker.join(10)
    assert not worker.is_alive()
    assert out["r"].status == "cancelled", out["r"]
    assert runner.running == 0


def test_saved_consoles_round_trip_and_pin(small_store):
    saved = SavedConsoles(store=small_store)
    assert saved.names() == []
    cells = [{"sql": "SELECT 1", "title": "one"}, {"sql": "SELECT * FROM counties"}]
    saved.save("县区概况", cells, user="analyst")
    assert saved.names() == ["县区概况"] and saved.owner("县区概况") == "analyst"
    assert saved.load("县区概况") == [{"sql": "SELECT 1", "title": "one"},
                                      {"sql": "SELECT * FROM counties", "title": ""}]
    assert not saved.is_pinned("县区概况")
    saved.pin("县区概况", user="lead", can_pin=True)
    assert saved.names(pinned_only=True) == ["县区概况"]
    saved.save("县区概况", cells[:1], user="analyst", can_pin=True)  # keeps the pin
    assert saved.is_pinned("县区概况") and len(saved.load("县区概况")) == 1
    assert saved.owner("县区概况") == "analyst"  # the pinner did not become the owner
    saved.delete("县区概况", user="analyst")
    assert saved.names() == []
    with pytest.raises(KeyError):
        saved.load("县区概况")


def refused(code):
    return pytest.raises(SavedConsoleRefused, match=f"^{code}: ")


def test_only_the_owner_or_an_admin_changes_a_saved_console(small_store):
    saved = SavedConsoles(store=small_store)
    saved.save("mine", [{"sql": "SELECT 1"}], user="alice")
    with refused("not_owner"):
        saved.save("mine", [{"sql": "SELECT secret FROM x"}], user="mallory", can_pin=True)
    with refused("not_owner"):
        saved.delete("mine", user="mallory")
    with refused("not_owner"):
        saved.save("mine", [{"sql": "SELECT 2"}], user="")  # anonymous is not alice
    assert saved.load("mine") == [{"sql": "SELECT 1", "title": ""}]
    saved.save("mine", [{"sql": "SELECT 2"}], user="alice")
    saved.save("mine", [{"sql": "SELECT 3"}], user="root", is_admin=True)
    assert saved.load("mine")[0]["sql"] == "SELECT 3" and saved.owner("mine") == "alice"
    saved.save("theirs", [{"sql": "SELECT 4"}], user="mallory")  # a new name: allowed
    saved.delete("mine", user="root", is_admin=True)
    assert saved.names() == ["theirs"]


def test_pinning_needs_the_pin_right(small_store):
    saved = SavedConsoles(store=small_store)
    saved.save("wall", [{"sql": "SELECT 1"}], user="alice")
    with refused("pin_right"):
        saved.pin("wall", user="alice", can_pin=False)
    with refused("pin_right"):
        saved.save("wall", [{"sql": "SELECT 1"}], user="alice", pinned=True)
    assert not saved.is_pinned("wall")
    saved.pin("wall", user="duty.lead", can_pin=True)
    # a pinned console runs for every viewer: its owner changes it only with the pin right
    with refused("pinned"):
        saved.save("wall", [{"sql": "SELECT 2"}], user="alice")
    assert saved.load("wall")[0]["sql"] == "SELECT 1" and saved.is_pinned("wall")
    with refused("pin_right"):
        saved.pin("wall", False, user="mallory", can_pin=False)
    saved.pin("wall", False, user="alice", can_pin=False)  # the owner may take it down
    assert not saved.is_pinned("wall")
    with pytest.raises(KeyError):
        saved.pin("no such", user="alice", can_pin=True)


def test_an_old_store_gets_the_owner_column_and_old_consoles_are_the_admins(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE saved_consoles (name VARCHAR PRIMARY KEY, cells VARCHAR NOT NULL, "
                "pinned BOOLEAN NOT NULL DEFAULT FALSE, saved_by VARCHAR, "
                "saved_at TIMESTAMPTZ NOT NULL)")
    con.execute("""INSERT INTO saved_consoles VALUES ('old', '[{"sql": "SELECT 1"}]', true, """
                "'someone', now())")
    con.close()
    store = Store(path)  # applies the schema: adds the column
    try:
        saved = SavedConsoles(store=store)
        assert saved.names(pinned_only=True) == ["old"] and saved.owner("old") is None
        with refused("not_owner"):
            saved.save("old", [{"sql": "SELECT 2"}], user="someone", can_pin=True)
        saved.save("old", [{"sql": "SELECT 2"}], user="root", is_admin=True)
        assert saved.load("old")[0]["sql"] == "SELECT 2" and saved.is_pinned("old")
    finally:
        store.close()


# ---------------------------------------------------------------------- ordinary work
ORDINARY = [
    "SELECT c.city, r.risk_level, count(*) AS n FROM risk_points r "
    "JOIN counties c USING (county_code) GROUP BY ALL ORDER BY ALL",
    "SELECT county_code, point_id, lon, row_number() OVER (PARTITION BY county_code "
    "ORDER BY lon, point_id) AS rn, avg(lat) OVER (PARTITION BY county_code) AS mean_lat "
    "FROM risk_points ORDER BY county_code, rn LIMIT 5000",
    "SELECT lon, lat, risk_level FROM risk_points "
    "WHERE lon BETWEEN 116.8 AND 117.4 AND lat BETWEEN 36.4 AND 36.9 ORDER BY point_id",
    "SELECT e.name, round(6371 * 2 * asin(sqrt(pow(sin(radians(e.lat - 36.65) / 2), 2) + "
    "cos(radians(36.65)) * cos(radians(e.lat)) * pow(sin(radians(e.lon - 117.0) / 2), 2))), 3) "
    "AS km FROM enterprises e ORDER BY km, e.enterprise_id LIMIT 20",
    "SELECT date_trunc('month', found_on) AS month, severity, count(*) AS n FROM hazards "
    "GROUP BY ALL ORDER BY ALL",
    "WITH per AS (SELECT county_code, count(*) FILTER (WHERE risk_level = 'red') AS red, "
    "count(*) AS n FROM risk_points GROUP BY 1) SELECT *, red / n AS share FROM per "
    "QUALIFY rank() OVER (ORDER BY share DESC, county_code) <= 10 ORDER BY share DESC, county_code",
    "SELECT city, risk_level, count(*) AS n FROM risk_points JOIN counties USING (county_code) "
    "GROUP BY ROLLUP (city, risk_level) ORDER BY ALL NULLS LAST",
    "SELECT risk_level, quantile_cont(lon, 0.5) AS mid_lon, count(DISTINCT enterprise_id) AS e "
    "FROM risk_points GROUP BY 1 ORDER BY 1",
    "SELECT county_code, list(point_id ORDER BY point_id)[1:3] AS first3, "
    "{'n': count(*), 'west': min(lon)} AS s FROM risk_points GROUP BY 1 ORDER BY 1",
    "SELECT name, city, population FROM counties ORDER BY county_code",
    "SELECT TIMESTAMPTZ '2024-05-01 08:00:00+08' AS t, "
    "(TIMESTAMPTZ '2024-05-01 08:00:00+08')::VARCHAR AS shown, DATE '2024-02-29' + 365 AS d",
    "SUMMARIZE risk_points",
    "DESCRIBE risk_points",
    "SHOW TABLES",
    "PRAGMA table_info('counties')",
]


@pytest.mark.parametrize("sql", ORDINARY)
def test_ordinary_queries_answer_exactly_as_on_the_store(store, sql):
    """The sandbox answers an analyst's query with the very table the store gives (values,
    types, time zone), as the in-process runner did."""
    runner = QueryRunner(store=store, row_limit=100_000)
    result = runner.run(sql)
    assert result.ok and not result.truncated, result
    expected = store.arrow(sql)
    assert result.table.num_rows > 0
    assert result.table.schema.equals(expected.schema), (result.table.schema, expected.schema)
    assert result.table.equals(expected), sql


def test_the_sandbox_shows_times_in_the_stores_time_zone(store):
    store.cursor().execute("SET GLOBAL TimeZone = 'Asia/Shanghai'")
    sql = ("SELECT TIMESTAMPTZ '2024-05-01 00:30:00+00' AS t, "
           "(TIMESTAMPTZ '2024-05-01 00:30:00+00')::VARCHAR AS shown, "
           "date_part('hour', TIMESTAMPTZ '2024-05-01 00:30:00+00') AS h")
    result = QueryRunner(store=store).run(sql)
    assert result.table.equals(store.arrow(sql))
    assert result.table.to_pylist()[0]["h"] == 8


def test_an_in_memory_store_is_read_through_a_private_snapshot():
    store = Store(":memory:")
    try:
        store.insert("counties", pa.table({
            "county_code": ["370102"], "name": ["历下区"], "city": ["济南市"],
            "city_code": ["370100"], "lon": [117.07], "lat": [36.67]}))
        result = QueryRunner(store=store).run("SELECT name FROM counties")
        assert result.ok and result.table.column("name").to_pylist() == ["历下区"], result
        assert result.extra["as_of"] is not None
    finally:
        store.close()


def test_map_outlines_are_the_cities_exterior_rings(store):
    """The outlines under a map result: every city's exterior rings, one NaN between rings,
    each point inside the province's extent."""
    import math

    from sources import geo
    runner = QueryRunner(store=store)
    xs, ys = runner.outlines()
    texts = store.arrow("SELECT geojson FROM boundaries WHERE level = 'city'").column(0)
    n_rings = sum(len(geo.rings(t)) for t in texts.to_pylist())
    assert n_rings >= 16
    gaps = sum(1 for x in xs if math.isnan(x))
    assert gaps == n_rings - 1
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(x)]
    assert all(114.5 < x < 123 and 34 < y < 38.5 for x, y in points)
    assert runner.outlines() is runner.outlines()  # cached
