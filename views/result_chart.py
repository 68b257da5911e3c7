"""Charts of query results: which chart the columns allow, and the HoloViews element.

A map needs ``lon``/``lat`` (rasterised with datashader above :data:`RASTERISE_ABOVE` points,
city outlines drawn above); a line, a time and a number; bars, a category and a number.
"""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the options of the bokeh backend)
import pandas as pd
import pyarrow as pa

from sources.risk.pointlayer import GRADE_COLORS

#: Results with more points than this are rasterised by datashader rather than drawn.
RASTERISE_ABOVE = 5_000


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t) \
            or pa.types.is_boolean(t):
        return "category"
    return "other"


def chart_spec(schema: pa.Schema) -> dict | None:
    """Which chart the columns allow: ``{'kind': 'map'|'line'|'bars', 'x', 'y', 'by'}`` or None.

    A map needs numeric ``lon`` and ``lat`` (or ``longitude``/``latitude``); a line, a time
    and a number; bars, a category and a number. ``by`` colours map points by a category
    (``risk_level`` or ``level`` when present).
    """
    kinds = {f.name: _kind(f.type) for f in schema}
    lower = {name.lower(): name for name in kinds}
    lon = next((lower[n] for n in ("lon", "longitude", "lng") if n in lower), None)
    lat = next((lower[n] for n in ("lat", "latitude") if n in lower), None)
    if lon and lat and kinds[lon] == kinds[lat] == "number":
        by = next((lower[n] for n in ("risk_level", "level") if n in lower
                   and kinds[lower[n]] == "category"), None)
        return {"kind": "map", "x": lon, "y": lat, "by": by}
    numbers = [n for n, k in kinds.items() if k == "number"]
    for kind, chart in (("time", "line"), ("category", "bars")):
        xs = [n for n, k in kinds.items() if k == kind]
        if xs and numbers:
            return {"kind": chart, "x": xs[0], "y": numbers[0], "by": None}
    return None


def chart_element(df: pd.DataFrame, spec: dict, outlines=None):
    """The HoloViews element of a result (datashader for large maps).

    ``outlines`` (lon, lat lists, NaN-separated) are drawn above map points.
    """
    element = _chart(df, spec)
    if spec["kind"] == "map" and outlines and outlines[0]:
        path = hv.Path([{"lon": outlines[0], "lat": outlines[1]}], ["lon", "lat"]).opts(
            color="#475569", line_width=0.7, alpha=0.8)
        return (element * path).opts(responsive=True, height=420)
    return element


def _chart(df: pd.DataFrame, spec: dict):
    x, y, by = spec["x"], spec["y"], spec["by"]
    if spec["kind"] == "line":
        return hv.Curve(df.sort_values(x), x, y).opts(
            responsive=True, height=360, tools=["hover"], color="#2f6fd6")
    if spec["kind"] == "bars":
        top = df[[x, y]].dropna().head(60)
        top[x] = top[x].astype(str)
        return hv.Bars(top, x, y).opts(
            responsive=True, height=360, tools=["hover"], xrotation=45, color="#2f6fd6")
    data = df[[x, y] + ([by] if by else [])].dropna(subset=[x, y])
    if by:
        data[by] = data[by].astype(str).astype("category")
    points = hv.Points(data, [x, y], [by] if by else [])
    colours = {k: GRADE_COLORS.get(k, "#6b7280") for k in (data[by].cat.categories if by else [])}
    common = dict(responsive=True, height=420, xlabel="lon", ylabel="lat")
    if len(data) > RASTERISE_ABOVE:
        import datashader as ds
        from holoviews.operation.datashader import datashade, dynspread, rasterize

        if by:
            shaded = datashade(points, aggregator=ds.count_cat(by), color_key=colours)
            return dynspread(shaded, threshold=0.6).opts(**common)
        return dynspread(rasterize(points).opts(cmap="fire", cnorm="eq_hist")).opts(**common)
    opts = dict(size=5, tools=["hover"], **common)
    if by:
        opts.update(color=by, cmap=colours)
    return points.opts(**opts)


def warm() -> None:
    """Compile the datashader kernels that result maps use (numba: 10–30 s cold).

    The console calls it once in a background thread at start, so the first map an analyst
    draws does not pay for it. Runs the same operations, not dynamic, on a few points.
    """
    import datashader as ds
    import numpy as np
    from holoviews.operation.datashader import datashade, dynspread, rasterize

    n = 64
    df = pd.DataFrame({"lon": np.linspace(115.0, 122.0, n), "lat": np.linspace(34.0, 38.0, n),
                       "risk_level": pd.Categorical(["blue", "red"] * (n // 2))})
    points = hv.Points(df, ["lon", "lat"], ["risk_level"])
    shaded = datashade(points, aggregator=ds.count_cat("risk_level"), dynamic=False,
                       color_key={k: GRADE_COLORS.get(k, "#6b7280") for k in ("blue", "red")})
    dynspread(shaded, threshold=0.6, dynamic=False)
    dynspread(rasterize(hv.Points(df, ["lon", "lat"]), dynamic=False), dynamic=False)
