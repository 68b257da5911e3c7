"""Measures of how a page uses its screen, from the boxes the browser laid out.

:func:`blank` rasterises every visible piece of content (text runs, canvases, images,
controls, tables) onto a grid of ``cell`` pixels and finds the largest rectangle of the
viewport with nothing in it. :func:`map_fit` reads a Bokeh map's ranges and the province's
outline data and says how much of the plot area the province spans across and down.
"""
from __future__ import annotations

# Content: text (a Range over each text node), and the boxes of canvases, images, svg,
# controls, tables and framed boxes (a border on all four sides: a card, a panel). Everything
# is looked for through open shadow roots; what is not rendered, hidden or transparent (an
# inactive tab) does not count.
BLANK_JS = r"""
(cell) => {
  const W = window.innerWidth, H = window.innerHeight;
  const cols = Math.ceil(W / cell), rows = Math.ceil(H / cell);
  const grid = new Uint8Array(cols * rows);
  const mark = (r) => {
    const x0 = Math.max(0, r.left), y0 = Math.max(0, r.top);
    const x1 = Math.min(W, r.right), y1 = Math.min(H, r.bottom);
    if (x1 - x0 < 1 || y1 - y0 < 1) return;
    for (let y = Math.floor(y0 / cell); y < Math.ceil(y1 / cell); y++)
      for (let x = Math.floor(x0 / cell); x < Math.ceil(x1 / cell); x++) grid[y * cols + x] = 1;
  };
  const BOX = new Set(['CANVAS', 'IMG', 'svg', 'INPUT', 'SELECT', 'TEXTAREA', 'BUTTON',
                       'TABLE', 'VIDEO']);
  const shown = (el) => el.checkVisibility
    ? el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
    : el.getClientRects().length > 0;
  const framed = (el) => {
    const s = getComputedStyle(el);
    return ['Top', 'Right', 'Bottom', 'Left'].every(side =>
      parseFloat(s['border' + side + 'Width']) > 0 && s['border' + side + 'Style'] !== 'none'
      && !/rgba\(.*, 0\)$/.test(s['border' + side + 'Color']));
  };
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot);
      if (!shown(el)) continue;
      if (BOX.has(el.tagName) || el.classList.contains('tabulator') || framed(el)) {
        for (const r of el.getClientRects()) mark(r);
        continue;
      }
      for (const n of el.childNodes) {
        if (n.nodeType === 3 && n.textContent.trim()) {
          const range = document.createRange();
          range.selectNodeContents(n);
          for (const r of range.getClientRects()) mark(r);
        }
      }
    }
  };
  walk(document);
  // largest all-empty rectangle: histogram of empty runs per row, then a stack per row
  const h = new Array(cols).fill(0);
  let best = {area: 0};
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) h[x] = grid[y * cols + x] ? 0 : h[x] + 1;
    const stack = [];
    for (let x = 0; x <= cols; x++) {
      const cur = x < cols ? h[x] : 0;
      let start = x;
      while (stack.length && stack[stack.length - 1][1] >= cur) {
        const [s, height] = stack.pop();
        const area = height * (x - s);
        if (area > best.area) best = {area, x: s, y: y - height + 1, w: x - s, h: height};
        start = s;
      }
      stack.push([start, cur]);
    }
  }
  const empty = grid.reduce((a, v) => a + (v ? 0 : 1), 0);
  return {
    largest: best.area / (cols * rows),
    rect: best.area ? [best.x * cell, best.y * cell, best.w * cell, best.h * cell] : null,
    empty: empty / (cols * rows),
    scroll_width: document.documentElement.scrollWidth,
  };
}
"""

# The map's plot area and ranges, and the province's extent from its outline source (the
# renderer with the most lines): the shares of the plot the province spans.
MAP_FIT_JS = """
(name) => {
  const doc = Bokeh.documents[0];
  const fig = doc.get_model_by_name(name);
  if (!fig || !(fig.inner_width > 1)) return null;
  let xs = null;
  for (const r of fig.renderers) {
    const d = r.data_source && r.data_source.data;
    if (d && d.xs && (!xs || d.xs.length > xs.xs.length)) xs = d;
  }
  if (!xs || !xs.xs.length) return null;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < xs.xs.length; i++) {
    for (const v of xs.xs[i]) { if (v < x0) x0 = v; if (v > x1) x1 = v; }
    for (const v of xs.ys[i]) { if (v < y0) y0 = v; if (v > y1) y1 = v; }
  }
  const xr = fig.x_range, yr = fig.y_range;
  const sx = fig.inner_width / (xr.end - xr.start), sy = fig.inner_height / (yr.end - yr.start);
  return {
    width: fig.inner_width, height: fig.inner_height,
    across: (x1 - x0) / (xr.end - xr.start), down: (y1 - y0) / (yr.end - yr.start),
    // left, right, top and bottom margins around the province, in pixels
    margins: [(x0 - xr.start) * sx, (xr.end - x1) * sx, (yr.end - y1) * sy, (y0 - yr.start) * sy],
  };
}
"""


def blank(page, cell: int = 24) -> dict:
    """``largest`` (share of the viewport in the largest empty rectangle), ``rect`` (x, y, w,
    h in pixels), ``empty`` (share of empty cells) and ``scroll_width`` of the page now."""
    return page.evaluate(BLANK_JS, cell)


def map_fit(page, name: str) -> dict | None:
    """How the named map figure shows the province (None until it is laid out)."""
    return page.evaluate(MAP_FIT_JS, name)


def box(page, selector: str) -> dict | None:
    """The bounding box of the first element matching ``selector`` (through shadow roots)."""
    loc = page.locator(selector)
    return loc.first.bounding_box() if loc.count() else None
