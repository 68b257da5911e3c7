"""The risk layer partitioned over Dask workers: the same counts as one PointLayer, pixel for
pixel, on a real LocalCluster of two worker processes on loopback; a lost worker; close()."""
from __future__ import annotations

import os
import signal
import time
from functools import partial

import numpy as np
import psutil
import pytest

from sources.risk.partitioned import (
    MAX_PIXELS,
    PartitionedLayerError,
    PartitionedPointLayer,
    load_partitioned_layer,
    quadtree,
)
from sources.risk.pointlayer import GRADES, PointLayer
from tests.conftest import wait_until
from tests.sources.test_risk_pointlayer import reference_counts

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed", reason="pip install -e '.[scale]'")

EXTENT = (114.8, 122.7, 34.4, 38.4)
PARTS = {"partition_points": 20_000, "fine": 64, "grid": 64}  # 200k points: 10-40 partitions
CHUNKS = 4
PER_CHUNK = 50_000  # 200k points


# ---------------------------------------------------------------------- chunks (run on workers)
def clustered_chunk(i: int, n: int = PER_CHUNK):
    """Chunk ``i`` of clustered points: the same 30 towns in every chunk, its own points."""
    towns = np.random.default_rng(3)
    centres = np.column_stack([towns.uniform(115.5, 122, 30), towns.uniform(35, 38, 30)])
    rng = np.random.default_rng([3, i])
    k = rng.integers(0, 30, n)
    x = (centres[k, 0] + rng.normal(0, 0.15, n)).clip(114.81, 122.69).astype(np.float32)
    y = (centres[k, 1] + rng.normal(0, 0.1, n)).clip(34.41, 38.39).astype(np.float32)
    cat = rng.choice(4, n, p=[0.05, 0.15, 0.3, 0.5]).astype(np.uint8)
    ent = rng.integers(0, 500, n).astype(np.int32)
    return x, y, cat, ent


def slow_when(marker: str, i: int):
    """A chunk that takes 4 s to load while ``marker`` exists (a rebuild after a loss)."""
    if os.path.exists(marker):
        time.sleep(4)
    return clustered_chunk(i)


def fixed_chunk(x, y, cat, ent=None):
    ent = np.zeros(len(x), np.int32) if ent is None else ent
    return (np.asarray(x, np.float32), np.asarray(y, np.float32), np.asarray(cat), ent)


def failing_chunk():
    raise OSError("no such file: /data/risk/shandong-07.parquet")


def concatenated(chunks):
    return [np.concatenate(c) for c in zip(*(c() for c in chunks), strict=True)]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) \
            as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def chunks():
    return [partial(clustered_chunk, i) for i in range(CHUNKS)]


@pytest.fixture(scope="module")
def single(chunks):
    return PointLayer.from_arrays(*concatenated(chunks), extent=EXTENT, grid=128,
                                  enterprise_ids=np.arange(500) * 10 + 7)


@pytest.fixture(scope="module")
def layer(client, chunks):
    lay = PartitionedPointLayer.build(chunks, extent=EXTENT, **PARTS,
                                      enterprise_ids=np.arange(500) * 10 + 7, client=client,
                                      frame_timeout=60)
    yield lay
    lay.close()


# ---------------------------------------------------------------------- equal counts
VIEWS = {
    "full": (EXTENT, 320, 180),
    "zoomed": ((116.0, 118.5, 35.2, 37.0), 257, 199),
    "wider than the data": ((110.0, 125.0, 30.0, 40.0), 100, 80),
    "beside the data": ((100.0, 101.0, 20.0, 21.0), 30, 20),
}


@pytest.mark.parametrize("name", VIEWS)
def test_counts_equal_one_layer(layer, single, chunks, name):
    bounds, w, h = VIEWS[name]
    counts, totals = layer.aggregate(bounds, w, h)
    expected, expected_totals = single.aggregate(bounds, w, h)
    assert counts.dtype == np.uint16 and counts.shape == (h, w, 4)
    np.testing.assert_array_equal(counts, expected)
    assert totals == expected_totals
    touched = layer.last_frame["partitions"]
    if name == "beside the data":
        assert touched == 0 and sum(totals.values()) == 0
    elif name == "full":
        assert touched == len(layer.meta) and sum(totals.values()) == len(layer) == 200_000
        x, y, cat, _ = concatenated(chunks)  # and numpy's own count, nobody's kernel
        np.testing.assert_array_equal(counts, reference_counts(x, y, cat, bounds, w, h))


def points_of(meta: dict, chunks):
    """The test points inside a partition's quadtree leaf."""
    x, y, _, _ = concatenated(chunks)
    x0, x1, y0, y1 = meta["bounds"]
    inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return x[inside], y[inside], meta["bounds"]


def test_a_view_inside_one_partition_asks_only_it(layer, single, chunks):
    p = max(range(len(layer.meta)), key=lambda i: layer.meta[i]["n"])
    x, y, (x0, x1, y0, y1) = points_of(layer.meta[p], chunks)
    assert len(x) == layer.meta[p]["n"] and len(layer.meta) >= 8
    px, py = float(np.median(x)), float(np.median(y))
    d = min(px - x0, x1 - px, py - y0, y1 - py) / 2
    bounds = (px - d, px + d, py - d, py + d)
    counts, totals = layer.aggregate(bounds, 97, 61)
    np.testing.assert_array_equal(counts, single.aggregate(bounds, 97, 61)[0])
    assert layer.partitions_in(bounds) == [p] and layer.last_frame["partitions"] == 1
    assert sum(totals.values()) > 0


def test_views_that_just_reach_a_partition_ask_it(layer, single, chunks):
    """A view whose left (bottom) edge is just inside the partition's last point on the
    right (top): that partition must be asked, whatever its neighbours."""
    for p in sorted(range(len(layer.meta)), key=lambda i: -layer.meta[i]["n"])[:3]:
        x, y, _ = points_of(layer.meta[p], chunks)
        i, j = int(np.argmax(x)), int(np.argmax(y))
        for bounds in ((float(x[i]) - 1e-4, float(x[i]) + 0.3, float(y[i]) - 0.01,
                        float(y[i]) + 0.01),
                       (float(x[j]) - 0.01, float(x[j]) + 0.01, float(y[j]) - 1e-4,
                        float(y[j]) + 0.3)):
            counts, totals = layer.aggregate(bounds, 64, 64)
            np.testing.assert_array_equal(counts, single.aggregate(bounds, 64, 64)[0])
            assert p in layer.partitions_in(bounds) and sum(totals.values()) >= 1


def test_quadtree_leaves_hold_every_point_once_and_at_most_the_cap():
    rng = np.random.default_rng(5)
    counts = rng.poisson(rng.pareto(1.0, (32, 32)) * 3).astype(np.int64)
    counts[7, 9] = 5_000  # one dense cell: a leaf of its own, over the cap
    leaves = quadtree(counts, cap=400)
    cover = np.zeros_like(counts)
    for cx0, cx1, cy0, cy1 in leaves:
        cover[cy0:cy1, cx0:cx1] += 1
        n = counts[cy0:cy1, cx0:cx1].sum()
        assert 0 < n and (n <= 400 or (cx1 - cx0, cy1 - cy0) == (1, 1))
    assert (cover[counts > 0] == 1).all() and cover.max() == 1
    assert (9, 10, 7, 8) in leaves
    assert quadtree(np.zeros((4, 4), np.int64), 10) == []


def town(k: int = 0) -> tuple[float, float, float, float]:
    """A small view on the centre of town ``k`` (as clustered_chunk places it)."""
    towns = np.random.default_rng(3)
    cx, cy = towns.uniform(115.5, 122, 30)[k], towns.uniform(35, 38, 30)[k]
    return (cx - 0.05, cx + 0.05, cy - 0.03, cy + 0.03)


@pytest.mark.parametrize("bounds,size,kind", [(town(), (8, 8), "dense"),
                                              (EXTENT, (1920, 1080), "sparse")])
def test_windows_sent_whole_or_as_non_empty_pixels(layer, single, bounds, size, kind):
    """Pixels mostly full: windows travel whole; mostly empty: only non-empty pixels
    (index and counts), fewer bytes than the frame's counts."""
    counts, _ = layer.aggregate(bounds, *size)
    np.testing.assert_array_equal(counts, single.aggregate(bounds, *size)[0])
    f = layer.last_frame
    assert f[kind] > 0 and f[kind] >= f["dense" if kind == "sparse" else "sparse"]
    if kind == "sparse":
        assert f["bytes"] < counts.nbytes / 2


def test_filters_hidden_grades_frames_counts_and_clicks(layer, single):
    bounds = (116.0, 118.5, 35.2, 37.0)
    keep = np.zeros(400_000 * 4, np.uint8)  # 1.6 MB: sent once to the workers, by its key
    keep[:500:3] = 1
    grades = ("red", "yellow")
    counts, totals = layer.aggregate(bounds, 200, 150, grades=grades, ent_mask=keep,
                                     mask_key="every third")
    np.testing.assert_array_equal(
        counts, single.aggregate(bounds, 200, 150, grades=grades, ent_mask=keep)[0])
    assert totals == single.aggregate(bounds, 200, 150, grades=grades, ent_mask=keep)[1]
    assert counts[..., GRADES.index("orange")].sum() == 0 < totals["orange"]
    for palette_index in (True, False):
        got = layer.frame(EXTENT, 300, 200, palette_index=palette_index)
        want = single.frame(EXTENT, 300, 200, palette_index=palette_index)
        np.testing.assert_array_equal(got.image, want.image)
        assert (got.counts, got.max_count) == (want.counts, want.max_count) and got.total
    assert layer.counts_in(bounds, grades=grades) == single.counts_in(bounds, grades=grades)
    assert layer.counts_in(bounds, ent_mask=keep) == single.counts_in(bounds, ent_mask=keep)
    x, y, *_ = concatenated([partial(clustered_chunk, 0, 40)])
    for px, py in zip(x, y, strict=True):  # on a point, near one, in between
        for r in (0.002, 0.02):
            assert layer.nearest(px + 0.001, py, r, r) == single.nearest(px + 0.001, py, r, r)
    assert layer.nearest(100.0, 20.0, 0.1, 0.1) is None
    assert layer.nearest(x[0], y[0], 0.01, 0.01, ent_mask=np.zeros(500, np.uint8)) is None


def test_saturation_across_partitions(client):
    """Two partitions each hold 40,000 points of one pixel: the sum saturates at 65,535 as
    one layer's kernel does; 70,000 in one partition saturate there already."""
    edge = EXTENT[0] + (EXTENT[1] - EXTENT[0]) / 2  # the border between the two
    xs = np.r_[np.full(40_000, edge - 1e-4), np.full(40_000, edge + 1e-4),
               np.full(70_000, 120.0), np.full(5, 116.0)]
    ys = np.full(xs.size, 35.0)
    cat = np.zeros(xs.size, np.uint8)
    chunks = [partial(fixed_chunk, xs[:60_000], ys[:60_000], cat[:60_000]),
              partial(fixed_chunk, xs[60_000:], ys[60_000:], cat[60_000:])]
    # fine=2: four cells; the two lower ones each a partition
    with PartitionedPointLayer.build(chunks, extent=EXTENT, partition_points=50_000, fine=2,
                                     grid=16, client=client) as lay:
        assert len(lay.meta) == 2
        one = PointLayer.from_arrays(xs, ys, cat, extent=EXTENT, grid=16)
        for w, h in ((4, 4), (64, 32), (1, 1)):
            got, totals = lay.aggregate(EXTENT, w, h)
            np.testing.assert_array_equal(got, one.aggregate(EXTENT, w, h)[0])
            assert totals["red"] == xs.size
        assert got[0, 0, 0] == 65_535


def test_a_store_through_parquet_to_the_risk_map(client, tiny_db_template, tmp_path):
    """The console's path: the store's points exported to Parquet, read by the workers; the
    risk map page renders from that layer as from the in-process one."""
    from sources.risk.risk import RiskFilter, RiskSource
    from sources.store.store import Store

    source = RiskSource(store=Store(tiny_db_template, read_only=True))
    try:
        local = source.load_layer()
        part = load_partitioned_layer(source, tmp_path / "points", client=client,
                                      partition_points=4_000, fine=16, grid=32)
        try:
            assert len(list((tmp_path / "points").glob("*.parquet"))) >= 1
            assert len(part.points) == len(local.points) == source.store.scalar(
                "SELECT count(*) FROM risk_points")
            flt = RiskFilter(cities=(local.enterprises["city_code"].dropna().iloc[0],))
            b = source.extent()
            for f in (RiskFilter(), flt):
                mask = local.mask(f)
                got = part.points.frame(b, 240, 160, ent_mask=mask, mask_key=repr(f),
                                        palette_index=True)
                want = local.points.frame(b, 240, 160, ent_mask=mask, palette_index=True)
                np.testing.assert_array_equal(got.image, want.image)
                assert got.counts == want.counts == source.counts(b, f)  # and SQL's count
            e = source.store.df("SELECT enterprise_id, lon, lat FROM risk_points LIMIT 5")
            for r in e.itertuples():
                assert part.points.nearest(r.lon, r.lat, 1e-4, 1e-4) == local.points.nearest(
                    r.lon, r.lat, 1e-4, 1e-4) == r.enterprise_id
            the_risk_map_is_the_same(source, local, part, e.iloc[0])
        finally:
            part.points.close()
    finally:
        source.store.close()


def the_risk_map_is_the_same(source, local, part, point):
    """The /risk page on either layer: same image, legend, hover and click (here, not in
    tests/views: it is this layer's contract with the page that is tested)."""
    from types import SimpleNamespace

    from sources.risk.risk import RiskFilter
    from views.risk_map import RiskPointMap

    maps = [RiskPointMap(source=source, layer=lay, frame_size=(400, 300))
            for lay in (local, part)]
    city = local.enterprises["city_code"].dropna().iloc[0]
    for step in (lambda m: None, lambda m: m._render((116.8, 117.4, 36.4, 36.9)),
                 lambda m: setattr(m, "filter", RiskFilter(cities=(city,), grades=("red",)))):
        for m in maps:
            step(m)
        a, b = (m._image.data["image"][0] for m in maps)
        np.testing.assert_array_equal(a, b)
        assert maps[0].counts == maps[1].counts and maps[0].message == maps[1].message
    for m in maps:
        m.filter = RiskFilter()
        m._show((point.lon - 0.01, point.lon + 0.01, point.lat - 0.01, point.lat + 0.01))
        m._hover_at((point.lon, point.lat))
        m._on_tap(SimpleNamespace(x=point.lon, y=point.lat))
    assert maps[0]._hover.object == maps[1]._hover.object != maps[0].t("risk.hover.none")
    assert maps[0].selected_enterprise == maps[1].selected_enterprise == point.enterprise_id


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("chunk,message", [
    (failing_chunk, "chunk 0 .* could not be loaded: OSError: no such file"),
    (partial(fixed_chunk, [117.0, 118.0], [36.0], [0, 1]), "different lengths"),
    (partial(fixed_chunk, [117.0], [36.0], [7]), "grade indices 0..3"),
    (partial(fixed_chunk, [117.0, np.nan], [36.0, 36.0], [0, 1]), "1 points with non-finite"),
    (partial(fixed_chunk, [117.0], [36.0], [0.5]), "must be integers"),
    (partial(fixed_chunk, [117.0], [36.0], [0], np.array([-1], np.int32)), "negative"),
])
def test_bad_chunks_fail_the_build_clearly(client, chunk, message):
    with pytest.raises(PartitionedLayerError, match=message):
        PartitionedPointLayer.build([chunk], extent=EXTENT, client=client, timeout=60)
    assert client.status == "running"


def test_bad_arguments(layer, client):
    for kwargs, message in (({"extent": (1, 1, 0, 1)}, "extent"),
                            ({"extent": (0, float("nan"), 0, 1)}, "extent"),
                            ({"extent": EXTENT, "fine": 3}, "power of two"),
                            ({"extent": EXTENT, "partition_points": 0}, "positive"),
                            ({"extent": EXTENT, "grid": 0}, "grid")):
        with pytest.raises(ValueError, match=message):
            PartitionedPointLayer.build([partial(clustered_chunk, 0)], client=client, **kwargs)
    with pytest.raises(ValueError, match="callables"):
        PartitionedPointLayer.build(["points.parquet"], extent=EXTENT, client=client)
    with pytest.raises(ValueError, match="empty view"):
        layer.aggregate((117.0, 116.0, 35.0, 36.0), 10, 10)
    with pytest.raises(ValueError, match="empty view"):
        layer.counts_in((117.0, 117.0, 35.0, 36.0))
    with pytest.raises(ValueError, match="pixels is over"):
        layer.frame(EXTENT, 10_000, MAX_PIXELS // 10_000 + 1)


# ---------------------------------------------------------------------- failures
def test_lost_worker_fails_the_frame_within_its_timeout(client, chunks, single, tmp_path):
    """A worker killed: the frame fails within frame_timeout with a message, the client
    lives on; once Dask has rebuilt the lost partitions the counts are exact again."""
    marker = tmp_path / "slow"
    lay = PartitionedPointLayer.build([partial(slow_when, str(marker), i) for i in range(CHUNKS)],
                                      extent=EXTENT, **PARTS, client=client, frame_timeout=2.0)
    try:
        lay.aggregate(EXTENT, 64, 64)
        held = {m["worker"] for m in lay.meta}
        assert len(held) == 2  # partitions on both workers
        marker.touch()  # a chunk now takes 4 s to load: the rebuild outlasts a frame
        pids = client.run(os.getpid)
        victim = sorted(held)[0]
        os.kill(pids[victim], signal.SIGKILL)
        wait_until(lambda: victim not in client.scheduler_info(n_workers=-1)["workers"], 20)
        t = time.monotonic()
        with pytest.raises(PartitionedLayerError, match="no answer from the workers within 2 s"
                           ".* partitions not in memory"):
            lay.frame(EXTENT, 320, 180)
        assert time.monotonic() - t < 6
        assert client.status == "running"
        marker.unlink()
        lay.frame_timeout = 60
        counts, totals = lay.aggregate(EXTENT, 320, 180)
        np.testing.assert_array_equal(counts, single.aggregate(EXTENT, 320, 180)[0])
        assert sum(totals.values()) == 200_000
    finally:
        lay.close()


def test_close_leaves_no_process(chunks):
    """A layer that started its own cluster stops every process of it on close()."""
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    lay = PartitionedPointLayer.build(chunks[:1], extent=EXTENT, partition_points=10_000,
                                      fine=8, grid=16, n_workers=2, frame_timeout=60)
    workers = set(lay.client.run(os.getpid).values())
    started = {c.pid for c in psutil.Process().children(recursive=True)} - before
    assert len(workers) == 2 and workers <= started  # worker processes, children of ours
    assert lay.counts_in(EXTENT)["blue"] > 0
    lay.close()

    def gone():
        return all(not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie"
                   for p in started)

    wait_until(gone, 20, message=f"processes left after close(): {started}")
    with pytest.raises(PartitionedLayerError, match="closed"):
        lay.aggregate(EXTENT, 10, 10)
