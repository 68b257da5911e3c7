"""A small, fully known inventory store for the expert and material tests (no generator)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sources.store.store import Store

COUNTIES = pd.DataFrame({
    "county_code": ["370102", "370103", "370202", "370203"],
    "name": ["历下区", "市中区", "市南区", "市北区"],
    "city": ["济南市", "济南市", "青岛市", "青岛市"],
    "city_code": ["370100", "370100", "370200", "370200"],
    "lon": [117.08, 116.99, 120.39, 120.37],
    "lat": [36.67, 36.65, 36.07, 36.09],
    "area_km2": [100.0, 280.0, 30.0, 60.0],
    "population": [800000, 900000, 600000, 1000000],
})

TAGS = pd.DataFrame({
    "tag": ["危化品", "矿山", "防汛", "地质灾害", "消防救援", "综合"],
    "type": ["safety", "safety", "natural", "natural", "rescue", "general"],
})

ENTERPRISES = pd.DataFrame({
    "enterprise_id": [1, 2, 3],
    "name": ["齐鲁化工有限公司", "鲁中矿业集团", "青岛港务公司"],
    "industry": ["hazchem", "mining", "port"],
    "size": ["large", "large", "medium"],
    "county_code": ["370102", "370103", "370202"],
    "lon": [117.1, 117.0, 120.4], "lat": [36.7, 36.6, 36.1],
    "risk_level": ["red", "orange", "yellow"],
})


def experts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 experts: 1 and 2 work for enterprise 1 (by id), 3 by employer name only."""
    rows, links = [], []
    types = ["safety", "natural", "rescue", "general"]
    for i in range(1, 31):
        county = COUNTIES.iloc[i % 4]
        employer, employer_id = f"应急研究院{i % 5}", None
        if i in (1, 2):
            employer, employer_id = ENTERPRISES.name[0], 1
        if i == 3:
            employer = ENTERPRISES.name[0]
        rows.append({
            "expert_id": i, "name": f"专家{i:02d}", "type": types[i % 4],
            "title": "高级工程师", "employer": employer, "employer_enterprise_id": employer_id,
            "county_code": county.county_code, "lon": county.lon + i * 0.001,
            "lat": county.lat, "phone": f"1380000{i:04d}", "email": None,
            "available": i % 10 != 0, "rating": 3.0 + (i % 5) * 0.4})
        tags = ["危化品"] if i <= 12 else ["防汛"]
        if i % 3 == 0:
            tags.append("综合")
        if i % 4 == 0:
            tags.append("矿山")
        links += [{"expert_id": i, "tag": t} for t in tags]
    return pd.DataFrame(rows), pd.DataFrame(links)


WAREHOUSES = pd.DataFrame({
    "warehouse_id": [1, 2, 3, 4],
    "name": ["省级储备库", "济南市储备库", "青岛市储备库", "<b>市北</b>储备点"],
    "level": ["province", "city", "city", "county"],
    "owner_unit": ["省应急厅", "济南市应急局", "青岛市应急局", "市北区应急局"],
    "county_code": ["370102", "370103", "370202", "370203"],
    "lon": [117.05, 116.98, 120.38, 120.36], "lat": [36.66, 36.64, 36.08, 36.10],
})

KINDS = pd.DataFrame({
    "kind_id": [1, 2, 3, 4],
    "name": ["帐篷", "抽水泵", "编织袋", "砂石"],
    "category": ["living", "flood", "flood", "flood"],
    "unit": ["顶", "台", "条", "吨"],
    "countable": [True, True, True, False],
})

STOCK = pd.DataFrame({
    "warehouse_id": [1, 1, 1, 2, 2, 3, 3, 4],
    "kind_id": [1, 2, 4, 1, 3, 1, 2, 1],
    "quantity": [100.0, 10.0, 50.5, 40.0, 5000.0, 30.0, 2.0, 5.0],
    "min_quantity": [50.0, 5.0, 20.0, 50.0, 1000.0, 10.0, 5.0, 1.0],
})


def square(lon: float, lat: float, d: float = 0.1) -> str:
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d],
            [lon - d, lat - d]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def build_inventory_store(path: Path) -> Store:
    """A writable store at ``path`` holding the registries above."""
    store = Store(path)
    exp, links = experts()
    stock = STOCK.assign(initial_quantity=STOCK.quantity)
    bounds = pd.DataFrame({
        "code": COUNTIES.county_code, "level": "county", "name": COUNTIES.name,
        "parent_code": COUNTIES.city_code,
        "geojson": [square(x, y) for x, y in zip(COUNTIES.lon, COUNTIES.lat, strict=True)]})
    with store.transaction() as cur:
        for table, df in (("counties", COUNTIES), ("expert_tags", TAGS),
                          ("enterprises", ENTERPRISES), ("experts", exp),
                          ("expert_tag_links", links), ("warehouses", WAREHOUSES),
                          ("material_kinds", KINDS), ("stock", stock), ("boundaries", bounds)):
            store.insert(table, df, cur=cur)
    return store
