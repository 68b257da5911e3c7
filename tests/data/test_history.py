"""The week of live data the generator writes before the build (data.history), checked on a
real tiny store: alarm lifecycles as the desk and the engine write them, warnings, incidents,
readings around every alarm, the province's state at the build's moment, determinism."""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from data.generate import build
from data.history import FEED, OFFICERS
from data.laws import CST

NOW = dt.datetime(2026, 11, 28, 8, 30, tzinfo=dt.UTC)
LIVE = ["readings", "hotspots", "quakes", "warnings", "incidents", "alarms", "alarm_actions"]
MESSAGE_TABLES = ["readings", "hotspots", "quakes", "incidents", "warnings"]


@pytest.fixture(scope="module")
def lived_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "tiny.duckdb"
    counts = build(path, scale="tiny", seed=7, progress=False, now=NOW)
    return path, counts


@pytest.fixture(scope="module")
def con(lived_in):
    c = duckdb.connect(str(lived_in[0]), read_only=True)
    yield c
    c.close()


def df(con, sql: str, params=None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def one(con, sql: str, params=None):
    return con.execute(sql, params or []).fetchone()[0]


def utc(x) -> pd.Timestamp:
    return pd.Timestamp(x).tz_convert("UTC")


# ---------------------------------------------------------------------- period
def test_a_week_before_now_and_nothing_after(con, lived_in):
    info = dict(con.execute("SELECT key, value FROM build_info").fetchall())
    assert info["history_to"] == NOW.isoformat() and info["today"] == "2026-11-28"
    week_ago = NOW - dt.timedelta(days=7)
    for table, col in [("alarms", "raised_at"), ("warnings", "created_at"),
                       ("incidents", "ts"), ("hotspots", "ts"), ("quakes", "ts"),
                       ("readings", "ts")]:
        first, last = con.execute(f"SELECT min({col}), max({col}) FROM {table}").fetchone()
        assert utc(last) <= pd.Timestamp(NOW), table
        if table in ("hotspots", "incidents", "warnings", "alarms", "quakes"):
            assert utc(first) < pd.Timestamp(week_ago + dt.timedelta(hours=12)), table
    counts = lived_in[1]
    assert counts["readings"] == one(con, "SELECT count(*) FROM readings")
    assert counts["alarms"] == one(con, "SELECT count(*) FROM alarms")


def test_stations_every_minute_over_72_hours_installations_over_6(con):
    per = df(con, """
        SELECT s.kind, s.station_id IS NOT NULL AS station, r.sensor_id,
               count(*) FILTER (WHERE r.ts > $now - INTERVAL 72 HOUR) AS n72,
               count(*) FILTER (WHERE r.ts > $now - INTERVAL 6 HOUR) AS n6
        FROM sensors s LEFT JOIN readings r USING (sensor_id) GROUP BY ALL""".replace(
        "$now", f"TIMESTAMPTZ '{NOW.isoformat()}'"))
    stations = per[per.station]
    assert (stations.n72 >= 72 * 60 - 1).all() and (stations.n72 <= 72 * 60 + 1).all()
    plants = per[~per.station]
    assert (plants.n6 >= 6 * 30 - 1).all()  # a point every 2 min for the sparklines
    # rain values are "mm in the last hour" and never negative; weather follows its day
    assert one(con, "SELECT min(value) FROM readings JOIN sensors USING (sensor_id) "
                    "WHERE kind = 'rain'") >= 0


def test_feed_rows_have_unique_seqs_in_time_order(con):
    # a feed's warning was sent at its effective time (the table keeps no ts)
    union = " UNION ALL ".join(
        f"SELECT seq, {'effective' if t == 'warnings' else 'ts'} AS ts FROM {t} "
        f"WHERE feed = '{FEED}'" for t in MESSAGE_TABLES)
    seq = df(con, f"SELECT seq, epoch_us(ts) AS ts FROM ({union}) ORDER BY seq")
    assert seq.seq.is_unique and seq.seq.iloc[0] == 0 and seq.seq.iloc[-1] == len(seq) - 1
    assert seq.ts.is_monotonic_increasing
    assert one(con, f"SELECT count(*) FROM readings WHERE feed <> '{FEED}'") == 0


# ---------------------------------------------------------------------- alarms
def test_closed_alarms_went_through_the_desk_in_order(con):
    a = df(con, "SELECT * FROM alarms WHERE state = 'closed'")
    assert len(a) > 100
    assert (a.raised_at <= a.acked_at).all() and (a.acked_at <= a.disposed_at).all()
    assert (a.disposed_at <= a.closed_at).all() and a.cleared_at.notna().all()
    assert (a.cleared_at <= a.closed_at).all()  # 消警 after the value came back
    assert a.acked_by.isin(OFFICERS).all() and a.closed_by.isin(OFFICERS).all()
    assert a.disposal_note.str.len().gt(0).all()


def test_every_state_matches_its_actions(con):
    a = df(con, "SELECT * FROM alarms").set_index("alarm_id")
    act = df(con, "SELECT * FROM alarm_actions")
    assert set(act.action) == {"raise", "upgrade", "clear", "acknowledge", "dispose", "close",
                               "escalate"}
    assert (act.groupby(["alarm_id", "action"]).size() == 1).all()  # each step once
    assert (act[act.action.isin(["raise", "upgrade", "clear", "escalate"])].actor
            == "system").all()
    steps = {"acknowledge": ("acked_by", "acked_at"), "dispose": ("disposed_by", "disposed_at"),
             "close": ("closed_by", "closed_at"), "escalate": (None, "escalated_at"),
             "raise": (None, "raised_at"), "clear": (None, "cleared_at")}
    for action, (by, at) in steps.items():
        done = act[act.action == action].set_index("alarm_id")
        has = a[a[at].notna()]
        assert set(done.index) == set(has.index), action
        assert (utc_series(done.acted_at) == utc_series(has.loc[done.index, at])).all(), action
        if by:
            assert (done.actor == has.loc[done.index, by]).all(), action
    order = {"raised": 0, "acknowledged": 1, "disposed": 2, "closed": 3}
    for state, rank in order.items():
        rows = a[a.state == state]
        for col, need in (("acked_at", 1), ("disposed_at", 2), ("closed_at", 3)):
            assert (rows[col].notna() == (rank >= need)).all(), (state, col)


def utc_series(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).reset_index(drop=True)


def test_escalated_alarms_were_red_and_unacknowledged_for_15_minutes(con):
    esc = df(con, "SELECT * FROM alarms WHERE escalated_at IS NOT NULL")
    assert len(esc) >= 5
    assert (esc.level == "red").all()
    assert (esc.escalated_at - esc.raised_at >= pd.Timedelta(minutes=15)).all()
    assert (esc.acked_at.isna() | (esc.acked_at > esc.escalated_at)).all()
    # and no red alarm stood unacknowledged 15 minutes without being escalated
    missed = one(con, """
        SELECT count(*) FROM alarms a WHERE level = 'red' AND escalated_at IS NULL
          AND coalesce(acked_at, $1) > raised_at + INTERVAL 15 MINUTE + INTERVAL 11 SECOND
          AND coalesce((SELECT min(acted_at) FROM alarm_actions x WHERE x.alarm_id = a.alarm_id
                        AND x.action = 'upgrade'), raised_at)
              < coalesce(acked_at, $1) - INTERVAL 11 SECOND""", [NOW])
    assert missed == 0


def test_the_console_starts_with_open_alarms_in_every_state(con):
    open_ = df(con, "SELECT state, level, escalated_at FROM alarms WHERE state <> 'closed'")
    assert {"raised", "acknowledged", "disposed"} <= set(open_.state)
    escalated = open_[open_.escalated_at.notna()]
    assert len(escalated) >= 1 and (escalated.state == "raised").all()
    # the console's escalation would find nothing left to do at the start
    overdue = one(con, "SELECT count(*) FROM alarms WHERE level = 'red' AND state = 'raised' "
                       "AND escalated_at IS NULL AND raised_at < ? - INTERVAL 15 MINUTE", [NOW])
    assert overdue == 0


def test_readings_around_each_alarm_hold_its_trigger_and_peak(con):
    missing = df(con, """
        SELECT a.alarm_id, a.sensor_id, a.trigger_value, a.peak_value FROM alarms a
        WHERE NOT EXISTS (SELECT 1 FROM readings r WHERE r.sensor_id = a.sensor_id
                          AND r.ts = a.raised_at AND r.value = a.trigger_value)
           OR NOT EXISTS (SELECT 1 FROM readings r WHERE r.sensor_id = a.sensor_id
                          AND r.ts = a.peak_at AND r.value = a.peak_value)""")
    assert missing.empty, missing.head()
    # and the readings before the alarm were within the limit it breached
    before = one(con, """
        SELECT count(*) FROM alarms a WHERE kind IN ('hi', 'hi_hi') AND NOT EXISTS (
            SELECT 1 FROM readings r JOIN sensors s USING (sensor_id)
            WHERE r.sensor_id = a.sensor_id AND r.ts < a.raised_at
              AND r.ts > a.raised_at - INTERVAL 20 MINUTE AND r.value < s.hi)""")
    assert before == 0


def test_the_engine_goes_on_with_the_next_alarm_id(lived_in, tmp_path):
    from sources.alarms.engine import AlarmEngine
    from sources.store.store import Store

    path = tmp_path / "copy.duckdb"
    shutil.copy2(lived_in[0], path)
    store = Store(path)
    try:
        top = store.scalar("SELECT max(alarm_id) FROM alarms")
        assert top == store.scalar("SELECT count(*) FROM alarms")  # ids 1..N
        engine = AlarmEngine(store=store)
        idle = store.scalar("SELECT sensor_id FROM sensors WHERE hi IS NOT NULL AND sensor_id "
                            "NOT IN (SELECT sensor_id FROM alarms WHERE cleared_at IS NULL) "
                            "ORDER BY sensor_id LIMIT 1")
        hi = store.scalar("SELECT hi FROM sensors WHERE sensor_id = ?", [idle])
        changes = engine.evaluate(pa.table({
            "ts": pa.array([int(NOW.timestamp() * 1e6) + 1_000_000]).cast(
                pa.timestamp("us", tz="UTC")),
            "sensor_id": [idle], "value": [float(hi) + 1]}))
        assert [c["alarm_id"] for c in changes if c["change"] == "raise"] == [top + 1]
    finally:
        store.close()


# ---------------------------------------------------------------------- warnings
def test_warning_versions(con):
    w = df(con, "SELECT * FROM warnings ORDER BY warning_id, version")
    for wid, g in w.groupby("warning_id"):
        assert list(g.version) == list(range(1, len(g) + 1)), wid
        assert g.msg_type.iloc[0] == "Alert" and "Alert" not in set(g.msg_type.iloc[1:]), wid
        assert "Cancel" not in set(g.msg_type.iloc[:-1]), wid
        assert g.created_at.is_monotonic_increasing, wid
        assert (g.expires > g.effective).all(), wid
    feed, officer = w[w.source == "feed"], w[w.source == "officer"]
    assert (feed.feed == FEED).all() and feed.seq.notna().all() and (feed.sender == FEED).all()
    assert officer.feed.isna().all() and officer.seq.isna().all()
    assert officer.sender.isin(OFFICERS).all() and len(officer) > 5
    for wid, g in officer.groupby("warning_id"):  # numbered per China day, as the desk does
        day = utc(g.created_at.iloc[0]).tz_convert(CST).strftime("%Y%m%d")
        assert re.fullmatch(rf"W{day}-\d{{4}}", wid), wid
    codes = set(df(con, "SELECT county_code FROM counties").county_code)
    assert all(set(a) <= codes for a in w.area_codes)
    assert {"rainstorm", "landslide", "gale", "flood"} <= set(w.event)
    assert {"Alert", "Update", "Cancel"} <= set(w.msg_type)


def test_warnings_issued_updated_cancelled_and_expired(con):
    latest = df(con, "SELECT unnest(arg_max(w, w.version)) FROM warnings w GROUP BY warning_id")
    now = pd.Timestamp(NOW)
    cancelled = latest.msg_type == "Cancel"
    expired = ~cancelled & (latest.expires <= now)
    active = ~cancelled & ~expired & (latest.effective <= now)
    assert cancelled.sum() > 10 and expired.sum() > 5 and 1 <= active.sum() <= 15
    assert (latest[active].source == "feed").any() and (latest[active].source == "officer").any()
    rain = latest[active & (latest.event == "rainstorm")]
    assert len(rain) >= 1  # the console starts in the rain


def test_landslide_warnings_where_the_slopes_are(con):
    bad = one(con, """
        SELECT count(*) FROM (SELECT unnest(area_codes) AS code FROM warnings
                              WHERE event = 'landslide' AND source = 'feed')
        WHERE code NOT IN (SELECT county_code FROM landslide_points)""")
    assert bad == 0


# ---------------------------------------------------------------------- incidents, events
def test_incidents_open_follow_up_close(con):
    inc = df(con, "SELECT * FROM incidents ORDER BY incident_id, ts, seq")
    assert len(inc) > 50
    for iid, g in inc.groupby("incident_id"):
        assert g.status.iloc[0] == "open", iid
        assert "closed" not in set(g.status.iloc[:-1]), iid
        assert g[["kind", "lon", "lat", "title"]].nunique().max() == 1, iid
    extra = inc.extra.map(json.loads)
    assert all({"deaths", "injured", "missing", "report"} <= set(e) for e in extra)
    assert sum(e["deaths"] + e["injured"] for e in extra) > 0
    assert {"首报", "续报", "终报"} <= {e["report"] for e in extra}
    latest = inc.groupby("incident_id").tail(1)
    assert 1 <= (latest.status == "open").sum() <= 4  # on hand when the console starts
    assert inc.county_code.notna().all()


def test_incident_counties_as_the_ingest_looks_them_up(con, lived_in):
    import shapely

    shapes = {c: shapely.from_geojson(g) for c, g in con.execute(
        "SELECT code, geojson FROM boundaries WHERE level = 'county'").fetchall()}
    inc = df(con, "SELECT DISTINCT incident_id, lon, lat, county_code FROM incidents")
    for row in inc.itertuples():
        assert shapely.contains_xy(shapes[row.county_code], row.lon, row.lat), row.incident_id


def test_quakes_and_hotspots_of_the_last_day(con):
    day = pd.Timestamp(NOW) - pd.Timedelta(hours=24)
    assert one(con, "SELECT count(*) FROM quakes WHERE ts > ?", [day]) >= 1
    assert one(con, "SELECT count(*) FROM hotspots WHERE ts > ?", [day]) >= 100
    # a satellite pass every ten minutes, on the province
    passes = one(con, "SELECT count(DISTINCT date_trunc('minute', ts)) FROM hotspots")
    assert passes > 6 * 24 * 5  # a pass sees none now and then (Poisson)
    assert one(con, "SELECT max(magnitude) FROM quakes") <= 6.5


def test_figures_of_24_hours_ago_differ_from_now(lived_in, tmp_path):
    from sources.situation.source import SituationSource
    from sources.store.store import Store

    path = tmp_path / "copy.duckdb"
    shutil.copy2(lived_in[0], path)
    store = Store(path)
    try:
        k = SituationSource(store=store).kpis(now_ms=int(NOW.timestamp() * 1000))
    finally:
        store.close()
    changed = [key for key, v in k.items() if v.get("before") is not None
               and v["value"] != v["before"]]
    assert {"alarms", "warnings", "incidents", "hotspots"} & set(changed), k
    assert len(changed) >= 4, k
    assert k["alarms.escalated"]["value"] >= 1 and k["warnings"]["value"] >= 1
    assert k["incidents"]["value"] >= 1 and k["quakes"]["value"] >= 1


# ---------------------------------------------------------------------- determinism
def live_fingerprint(path) -> dict[str, tuple]:
    """Row count and an order-free sum of row hashes of each live table."""
    c = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for t in LIVE:
            cols = ", ".join(r[0] for r in c.execute(f"DESCRIBE {t}").fetchall())
            out[t] = c.execute(f"SELECT count(*), sum(hash({cols})::HUGEINT) FROM {t}").fetchone()
        return out
    finally:
        c.close()


def test_same_seed_and_now_same_history(lived_in, tmp_path):
    again = tmp_path / "again.duckdb"
    build(again, scale="tiny", seed=7, progress=False, now=NOW)
    assert live_fingerprint(again) == live_fingerprint(lived_in[0])


def test_now_of_a_past_day_is_its_end():
    from data.history import history_end

    clock = dt.datetime(2026, 12, 1, 16, 23, 49, tzinfo=dt.UTC)
    assert history_end(None, clock) == dt.datetime(2026, 12, 1, 16, 23, tzinfo=dt.UTC)
    assert history_end(dt.date(2026, 1, 15), clock) == dt.datetime(2026, 1, 16, tzinfo=dt.UTC)
    assert history_end(dt.date(2026, 12, 1), clock) == history_end(None, clock)
