"""Which chart a query result gets, and that each renders (map rasterised when large)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.conftest import rendered
from views.result_chart import RASTERISE_ABOVE, chart_element, chart_spec


@pytest.mark.parametrize(("columns", "kind"), [
    ({"lon": [117.0], "lat": [36.0], "risk_level": ["red"]}, "map"),
    ({"Longitude": [117.0], "Latitude": [36.0]}, "map"),
    ({"ts": pa.array([0], pa.timestamp("us", tz="UTC")), "value": [1.5]}, "line"),
    ({"city": ["济南市"], "n": [3]}, "bars"),
    ({"a": [1], "b": [2]}, None),
    ({"name": ["x"]}, None),
    ({"lon": ["117"], "lat": ["36"]}, None),  # text, not numbers: no map
])
def test_chart_spec(columns, kind):
    spec = chart_spec(pa.table(columns).schema)
    assert (spec or {}).get("kind") == kind


@pytest.mark.parametrize("n", [100, pytest.param(RASTERISE_ABOVE + 1, marks=pytest.mark.slow)])
def test_maps_render_small_and_large(n):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"lon": rng.uniform(115, 122, n), "lat": rng.uniform(34, 38, n),
                       "risk_level": rng.choice(["red", "orange", "yellow", "blue"], n)})
    spec = chart_spec(pa.Table.from_pandas(df).schema)  # large: datashader (JIT ~10 s cold)
    outlines = ([115.0, 122.0, float("nan")], [34.0, 38.0, float("nan")])
    page = rendered(chart_element(df, spec, outlines))
    # every point drawn (glyphs), or the raster of them (an image) above the threshold
    assert page["figures"] == 1 and (page["rows"] >= n or n > RASTERISE_ABOVE), page
