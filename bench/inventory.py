"""Benchmark of the expert and material inventories (server-side query time, median).

    .venv/bin/python bench/inventory.py [--db var/demo.duckdb] [--repeat 30]

Reads the demo store read-only when it exists (else builds the ``small`` scale under /tmp);
writes (draw, dispatch) run on an in-memory copy of the inventory tables. Prints a table of
medians with their ratio to a trivial query measured in the same run; the last line is one
JSON object whose ``*_ms`` keys are the medians. Target: search, recommend and find-supply
≤ 100 ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sources.inventory.experts import ExpertSource  # noqa: E402
from sources.inventory.materials import MaterialSource  # noqa: E402
from sources.store.store import Store  # noqa: E402

DEMO = ROOT / "var" / "demo.duckdb"
TABLES = ("counties", "boundaries", "enterprises", "experts", "expert_tags", "expert_tag_links",
          "warehouses", "material_kinds", "stock")


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median and max wall time of ``fn()`` in ms, after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def open_store(db: Path | None) -> tuple[Store, str]:
    if db is None and DEMO.exists():
        db = DEMO
    if db is not None:
        return Store(db, read_only=True), str(db)
    from data.generate import build

    path = Path(tempfile.mkdtemp(prefix="bench-inventory-")) / "small.duckdb"
    print(f"no demo store: building the small scale at {path} ...", flush=True)
    build(path, scale="small", seed=7, progress=False)
    return Store(path, read_only=True), f"{path} (small)"


def memory_copy(store: Store) -> Store:
    """An in-memory store holding the inventory registries of ``store`` (for writes)."""
    mem = Store(":memory:")
    with mem.transaction() as cur:
        for table in TABLES:
            mem.insert(table, store.arrow(f'SELECT * FROM "{table}"'), cur=cur)
    return mem


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, default=None, help="store to read (default: demo)")
    p.add_argument("--repeat", type=int, default=30, help="timed calls per case")
    args = p.parse_args(argv)

    store, label = open_store(args.db)
    experts = ExpertSource(store=store)
    materials = MaterialSource(store=store)
    counts = {t: store.scalar(f'SELECT count(*) FROM "{t}"') for t in
              ("experts", "expert_tag_links", "enterprises", "warehouses", "material_kinds",
               "stock")}
    tags = experts.tags()
    common = tags.sort_values("experts", ascending=False).tag.head(3).tolist()
    county = store.scalar("SELECT county_code FROM counties ORDER BY county_code LIMIT 1")
    tied = store.scalar("SELECT employer_enterprise_id FROM experts "
                        "WHERE employer_enterprise_id IS NOT NULL LIMIT 1")
    kind = int(store.scalar("SELECT kind_id FROM stock GROUP BY 1 ORDER BY count(*) DESC "
                            "LIMIT 1"))
    total = float(store.scalar("SELECT sum(quantity) FROM stock WHERE kind_id = ?", [kind]))

    cases = {
        "baseline": lambda: store.scalar("SELECT count(*) FROM experts"),
        "search": lambda: experts.search(name="张", tags=common[:1], available=True),
        "search_all": lambda: experts.search(),
        "facets": lambda: experts.facets(experts.search(tags=common[:1])),
        "recommend": lambda: experts.recommend(common, county=county, enterprise_id=tied),
        "find_supply": lambda: materials.find_supply(kind, round(total * 0.3), county=county),
        "stock_shortages": lambda: materials.stock(shortages_only=True),
    }
    results = {name: timed(fn, args.repeat) for name, fn in cases.items()}

    mem = memory_copy(store)
    wexperts, wmaterials = ExpertSource(store=mem), MaterialSource(store=mem)
    wh = int(mem.scalar("SELECT warehouse_id FROM stock WHERE kind_id = ? "
                        "ORDER BY quantity DESC LIMIT 1", [kind]))

    def draw():
        wexperts.draw(n=1, title="bench", tags=common, exclude_days=0)

    def dispatch():
        d = wmaterials.request_dispatch(kind_id=kind, quantity=1, from_warehouse_id=wh,
                                        destination="bench")
        wmaterials.approve(d)
        wmaterials.ship(d)
        wmaterials.receive(d)

    results["draw"] = timed(draw, args.repeat)
    results["dispatch_4_steps"] = timed(dispatch, args.repeat)
    assert wmaterials.ledger_mismatches().empty

    base = results["baseline"][0]
    print(f"store: {label}")
    print("rows: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    print(f"{'case':<18}{'median ms':>11}{'max ms':>10}{'× baseline':>12}")
    for name, (med, worst) in results.items():
        print(f"{name:<18}{med:>11.2f}{worst:>10.2f}{med / base:>12.1f}")
    out = {f"{name}_ms": round(med, 2) for name, (med, _) in results.items()}
    out["store"] = label
    out["target_ms"] = 100
    out["ok"] = all(out[k] <= 100 for k in ("search_ms", "recommend_ms", "find_supply_ms"))
    print(json.dumps(out, ensure_ascii=False))
    store.close()
    mem.close()
    return out


if __name__ == "__main__":
    main()
