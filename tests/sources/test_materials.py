"""The material inventory: stock, find supply, dispatch and the ledger invariant."""
from __future__ import annotations

import io
import random
import threading

import pandas as pd
import pytest

from sources.hub import Hub
from sources.inventory.common import InventoryError
from sources.inventory.materials import MaterialSource

from .inventory_fixtures import build_inventory_store

MINE = ("stock", "dispatches", "stock_ledger")


@pytest.fixture
def inv_store(tmp_path):
    s = build_inventory_store(tmp_path / "inventory.duckdb")
    yield s
    s.close()


@pytest.fixture
def src(inv_store):
    return MaterialSource(store=inv_store, hub=Hub())


def snapshot(store) -> dict[str, str]:
    out = {}
    for t in MINE:
        df = store.df(f'SELECT * FROM "{t}"').astype(str)
        out[t] = df.sort_values(list(df.columns)).to_csv(index=False)
    return out


def assert_ledger_holds(src, store):
    assert src.ledger_mismatches().empty
    df = store.df("SELECT s.quantity, s.initial_quantity + coalesce((SELECT sum(delta) FROM "
                  "stock_ledger l WHERE l.warehouse_id = s.warehouse_id AND l.kind_id = "
                  "s.kind_id), 0) AS expected FROM stock s")
    assert ((df.quantity - df.expected).abs() < 1e-9).all()
    assert (df.quantity >= 0).all()


# ---------------------------------------------------------------------- stock
def test_stock_shortages_and_totals(src):
    stock = src.stock()
    assert len(stock) == 8
    short = src.stock(shortages_only=True)
    assert set(zip(short.warehouse_id, short.kind_id, strict=True)) == {(2, 1), (3, 2)}
    assert stock.shortage.iloc[:2].all()  # shortages first
    assert short.set_index("warehouse_id").gap[2] == 10
    totals = src.totals_by_category().set_index(["category", "unit"])
    assert totals.quantity["living", "顶"] == 175 and totals.shortages["living", "顶"] == 1
    wh = src.warehouses(kind_id=1).set_index("warehouse_id")
    assert wh.quantity.to_dict() == {1: 100, 2: 40, 3: 30, 4: 5}
    assert len(src.county_outlines()) == 4


# ---------------------------------------------------------------------- find supply
def test_find_supply_nearest_first_and_greedy_plan(src):
    r = src.find_supply(1, 150, county="370202")  # 青岛市南
    c = r["candidates"]
    assert list(c.warehouse_id) == [3, 4, 1, 2]
    assert c.distance_km.is_monotonic_increasing
    assert list(r["plan"].allocate) == [30, 5, 100, 15] and r["enough"]
    small = src.find_supply(1, 20, lon=117.0, lat=36.65)
    assert list(small["plan"].warehouse_id) == [2] and small["planned"] == 20
    too_much = src.find_supply(1, 1000, county="370102")
    assert not too_much["enough"] and too_much["planned"] == 175


@pytest.mark.parametrize("args, key", [
    ((1, 0), "bad_quantity"), ((1, -2), "bad_quantity"), ((1, 2.5), "fractional"),
    ((99, 1), "unknown_kind"), ((1, float("inf")), "bad_quantity")])
def test_find_supply_bad_input(src, args, key):
    with pytest.raises(InventoryError) as err:
        src.find_supply(*args, county="370102")
    assert err.value.key == f"inventory.error.{key}"
    with pytest.raises(InventoryError, match="unknown county"):
        src.find_supply(1, 1, county="999999")


def test_bulk_kinds_take_fractions(src):
    r = src.find_supply(4, 10.25, county="370102")
    assert r["planned"] == 10.25


# ---------------------------------------------------------------------- dispatch
def test_dispatch_from_request_to_receipt(src, inv_store):
    sub = src.hub.subscribe(["stock", "dispatch"])
    d = src.request_dispatch(kind_id=2, quantity=4, from_warehouse_id=1, to_warehouse_id=2,
                             requester="值班员甲")
    assert src.dispatches().set_index("dispatch_id").status[d] == "requested"
    assert src.movements().empty  # no stock moves before shipping
    src.approve(d, actor="科长乙")
    left = src.ship(d, actor="库管丙")
    assert left == 6
    src.receive(d, actor="库管丁")
    row = src.dispatches().set_index("dispatch_id").loc[d]
    assert row.status == "received" and row.approved_by == "科长乙"
    assert row.shipped_by == "库管丙" and row.received_by == "库管丁"
    # the destination had no pumps: a new stock row, ledgered
    pumps = src.stock(kind_id=2).set_index("warehouse_id").quantity
    assert pumps[1] == 6 and pumps[2] == 4
    moves = src.movements()
    assert list(moves.delta) == [4, -4] and set(moves.dispatch_id) == {d}
    assert list(moves.actor) == ["库管丁", "库管丙"]
    assert_ledger_holds(src, inv_store)
    messages, _ = sub.drain()
    assert {m.topic for m in messages} == {"stock", "dispatch"}


def test_dispatch_to_a_place_and_rejection(src, inv_store):
    d = src.request_dispatch(kind_id=3, quantity=1000, from_warehouse_id=2,
                             destination="章丘区 受灾点")
    src.approve(d)
    src.ship(d)
    src.receive(d)
    assert src.stock(kind_id=3).quantity.tolist() == [4000]
    r = src.request_dispatch(kind_id=3, quantity=10, from_warehouse_id=2, destination="x")
    src.reject(r, actor="科长", note="不需要")
    with pytest.raises(InventoryError, match="rejected"):
        src.ship(r)
    assert_ledger_holds(src, inv_store)


def test_steps_out_of_order_change_nothing(src, inv_store):
    d = src.request_dispatch(kind_id=1, quantity=5, from_warehouse_id=1, destination="x")
    before = snapshot(inv_store)
    with pytest.raises(InventoryError, match="cannot be shipped"):
        src.ship(d)
    with pytest.raises(InventoryError, match="cannot be received"):
        src.receive(d)
    with pytest.raises(InventoryError, match="unknown dispatch"):
        src.approve(12345)
    assert snapshot(inv_store) == before
    src.approve(d)
    src.ship(d)
    with pytest.raises(InventoryError, match="cannot be shipped"):
        src.ship(d)  # twice
    assert src.stock(kind_id=1, warehouse_id=1).quantity.iloc[0] == 95


@pytest.mark.parametrize("change, key", [
    ({"quantity": 0}, "bad_quantity"), ({"quantity": -3}, "bad_quantity"),
    ({"quantity": 1.5}, "fractional"), ({"quantity": "5"}, "bad_quantity"),
    ({"quantity": True}, "bad_quantity"), ({"kind_id": 42}, "unknown_kind"),
    ({"from_warehouse_id": 42}, "unknown_warehouse"), ({"to_warehouse_id": 42},
                                                       "unknown_warehouse"),
    ({"to_warehouse_id": 1}, "same_warehouse"), ({"destination": " "}, "no_destination"),
    ({"quantity": 101}, "short"), ({"kind_id": 3}, "short"),
])
def test_request_bad_input_changes_nothing(src, inv_store, change, key):
    before = snapshot(inv_store)
    args = {"kind_id": 1, "quantity": 5, "from_warehouse_id": 1, "destination": "x", **change}
    with pytest.raises(InventoryError) as err:
        src.request_dispatch(**args)
    assert err.value.key == f"inventory.error.{key}"
    assert str(err.value)
    assert snapshot(inv_store) == before


def test_two_officers_ship_the_last_units_at_once(src, inv_store):
    # warehouse 3 holds 2 pumps; two approved requests of 2 each race to ship
    a = src.request_dispatch(kind_id=2, quantity=2, from_warehouse_id=3, destination="甲")
    b = src.request_dispatch(kind_id=2, quantity=2, from_warehouse_id=3, destination="乙")
    src.approve(a)
    src.approve(b)
    start = threading.Barrier(2)
    outcome: dict[int, object] = {}

    def officer(dispatch_id):
        start.wait()
        try:
            outcome[dispatch_id] = src.ship(dispatch_id, actor=f"officer{dispatch_id}")
        except InventoryError as exc:
            outcome[dispatch_id] = exc

    threads = [threading.Thread(target=officer, args=(d,)) for d in (a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    errors = [v for v in outcome.values() if isinstance(v, InventoryError)]
    wins = [v for v in outcome.values() if not isinstance(v, InventoryError)]
    assert len(wins) == 1 and wins[0] == 0
    assert len(errors) == 1 and errors[0].key == "inventory.error.short_ship"
    assert "holds 0" in str(errors[0]) and "nothing was changed" in str(errors[0])
    status = src.dispatches().set_index("dispatch_id").status
    assert sorted([status[a], status[b]]) == ["approved", "shipped"]  # the loser can retry later
    assert src.stock(kind_id=2, warehouse_id=3).quantity.iloc[0] == 0
    assert len(src.movements()) == 1
    assert_ledger_holds(src, inv_store)


@pytest.mark.slow
def test_ledger_invariant_after_many_random_operations(src, inv_store):
    """Four officers act at random at once; stock always equals initial + ledger."""
    kinds = src.kinds().set_index("kind_id")
    failures: list[BaseException] = []
    refused = {"n": 0}

    def officer(seed: int):
        rng = random.Random(seed)
        try:
            for _ in range(60):
                op = rng.random()
                kind = int(rng.choice(kinds.index))
                wh = rng.randint(1, 4)
                qty = rng.randint(1, 30) if kinds.countable[kind] else round(rng.uniform(.1, 9), 2)
                try:
                    if op < 0.35:
                        to = rng.choice([None, rng.randint(1, 4)])
                        d = src.request_dispatch(kind_id=kind, quantity=qty, from_warehouse_id=wh,
                                                 to_warehouse_id=to if to != wh else None,
                                                 destination="现场", requester=f"o{seed}")
                        src.approve(d, actor=f"o{seed}")
                        src.ship(d, actor=f"o{seed}")
                        if rng.random() < 0.8:
                            src.receive(d, actor=f"o{seed}")
                    elif op < 0.6:
                        pending = src.dispatches("approved")
                        if len(pending):
                            src.ship(int(rng.choice(pending.dispatch_id)), actor=f"o{seed}")
                    elif op < 0.75:
                        shipped = src.dispatches("shipped")
                        if len(shipped):
                            src.receive(int(rng.choice(shipped.dispatch_id)), actor=f"o{seed}")
                    else:
                        sign = rng.choice([-1, 1])
                        src.adjust(warehouse_id=wh, kind_id=kind, delta=sign * qty,
                                   actor=f"o{seed}")
                except InventoryError:
                    refused["n"] += 1
        except BaseException as exc:  # surface in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=officer, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not failures, failures
    assert len(src.movements()) > 40 and refused["n"] > 0
    assert_ledger_holds(src, inv_store)
    # every shipped dispatch left once, every received one arrived once
    moves = src.movements()
    per = moves.groupby(["dispatch_id", "reason"]).delta.agg(["count", "sum"])
    assert (per["count"] == 1).all()
    d = src.dispatches().set_index("dispatch_id")
    shipped = d[d.status.isin(["shipped", "received"])]
    ship_sums = per.xs("ship", level="reason")["sum"]
    assert set(ship_sums.index) == set(shipped.index)
    assert (ship_sums + shipped.quantity.loc[ship_sums.index]).abs().max() < 1e-9


def test_exports(src):
    d = src.request_dispatch(kind_id=1, quantity=5, from_warehouse_id=1, destination="x")
    src.approve(d)
    src.ship(d)
    stock_csv = src.export("stock").decode("utf-8-sig")
    assert stock_csv.splitlines()[0].startswith("warehouse_id,warehouse")
    assert "<b>市北</b>储备点" in stock_csv
    moves = pd.read_csv(io.BytesIO(src.export("movements")))
    assert list(moves.delta) == [-5]
    book = pd.read_excel(io.BytesIO(src.export(fmt="xlsx")), sheet_name=None)
    assert set(book) == {"stock", "movements", "dispatches"}
    assert len(book["stock"]) == 8 and len(book["dispatches"]) == 1
