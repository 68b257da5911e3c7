"""The material inventory (应急物资): stock by warehouse and kind, finding supply near a point,
and dispatch (调拨) from request to receipt without ever losing a unit.

Every change of stock is one transaction that also writes a row of ``stock_ledger``, so
``stock.quantity = stock.initial_quantity + SUM(stock_ledger.delta)`` always holds
(:meth:`MaterialSource.ledger_mismatches` checks it). Shipping decrements with a conditional
``UPDATE ... WHERE quantity >= ?``: when two officers ship the last units at once, one wins
and the other is told the stock is short, and nothing of theirs is written.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import param

from sources.base import Source, query
from sources.geo import CountyGeometry, haversine_km
from sources.inventory.common import (
    InventoryError,
    actor_name,
    county_point,
    next_id,
    to_csv_bytes,
    to_excel_bytes,
    utc_now,
)

STOCK_SQL = """
SELECT s.warehouse_id, w.name AS warehouse, w.level, w.county_code, s.kind_id,
       k.name AS kind, k.category, k.unit, k.countable, s.quantity, s.min_quantity,
       s.initial_quantity, s.quantity < s.min_quantity AS shortage,
       greatest(s.min_quantity - s.quantity, 0) AS gap
FROM stock s JOIN warehouses w USING (warehouse_id) JOIN material_kinds k USING (kind_id)
WHERE ($kind IS NULL OR s.kind_id = $kind)
  AND ($warehouse IS NULL OR s.warehouse_id = $warehouse)
  AND ($category IS NULL OR k.category = $category)
  AND (NOT $shortages OR s.quantity < s.min_quantity)
ORDER BY shortage DESC, k.category, s.kind_id, s.warehouse_id
"""

DISPATCH_SQL = """
SELECT d.dispatch_id, d.status, d.kind_id, k.name AS kind, k.unit, d.quantity,
       d.from_warehouse_id, f.name AS from_warehouse, d.to_warehouse_id, d.destination,
       d.requester, d.requested_at, d.approved_by, d.approved_at, d.shipped_by, d.shipped_at,
       d.received_by, d.received_at, d.note
FROM dispatches d JOIN material_kinds k USING (kind_id)
JOIN warehouses f ON f.warehouse_id = d.from_warehouse_id
WHERE ($status IS NULL OR d.status = $status)
ORDER BY d.dispatch_id DESC
"""

# status a dispatch must be in for each step, and the status it moves to
STEPS = {"approve": ("requested", "approved"), "reject": ("requested", "rejected"),
         "ship": ("approved", "shipped"), "receive": ("shipped", "received")}


class MaterialSource(Source):
    """Queries and officer actions over warehouses, material kinds and stock."""

    source_type: ClassVar[str] = "materials"

    geography = param.ClassSelector(class_=CountyGeometry, default=None, allow_None=True,
                                    doc="The province's counties (built from the store when "
                                        "None; the console shares one).")

    def __init__(self, **params):
        super().__init__(**params)
        if self.geography is None:
            self.geography = CountyGeometry(self.store)

    # ------------------------------------------------------------------ registry
    def kinds(self) -> pd.DataFrame:
        """Material kinds: id, name, category, unit, countable."""
        return self.store.df("SELECT * FROM material_kinds ORDER BY category, kind_id")

    def warehouses(self, kind_id: int | None = None) -> pd.DataFrame:
        """Warehouses with their stock of ``kind_id`` (or of everything) and shortage count."""
        return self.store.df(
            "SELECT w.warehouse_id, w.name, w.level, w.owner_unit, w.county_code, w.lon, w.lat, "
            "w.contact_name, w.contact_phone, "
            "coalesce(sum(s.quantity) FILTER (WHERE $kind IS NULL OR s.kind_id = $kind), 0) "
            "AS quantity, count(*) FILTER (WHERE s.quantity < s.min_quantity) AS shortages "
            "FROM warehouses w LEFT JOIN stock s USING (warehouse_id) "
            "GROUP BY ALL ORDER BY w.warehouse_id", {"kind": _opt_int(kind_id)})

    @query()
    def warehouse_registry(self) -> pd.DataFrame:
        """Warehouses (id, name as ``warehouse``, county, place, contacts), loaded once."""
        return self.store.df(
            "SELECT warehouse_id, name AS warehouse, county_code, lon, lat, "
            "contact_name, contact_phone FROM warehouses ORDER BY warehouse_id")

    def stock(self, *, kind_id: int | None = None, warehouse_id: int | None = None,
              category: str | None = None, shortages_only: bool = False) -> pd.DataFrame:
        """Stock rows (warehouse × kind), shortages against minimum stock first."""
        return self.store.df(STOCK_SQL, {
            "kind": _opt_int(kind_id), "warehouse": _opt_int(warehouse_id),
            "category": category or None, "shortages": bool(shortages_only)})

    def totals_by_category(self) -> pd.DataFrame:
        """Totals per category and unit: kinds, quantity, rows under minimum."""
        return self.store.df(
            "SELECT k.category, k.unit, count(DISTINCT s.kind_id) AS kinds, "
            "sum(s.quantity) AS quantity, count(*) FILTER (WHERE s.quantity < s.min_quantity) "
            "AS shortages FROM stock s JOIN material_kinds k USING (kind_id) "
            "GROUP BY ALL ORDER BY k.category, k.unit")

    def county_outlines(self) -> list[dict[str, np.ndarray]]:
        """County outlines as closed rings ({'x': lon, 'y': lat})."""
        return [{"x": np.asarray(ring)[:, 0], "y": np.asarray(ring)[:, 1]}
                for outer in self.geography.rings.values() for ring in outer]

    # ------------------------------------------------------------------ find supply
    def find_supply(self, kind_id: int, quantity: float, *, lon: float | None = None,
                    lat: float | None = None, county: str | None = None) -> dict[str, Any]:
        """Warehouses holding ``kind_id`` nearest first, and the greedy plan reaching ``quantity``.

        Give the point as ``lon``/``lat`` or as a ``county`` code. Returns a dict with
        ``candidates`` (every warehouse with stock: distance_km, quantity, allocate — what the
        plan takes from it), ``plan`` (the rows with allocate > 0), ``planned`` (sum taken),
        ``enough`` (whether the plan reaches the quantity), and ``kind``.
        """
        kind = self._kind(kind_id)
        qty = self._quantity(quantity, kind)
        if county:
            lon, lat = county_point(self.store, county)
        if lon is None or lat is None or not (-180 <= float(lon) <= 180
                                              and -90 <= float(lat) <= 90):
            raise InventoryError("inventory.error.no_point",
                                 "give a point (longitude/latitude) or a county")
        held = self.store.df("SELECT warehouse_id, quantity FROM stock "
                             "WHERE kind_id = ? AND quantity > 0", [kind["kind_id"]])
        df = self.warehouse_registry().merge(held, on="warehouse_id", how="inner")
        df["distance_km"] = haversine_km(float(lon), float(lat), df["lon"], df["lat"])
        df = df.sort_values(["distance_km", "warehouse_id"]).reset_index(drop=True)
        before = df["quantity"].cumsum().shift(fill_value=0.0)
        df["allocate"] = np.clip(qty - before, 0.0, df["quantity"])
        planned = float(df["allocate"].sum())
        return {"kind": kind, "quantity": qty, "candidates": df, "plan": df[df["allocate"] > 0],
                "planned": planned, "enough": planned >= qty - 1e-9}

    # ------------------------------------------------------------------ dispatch
    def request_dispatch(self, *, kind_id: int, quantity: float, from_warehouse_id: int,
                         to_warehouse_id: int | None = None, destination: str | None = None,
                         requester: str | None = None, note: str | None = None,
                         now: datetime | None = None) -> int:
        """Ask for ``quantity`` of a kind from a warehouse to another warehouse or a place.

        Refused (nothing written) for a bad quantity, an unknown kind or warehouse, the same
        source and destination, or more than the source holds now.
        """
        kind = self._kind(kind_id)
        qty = self._quantity(quantity, kind)
        source = self._warehouse(from_warehouse_id)
        to_name = None
        if to_warehouse_id not in (None, ""):
            to_name = self._warehouse(to_warehouse_id)["name"]
            if int(to_warehouse_id) == source["warehouse_id"]:
                raise InventoryError("inventory.error.same_warehouse",
                                     "the source and the destination are the same warehouse")
        destination = (to_name or (destination or "").strip())
        if not destination:
            raise InventoryError("inventory.error.no_destination", "give a destination")
        held = self.store.scalar("SELECT quantity FROM stock WHERE warehouse_id = ? AND "
                                 "kind_id = ?", [source["warehouse_id"], kind["kind_id"]]) or 0
        if held < qty:
            raise InventoryError("inventory.error.short",
                                 "{warehouse} holds {held:g} {unit}, fewer than {qty:g}",
                                 warehouse=source["name"], held=held, unit=kind["unit"], qty=qty)
        with self.store.transaction() as cur:
            dispatch_id = next_id(cur)
            cur.execute(
                "INSERT INTO dispatches (dispatch_id, kind_id, quantity, from_warehouse_id, "
                "to_warehouse_id, destination, requester, status, requested_at, note) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?)",
                [dispatch_id, kind["kind_id"], qty, source["warehouse_id"],
                 _opt_int(to_warehouse_id), destination, actor_name(requester),
                 now or utc_now(), note])
        self._publish("dispatch", {"dispatch_id": dispatch_id, "status": "requested"})
        return dispatch_id

    def approve(self, dispatch_id: int, *, actor: str | None = None,
                now: datetime | None = None) -> None:
        """Approve a requested dispatch."""
        with self.store.transaction() as cur:
            self._step(cur, dispatch_id, "approve", actor, now)
        self._publish("dispatch", {"dispatch_id": int(dispatch_id), "status": "approved"})

    def reject(self, dispatch_id: int, *, actor: str | None = None, note: str = "",
               now: datetime | None = None) -> None:
        """Reject a requested dispatch (no stock moves)."""
        with self.store.transaction() as cur:
            self._step(cur, dispatch_id, "reject", actor, now, note=note)
        self._publish("dispatch", {"dispatch_id": int(dispatch_id), "status": "rejected"})

    def ship(self, dispatch_id: int, *, actor: str | None = None,
             now: datetime | None = None) -> float:
        """Ship an approved dispatch: stock leaves the source warehouse, in one transaction.

        Returns the quantity left at the source. Raises :class:`InventoryError` (and writes
        nothing) when the source no longer holds enough, e.g. another officer shipped the
        last units first.
        """
        now = now or utc_now()
        actor = actor_name(actor)
        with self.store.transaction() as cur:
            d = self._step(cur, dispatch_id, "ship", actor, now)
            left = cur.execute(
                "UPDATE stock SET quantity = quantity - ? WHERE warehouse_id = ? AND kind_id = ? "
                "AND quantity >= ? RETURNING quantity",
                [d["quantity"], d["from_warehouse_id"], d["kind_id"], d["quantity"]]).fetchall()
            if not left:
                held = cur.execute("SELECT quantity FROM stock WHERE warehouse_id = ? AND "
                                   "kind_id = ?", [d["from_warehouse_id"], d["kind_id"]]
                                   ).fetchall()
                raise InventoryError(
                    "inventory.error.short_ship",
                    "not shipped: the warehouse now holds {held:g}, fewer than {qty:g} "
                    "(someone shipped first); nothing was changed",
                    held=held[0][0] if held else 0.0, qty=d["quantity"])
            self._ledger(cur, d["from_warehouse_id"], d["kind_id"], -d["quantity"], "ship",
                         int(dispatch_id), actor, now)
        self._publish("stock", {"dispatch_id": int(dispatch_id), "status": "shipped",
                                "warehouse_id": d["from_warehouse_id"], "kind_id": d["kind_id"]})
        return float(left[0][0])

    def receive(self, dispatch_id: int, *, actor: str | None = None,
                now: datetime | None = None) -> None:
        """Confirm receipt; when the destination is a warehouse its stock grows (ledgered)."""
        now = now or utc_now()
        actor = actor_name(actor)
        with self.store.transaction() as cur:
            d = self._step(cur, dispatch_id, "receive", actor, now)
            if d["to_warehouse_id"] is not None:
                to = int(d["to_warehouse_id"])
                cur.execute("INSERT INTO stock (warehouse_id, kind_id, quantity, "
                            "initial_quantity, min_quantity) VALUES (?, ?, 0, 0, 0) "
                            "ON CONFLICT DO NOTHING", [to, d["kind_id"]])
                cur.execute("UPDATE stock SET quantity = quantity + ? WHERE warehouse_id = ? "
                            "AND kind_id = ?", [d["quantity"], to, d["kind_id"]])
                self._ledger(cur, to, d["kind_id"], d["quantity"], "receive",
                             int(dispatch_id), actor, now)
        self._publish("stock", {"dispatch_id": int(dispatch_id), "status": "received"})

    def adjust(self, *, warehouse_id: int, kind_id: int, delta: float,
               actor: str | None = None, note: str = "", now: datetime | None = None) -> float:
        """Take stock in (delta > 0) or write it off (delta < 0), ledgered; returns the new stock."""
        kind = self._kind(kind_id)
        self._quantity(abs(delta) if isinstance(delta, int | float | np.number)
                       and not isinstance(delta, bool) else delta, kind)
        wh = self._warehouse(warehouse_id)
        now = now or utc_now()
        actor = actor_name(actor)
        with self.store.transaction() as cur:
            cur.execute("INSERT INTO stock (warehouse_id, kind_id, quantity, initial_quantity, "
                        "min_quantity) VALUES (?, ?, 0, 0, 0) ON CONFLICT DO NOTHING",
                        [wh["warehouse_id"], kind["kind_id"]])
            left = cur.execute(
                "UPDATE stock SET quantity = quantity + ? WHERE warehouse_id = ? AND kind_id = ? "
                "AND quantity + ? >= 0 RETURNING quantity",
                [float(delta), wh["warehouse_id"], kind["kind_id"], float(delta)]).fetchall()
            if not left:
                raise InventoryError("inventory.error.short_adjust",
                                     "the write-off is larger than the stock; nothing was changed")
            self._ledger(cur, wh["warehouse_id"], kind["kind_id"], float(delta), "adjust",
                         None, actor, now, note or None)
        self._publish("stock", {"warehouse_id": wh["warehouse_id"], "kind_id": kind["kind_id"]})
        return float(left[0][0])

    def dispatches(self, status: str | None = None) -> pd.DataFrame:
        """Dispatches, newest first (optionally of one status)."""
        return self.store.df(DISPATCH_SQL, {"status": status or None})

    def movements(self, *, warehouse_id: int | None = None, kind_id: int | None = None,
                  start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """The stock ledger: every movement with its warehouse, kind, delta, dispatch and actor."""
        return self.store.df(
            "SELECT l.entry_id, l.moved_at, l.warehouse_id, w.name AS warehouse, l.kind_id, "
            "k.name AS kind, k.unit, l.delta, l.reason, l.dispatch_id, l.actor, l.note "
            "FROM stock_ledger l JOIN warehouses w USING (warehouse_id) "
            "JOIN material_kinds k USING (kind_id) "
            "WHERE ($w IS NULL OR l.warehouse_id = $w) AND ($k IS NULL OR l.kind_id = $k) "
            "AND ($start IS NULL OR l.moved_at >= $start) AND ($end IS NULL OR l.moved_at < $end) "
            "ORDER BY l.entry_id DESC",
            {"w": _opt_int(warehouse_id), "k": _opt_int(kind_id), "start": start, "end": end})

    def ledger_mismatches(self, tolerance: float = 1e-6) -> pd.DataFrame:
        """Stock rows where quantity ≠ initial_quantity + SUM(ledger deltas) (should be none)."""
        return self.store.df(
            "SELECT s.warehouse_id, s.kind_id, s.quantity, s.initial_quantity, "
            "coalesce(l.moved, 0) AS moved FROM stock s LEFT JOIN ("
            "  SELECT warehouse_id, kind_id, sum(delta) AS moved FROM stock_ledger GROUP BY ALL"
            ") l USING (warehouse_id, kind_id) "
            "WHERE abs(s.quantity - s.initial_quantity - coalesce(l.moved, 0)) > ?", [tolerance])

    def export(self, what: str = "stock", fmt: str = "csv") -> bytes:
        """Export ``'stock'`` or ``'movements'`` as CSV, or both as one Excel workbook."""
        if fmt == "xlsx":
            return to_excel_bytes({"stock": self.stock(), "movements": self.movements(),
                                   "dispatches": self.dispatches()})
        return to_csv_bytes(self.stock() if what == "stock" else self.movements())

    # ------------------------------------------------------------------ helpers
    def _step(self, cur, dispatch_id, step: str, actor, now, note: str | None = None) -> dict:
        """Move a dispatch one step (conditionally on its current status); returns its row."""
        before, after = STEPS[step]
        rows = cur.execute("SELECT * FROM dispatches WHERE dispatch_id = ?",
                           [_opt_int(dispatch_id)]).fetchall()
        if not rows:
            raise InventoryError("inventory.error.unknown_dispatch", "unknown dispatch: {id}",
                                 id=dispatch_id)
        cols = [c[0] for c in cur.description]
        d = dict(zip(cols, rows[0], strict=True))
        column = {"approve": "approved", "reject": "approved", "ship": "shipped",
                  "receive": "received"}[step]
        moved = cur.execute(
            f"UPDATE dispatches SET status = ?, {column}_by = ?, {column}_at = ?, "
            "note = coalesce(?, note) WHERE dispatch_id = ? AND status = ? RETURNING dispatch_id",
            [after, actor_name(actor), now or utc_now(), note or None, int(dispatch_id), before]
        ).fetchall()
        if not moved:
            raise InventoryError(
                "inventory.error.bad_step",
                "dispatch {id} is {status}: it cannot be {step} now; nothing was changed",
                id=dispatch_id, status=d["status"], step=after)
        return d

    def _ledger(self, cur, warehouse_id, kind_id, delta, reason, dispatch_id, actor, now,
                note=None) -> None:
        cur.execute("INSERT INTO stock_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [next_id(cur), int(warehouse_id), int(kind_id), float(delta), reason,
                     dispatch_id, actor, now, note])

    def _kind(self, kind_id) -> dict:
        rows = self.store.arrow("SELECT * FROM material_kinds WHERE kind_id = ?",
                                [_opt_int(kind_id)]).to_pylist()
        if not rows:
            raise InventoryError("inventory.error.unknown_kind", "unknown material kind: {id}",
                                 id=kind_id)
        return rows[0]

    def _warehouse(self, warehouse_id) -> dict:
        rows = self.store.arrow("SELECT warehouse_id, name FROM warehouses WHERE warehouse_id = ?",
                                [_opt_int(warehouse_id)]).to_pylist()
        if not rows:
            raise InventoryError("inventory.error.unknown_warehouse", "unknown warehouse: {id}",
                                 id=warehouse_id)
        return rows[0]

    @staticmethod
    def _quantity(quantity, kind: dict) -> float:
        if isinstance(quantity, bool) or not isinstance(quantity, int | float | np.number) \
                or not math.isfinite(float(quantity)) or float(quantity) <= 0:
            raise InventoryError("inventory.error.bad_quantity",
                                 "the quantity must be a number above 0")
        if kind["countable"] and float(quantity) != int(quantity):
            raise InventoryError("inventory.error.fractional",
                                 "{kind} is counted in whole {unit}: {qty} is not whole",
                                 kind=kind["name"], unit=kind["unit"], qty=quantity)
        return float(quantity)

    def _publish(self, topic: str, payload: dict) -> None:
        if self.hub is not None:
            self.hub.publish(topic, [payload])


def _opt_int(value) -> int | None:
    """An id as int, None for None/''; a non-numeric id becomes -1 (matches nothing)."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
