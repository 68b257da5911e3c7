"""Maps that fill their area: the ranges fit an extent to whatever size the figure gets.

A map figure that stretches (``sizing_mode="stretch_both"``) has its size only in the
browser, after layout. :func:`fit_ranges` gives it ``Range1d`` ranges and a browser-side
callback that, whenever the plot area changes size, sets them to the extent (with a small
margin) at the map's aspect — one unit of y drawn ``aspect`` times as long as one of x —
and centres it, so the province fills the width or the height of the area, whichever binds.
The fit is also where the reset tool returns. Once the user pans or zooms, a resize keeps
their view.
"""
from __future__ import annotations

from bokeh.models import CustomJS, Range1d

FIT_JS = """
const w = plot.inner_width, h = plot.inner_height;
if (!(w > 1 && h > 1)) { return; }
const [x0, y0, x1, y1] = extent;
const dx = (x1 - x0) * (1 + 2 * pad), dy = (y1 - y0) * (1 + 2 * pad);
const s = Math.min(w / dx, h / (dy * aspect));        // pixels per unit of x
const hx = w / s / 2, hy = h / (s * aspect) / 2;
const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
const xr = plot.x_range, yr = plot.y_range;
const fitted = (r) => r._fit === undefined
  || (Math.abs(r.start - r._fit[0]) < 1e-9 && Math.abs(r.end - r._fit[1]) < 1e-9);
if (!fitted(xr) || !fitted(yr)) { return; }           // the user moved the map: keep it
xr._fit = [cx - hx, cx + hx];
yr._fit = [cy - hy, cy + hy];
xr.setv({start: cx - hx, end: cx + hx, reset_start: cx - hx, reset_end: cx + hx});
yr.setv({start: cy - hy, end: cy + hy, reset_start: cy - hy, reset_end: cy + hy});
"""


def fit_ranges(fig, extent: tuple[float, float, float, float], *, aspect: float = 1.0,
               pad: float = 0.02) -> None:
    """Make ``fig``'s ranges fit ``extent`` (x0, y0, x1, y1) at every size it is drawn at.

    ``aspect`` is how many times longer a unit of y is drawn than a unit of x (1 when the
    y data are already stretched); ``pad`` the margin, as a share of the extent on each side.
    Until the browser has laid the figure out, the ranges are the padded extent itself.
    """
    x0, y0, x1, y1 = (float(v) for v in extent)
    px, py = (x1 - x0) * pad, (y1 - y0) * pad
    fig.x_range = Range1d(x0 - px, x1 + px)
    fig.y_range = Range1d(y0 - py, y1 + py)
    fig.match_aspect = False
    fit = CustomJS(args={"plot": fig, "extent": [x0, y0, x1, y1], "aspect": float(aspect),
                         "pad": float(pad)}, code=FIT_JS)
    fig.js_on_change("inner_width", fit)
    fig.js_on_change("inner_height", fit)
