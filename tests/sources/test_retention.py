"""Raw readings older than the retention are deleted; newer ones and other tables are kept."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from sources.store.retention import ReadingRetention

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def add_readings(store, ages_h: list[float]) -> None:
    store.insert("readings", pd.DataFrame({
        "feed": ["ws://t/feed"] * len(ages_h),
        "seq": range(len(ages_h)),
        "ts": [NOW - timedelta(hours=h) for h in ages_h],
        "sensor_id": ["s1"] * len(ages_h),
        "value": [1.0] * len(ages_h)}))


def test_old_readings_go_in_slices_and_recent_ones_stay(store):
    # 10 days, 8 days, 7 days + 1 h, 6 days, 1 hour old
    add_readings(store, [240, 192, 169, 144, 1])
    retention = ReadingRetention(store=store, keep_days=7, slice_hours=6)
    assert retention.purge(now=NOW) == 3
    left = store.df("SELECT seq FROM readings ORDER BY seq")["seq"].tolist()
    assert left == [3, 4]
    assert retention.purge(now=NOW) == 0  # idempotent
    assert retention.deleted == 3


def test_keep_zero_keeps_everything(store):
    add_readings(store, [24 * 400, 1])
    assert ReadingRetention(store=store, keep_days=0).purge(now=NOW) == 0
    assert store.scalar("SELECT count(*) FROM readings") == 2
