"""The board's map layers: static outlines and resources, warning areas, alarms at their
installations, hotspots, quakes and the risk density, from the store and the registries.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sources.base import query
from sources.geo import rings, simplify
from sources.levels import LEVELS, RISK_GRADES, WALL_COLORS
from sources.risk.pointlayer import PointLayer, palette_rgba

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: The wall's risk density image (pixels), rendered once for every page.
DENSITY_SIZE = (640, 480)
#: Least opacity of a density pixel: each grade reads as its own colour on the dark wall.
DENSITY_ALPHA_MIN = 200


class LayerQueries:
    """The layer part of :class:`~sources.situation.source.SituationSource` (a mixin)."""

    def active_warnings(self, now_ms: int | None = None) -> pd.DataFrame:
        """Warnings in force now, most severe first."""
        now = self.now_ms() if now_ms is None else now_ms
        return self._current_warnings(
            now, None,
            columns="warning_id, version, event, level, headline, area_codes, area_geojson, "
                    "epoch_ms(effective) AS effective_ms, epoch_ms(expires) AS expires_ms, "
                    "epoch_ms(created_at) AS created_ms, drill_id")

    def warning_shapes(self, now_ms: int | None = None,
                       active: pd.DataFrame | None = None) -> dict[str, list]:
        """Patches of the warnings in force (``xs, ys, level, headline``), red drawn last.

        ``county`` says which county a ring is (a warning over counties; None: a ring of the
        warning's own polygon), so a map can fill its counties instead of drawing the rings.
        ``active``: the warnings in force when already read (:meth:`active_warnings`)."""
        warnings = self.active_warnings(now_ms) if active is None else active
        county = self.county_rings()
        out: dict[str, list] = {"xs": [], "ys": [], "level": [], "headline": [], "event": [],
                                "county": []}
        order = {lvl: i for i, lvl in enumerate(LEVELS)}  # red drawn last, on top
        warnings = warnings.assign(_o=warnings.level.map(order).fillna(-1)).sort_values("_o")
        for w in warnings.itertuples():
            parts = [(ring, None) for ring in rings(w.area_geojson)]
            codes = w.area_codes if isinstance(w.area_codes, list | np.ndarray) else []
            for code in ([] if parts else codes):
                parts.extend((ring, str(code)) for ring in county.get(code, []))
            for ring, code in parts:
                out["xs"].append([p[0] for p in ring])
                out["ys"].append([p[1] for p in ring])
                out["level"].append(w.level)
                out["headline"].append(w.headline)
                out["event"].append(w.event)
                out["county"].append(code)
        return out

    @query()
    def places(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Installations (``name, lon, lat`` by id) and sensors (``lon, lat`` by id): the
        registries the live tables point into, read once (they do not change live)."""
        return (self._df("SELECT installation_id, name, lon, lat FROM installations")
                .set_index("installation_id"),
                self._df("SELECT sensor_id, lon, lat FROM sensors").set_index("sensor_id"))

    def _place_alarms(self, a: pd.DataFrame) -> pd.DataFrame:
        """Add ``lon, lat, name`` to alarms: their installation's, else their sensor's."""
        inst, sens = self.places()
        iid = a.installation_id
        at_inst = iid.notna() & iid.isin(inst.index)
        ilon = inst.lon.reindex(iid).to_numpy()
        ilat = inst.lat.reindex(iid).to_numpy()
        slon = sens.lon.reindex(a.sensor_id).to_numpy()
        slat = sens.lat.reindex(a.sensor_id).to_numpy()
        a = a.assign(lon=np.where(at_inst, ilon, slon), lat=np.where(at_inst, ilat, slat),
                     name=np.where(at_inst, inst.name.reindex(iid).to_numpy(dtype=object),
                                   a.sensor_id.to_numpy(dtype=object)))
        return a

    def open_alarms(self) -> pd.DataFrame:
        """Open alarms at their installations (sensor position when no installation)."""
        a = self._df(
            """
            SELECT alarm_id, level, state, kind, sensor_id, installation_id, drill_id,
                   state = 'raised' AS unacked, escalated_at IS NOT NULL AS escalated,
                   epoch_ms(raised_at) AS raised_ms
            FROM alarms
            WHERE state <> 'closed'
            ORDER BY raised_at DESC
            LIMIT 5000
            """)
        return self._place_alarms(a).drop(columns="installation_id")

    def hotspots(self, now_ms: int | None = None, hours: float = 24) -> pd.DataFrame:
        now = self.now_ms() if now_ms is None else now_ms
        return self._df(
            "SELECT hotspot_id, lon, lat, confidence, epoch_ms(ts) AS ts_ms FROM hotspots "
            "WHERE epoch_ms(ts) > $s ORDER BY ts DESC LIMIT 20000",
            {"s": int(now - hours * HOUR_MS)})

    def quakes(self, now_ms: int | None = None, days: float = 7) -> pd.DataFrame:
        now = self.now_ms() if now_ms is None else now_ms
        return self._df(
            "SELECT quake_id, lon, lat, depth_km, magnitude, epoch_ms(ts) AS ts_ms FROM quakes "
            "WHERE epoch_ms(ts) > $s ORDER BY ts DESC LIMIT 5000",
            {"s": int(now - days * DAY_MS)})


    # ------------------------------------------------------------------ static layers
    def counties(self) -> pd.DataFrame:
        """``county_code, name, lon, lat`` of every county."""
        return self.geography.points[["county_code", "name", "lon", "lat"]]

    @query()
    def county_rings(self) -> dict[str, list]:
        """County code -> simplified exterior rings."""
        return {code: [simplify(ring, self.outline_tolerance) for ring in outer]
                for code, outer in self.geography.rings.items()}

    @query()
    def outlines(self, level: str = "county") -> dict[str, list]:
        """``xs, ys, name`` of the outlines of one level (for a multi_line glyph)."""
        df = self._df("SELECT code, name, geojson FROM boundaries WHERE level = $l ORDER BY code",
                      {"l": level})
        out: dict[str, list] = {"xs": [], "ys": [], "name": []}
        for r in df.itertuples():
            for ring in rings(r.geojson):
                ring = simplify(ring, self.outline_tolerance)
                out["xs"].append([p[0] for p in ring])
                out["ys"].append([p[1] for p in ring])
                out["name"].append(r.name)
        return out

    @query()
    def bounds(self) -> tuple[float, float, float, float]:
        """(lon0, lat0, lon1, lat1) of the province, with a small margin."""
        x0, y0, x1, y1 = self.geography.province.bounds
        mx, my = max((x1 - x0) * 0.03, 0.05), max((y1 - y0) * 0.03, 0.05)
        return (x0 - mx, y0 - my, x1 + mx, y1 + my)

    @query()
    def resources(self) -> dict[str, pd.DataFrame]:
        """Rescue teams, warehouses and shelters (positions and names)."""
        return {
            "teams": self._df("SELECT name, kind, members, lon, lat FROM rescue_teams"),
            "warehouses": self._df("SELECT name, level, lon, lat FROM warehouses"),
            "shelters": self._df("SELECT name, kind, capacity, lon, lat FROM shelters"),
        }

    @query()
    def risk_density(self, width: int = DENSITY_SIZE[0], height: int = DENSITY_SIZE[1]) -> dict:
        """Risk-point density shaded once: ``image`` (uint32 RGBA, rows bottom-up) and bounds.

        Each pixel has the wall's colour of its heaviest grade (:data:`WALL_COLORS`, as the
        risk map's four colours), its alpha growing with the number of points there.
        ``index`` is the same picture as palette indices (uint8, one byte a pixel): what
        the wall sends, coloured in the browser by ``palette_rgba(WALL_COLORS,
        DENSITY_ALPHA_MIN)``.

        Renders from the risk map's shared in-memory point layer (``point_layer``), or from
        a layer of its own in a notebook.
        """
        x0, y0, x1, y1 = self.bounds()
        layer = self.point_layer() if callable(self.point_layer) else None
        if layer is not None:
            points = layer.points
        else:  # a notebook: a coarse layer of its own (enterprises not needed for density)
            pts = self.store.arrow(
                "SELECT lon::FLOAT AS x, lat::FLOAT AS y, CASE risk_level "
                + " ".join(f"WHEN '{g}' THEN {i}" for i, g in enumerate(RISK_GRADES))
                + " ELSE 3 END::UTINYINT AS cat FROM risk_points")
            cols = {n: pts.column(n).to_numpy() for n in ("x", "y", "cat")}
            points = PointLayer.from_arrays(cols["x"], cols["y"], cols["cat"], grid=128,
                                            extent=(x0, x1, y0, y1))
        frame = points.frame((x0, x1, y0, y1), width, height, spread=1, palette_index=True)
        # opaque enough that each grade reads as its own colour on the dark wall
        rgba = palette_rgba(WALL_COLORS, alpha_min=DENSITY_ALPHA_MIN)
        return {"image": rgba[frame.image], "index": frame.image.astype(np.uint8, copy=False),
                "x": x0, "y": y0, "dw": x1 - x0, "dh": y1 - y0, "points": int(frame.total)}
