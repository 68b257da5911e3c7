"""The shared point layer: exact counts, hidden grades, spatial reads, shading, clicks."""
from __future__ import annotations

import numpy as np
import pytest

from sources.risk.pointlayer import GRADE_COLORS, GRADES, PointLayer, palette

EXTENT = (114.8, 122.7, 34.4, 38.4)


def clustered(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(115.5, 122, 30), rng.uniform(35, 38, 30)])
    k = rng.integers(0, 30, n)
    x = (centres[k, 0] + rng.normal(0, 0.15, n)).clip(114.81, 122.69).astype(np.float32)
    y = (centres[k, 1] + rng.normal(0, 0.1, n)).clip(34.41, 38.39).astype(np.float32)
    cat = rng.choice(4, n, p=[0.05, 0.15, 0.3, 0.5]).astype(np.uint8)
    ent = rng.integers(0, 500, n).astype(np.int32)
    return x, y, cat, ent


def reference_counts(x, y, cat, bounds, w, h, keep=None):
    """The same pixel rule in numpy: lower bound in, upper out, floor((v - v0) * scale)."""
    x0, x1, y0, y1 = bounds
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    m = (xf >= x0) & (xf < x1) & (yf >= y0) & (yf < y1)
    if keep is not None:
        m &= keep
    px = np.minimum(((xf[m] - x0) * (w / (x1 - x0))).astype(np.int64), w - 1)
    py = np.minimum(((yf[m] - y0) * (h / (y1 - y0))).astype(np.int64), h - 1)
    out = np.zeros((h, w, 4), np.int64)
    np.add.at(out, (py, px, cat[m].astype(np.int64)), 1)
    return out


@pytest.fixture(scope="module")
def data():
    return clustered(200_000)


@pytest.fixture(scope="module")
def layer(data):
    x, y, cat, ent = data
    return PointLayer.from_arrays(x, y, cat, ent, extent=EXTENT, grid=128)


@pytest.mark.parametrize("bounds,w,h", [
    (EXTENT, 320, 180),
    ((116.0, 118.5, 35.2, 37.0), 257, 199),
    ((117.0, 117.05, 36.0, 36.03), 64, 48),
    ((110.0, 125.0, 30.0, 40.0), 100, 80),  # wider than the data
])
def test_counts_are_exact(layer, data, bounds, w, h):
    x, y, cat, _ = data
    counts, totals = layer.aggregate(bounds, w, h)
    ref = reference_counts(x, y, cat, bounds, w, h)
    np.testing.assert_array_equal(counts, ref)
    assert totals == {g: int(ref[..., i].sum()) for i, g in enumerate(GRADES)}


def test_counts_match_numpy_histogram(layer, data):
    x, y, cat, _ = data
    bounds, w, h = (115.0, 122.0, 35.0, 38.0), 70, 30  # cell edges exact in binary-ish steps
    counts, _ = layer.aggregate(bounds, w, h)
    for i in range(4):
        sel = cat == i
        hist, _, _ = np.histogram2d(y[sel].astype(np.float64), x[sel].astype(np.float64),
                                    bins=[h, w], range=[[35.0, 38.0], [115.0, 122.0]])
        # histogram2d closes the last bin on the right; the layer keeps upper bounds out
        diff = np.abs(hist - counts[..., i]).sum()
        on_edge = int(((x[sel] == 122.0) | (y[sel] == 38.0)).sum())
        assert diff <= on_edge


def test_hidden_grades_are_not_drawn_but_counted(layer, data):
    x, y, cat, _ = data
    counts, totals = layer.aggregate(EXTENT, 200, 100, grades=("red", "blue"))
    assert counts[..., 1].sum() == 0 and counts[..., 2].sum() == 0
    ref = reference_counts(x, y, cat, EXTENT, 200, 100)
    np.testing.assert_array_equal(counts[..., 0], ref[..., 0])
    np.testing.assert_array_equal(counts[..., 3], ref[..., 3])
    assert totals["orange"] == int((cat == 1).sum())  # the legend still knows them


def test_enterprise_mask_filters_points(layer, data):
    x, y, cat, ent = data
    wanted = [3, 17, 250]
    mask = layer.enterprise_mask(wanted)
    counts, totals = layer.aggregate(EXTENT, 100, 60, ent_mask=mask)
    ref = reference_counts(x, y, cat, EXTENT, 100, 60, keep=np.isin(ent, wanted))
    np.testing.assert_array_equal(counts, ref)
    assert sum(totals.values()) == int(np.isin(ent, wanted).sum())


def test_a_zoomed_view_reads_only_its_part(layer, data):
    x, y, _, _ = data
    bounds = (117.0, 117.3, 36.0, 36.2)
    inside = int(((x >= 117.0) & (x < 117.3) & (y >= 36.0) & (y < 36.2)).sum())
    read = layer.candidates(bounds)
    assert inside <= read < 0.05 * len(x)
    assert layer.candidates(EXTENT) == len(x)


def test_shading_uses_the_four_colours_and_transparent_background():
    # one point of each grade in its own pixel, plus an empty pixel
    x = np.array([0.5, 1.5, 2.5, 3.5], np.float32)
    y = np.full(4, 0.5, np.float32)
    lay = PointLayer.from_arrays(x, y, np.arange(4, dtype=np.uint8), extent=(0, 5, 0, 1), grid=4)
    fr = lay.frame((0, 5, 0, 1), 5, 1, spread=0, palette_index=True)
    rgba = lay.frame((0, 5, 0, 1), 5, 1, spread=0).image.view(np.uint8).reshape(1, 5, 4)
    for i, g in enumerate(GRADES):
        hexc = GRADE_COLORS[g].lstrip("#")
        assert tuple(rgba[0, i, :3]) == tuple(int(hexc[j:j + 2], 16) for j in (0, 2, 4))
        assert rgba[0, i, 3] > 0
    assert rgba[0, 4, 3] == 0
    assert fr.counts == dict.fromkeys(GRADES, 1)
    # the palette image: one index per pixel, the grade's own colour, 0 where empty
    pal = palette()
    assert [pal[i][:7] for i in fr.image[0, :4]] == [GRADE_COLORS[g] for g in GRADES]
    assert fr.image[0, 4] == 0 and pal[0] == "#00000000" and len(pal) == 256


def test_red_outweighs_blue_in_a_shared_pixel():
    x = np.full(5, 0.5, np.float32)
    cat = np.array([0, 3, 3, 3, 3], np.uint8)
    lay = PointLayer.from_arrays(x, x.copy(), cat, extent=(0, 1, 0, 1), grid=2)
    counts, _ = lay.aggregate((0, 1, 0, 1), 1, 1)
    rgba = lay.shade(counts, spread=0)[0].view(np.uint8).reshape(4)
    assert rgba[0] > rgba[2]  # more red than blue although blue points are 4x as many
    assert palette()[lay.frame((0, 1, 0, 1), 1, 1, spread=0, palette_index=True).image[0, 0]][:7] == "#e60012"
    cat[0] = 3  # five blue points: blue
    lay = PointLayer.from_arrays(x, x.copy(), cat, extent=(0, 1, 0, 1), grid=2)
    assert palette()[lay.frame((0, 1, 0, 1), 1, 1, spread=0, palette_index=True).image[0, 0]][:7] == "#1e6fff"


def test_alpha_grows_with_density():
    x = np.array([0.25] * 1 + [0.75] * 50, np.float32)
    lay = PointLayer.from_arrays(x, np.full(51, 0.5, np.float32), np.full(51, 3, np.uint8),
                                 extent=(0, 1, 0, 1), grid=2)
    img = lay.frame((0, 1, 0, 1), 2, 1, spread=0, palette_index=True).image
    pal = palette()
    assert int(pal[img[0, 0]][7:], 16) < int(pal[img[0, 1]][7:], 16) == 255


def test_empty_view_and_empty_layer():
    lay = PointLayer.from_arrays(np.zeros(0), np.zeros(0), np.zeros(0, np.uint8))
    fr = lay.frame(EXTENT, 30, 20)
    assert fr.total == 0 and not fr.image.any()
    assert lay.nearest(117, 36, 0.1, 0.1) is None
    with pytest.raises(ValueError, match="empty view"):
        lay.aggregate((1, 1, 0, 1), 10, 10)


def test_nearest_point_gives_its_enterprise(layer, data):
    x, y, cat, ent = data
    i = 1234
    eid = layer.nearest(float(x[i]), float(y[i]), 1e-6, 1e-6)
    assert eid == int(ent[i]) or np.sum((x == x[i]) & (y == y[i])) > 1
    hidden = tuple(g for g in GRADES if g != GRADES[cat[i]])
    got = layer.nearest(float(x[i]), float(y[i]), 1e-7, 1e-7, grades=hidden)
    assert got is None or got != int(ent[i]) or np.sum((x == x[i]) & (y == y[i])) > 1


def test_frames_are_cached(layer):
    a = layer.frame(EXTENT, 64, 32)
    assert layer.frame(EXTENT, 64, 32) is a
    assert layer.frame(EXTENT, 64, 32, grades=("red",)) is not a
    b = layer.frame(EXTENT, 64, 32, palette_index=True)
    assert b is not a and b.image.dtype == np.uint8 and a.image.dtype == np.uint32


def test_memory_is_compact(data):
    x, y, cat, ent = data
    lay = PointLayer.from_arrays(x, y, cat, ent, extent=EXTENT)
    assert lay.nbytes < len(x) * 14 + (512 * 512 + 1) * 8 + 500 * 8


def test_pixel_counts_saturate_but_totals_stay_exact():
    n = 70_000
    x = np.full(n, 0.5, np.float32)
    lay = PointLayer.from_arrays(x, x.copy(), np.zeros(n, np.uint8), extent=(0, 1, 0, 1), grid=2)
    counts, totals = lay.aggregate((0, 1, 0, 1), 2, 2)
    assert counts.max() == 65535 and totals["red"] == n
    assert lay.frame((0, 1, 0, 1), 2, 2).max_count == 65535


@pytest.mark.parametrize("threads", [1, 2])
def test_one_or_two_threads_count_the_same(layer, data, threads):
    x, y, cat, _ = data
    bounds = (116.0, 121.0, 35.0, 38.0)
    counts, _ = layer.aggregate(bounds, 300, 200, threads=threads)
    np.testing.assert_array_equal(counts, reference_counts(x, y, cat, bounds, 300, 200))
    img, _ = layer.shade(counts, threads=threads)
    ref, _ = layer.shade(counts, threads=1)
    np.testing.assert_array_equal(img, ref)
