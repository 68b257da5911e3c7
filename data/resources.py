"""Demo registry of emergency resources: warehouses, material kinds and stock, rescue teams,
shelters, and the expert inventory with its tags."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data import names
from data.synth import (
    cat,
    landline_phones,
    mobile_phones,
    person_names,
    pick,
    scatter,
    short_name,
    street_addresses,
)

WAREHOUSE_TYPES = ["应急物资", "防汛物资", "救灾物资", "森林防火物资", "危化品救援物资", "消防物资"]
_EMAIL_DOMAINS = ["sdu.edu.cn", "qust.edu.cn", "upc.edu.cn", "sdust.edu.cn", "shandong.gov.cn",
                  "163.com", "126.com", "qq.com"]


def _seat_counties(counties: pd.DataFrame) -> dict[str, str]:
    """The most populous county of each city (its urban core) by city code."""
    top = counties.sort_values("population", ascending=False).drop_duplicates("city_code")
    return dict(zip(top.city_code, top.county_code, strict=True))


def _near_seat(world, rng, codes: np.ndarray, sigma_km: float):
    """Places around the seats of the given counties, inside them."""
    c = world.counties.set_index("county_code").loc[codes]
    return scatter(world.geo, rng, codes, c.lon.to_numpy(), c.lat.to_numpy(), sigma_km,
                   fallback="uniform")


def material_kinds(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` material kinds: every base item, then its spec variants in turn."""
    bases = [(name, cat_, unit, countable) for cat_, items in names.MATERIALS.items()
             for name, unit, countable in items]
    spec_order = [rng.permutation(len(names.SPECS)) for _ in bases]
    rows = []
    j = 0
    while len(rows) < n:
        for b, (name, category, unit, countable) in enumerate(bases):
            if len(rows) >= n:
                break
            label = name if j == 0 else f"{name}（{names.SPECS[spec_order[b][j - 1]]}）"
            rows.append((len(rows) + 1, label, category, unit, countable))
        j += 1
    return pd.DataFrame(rows, columns=["kind_id", "name", "category", "unit", "countable"])


def build_resources(world, store) -> None:
    """warehouses, material_kinds, stock, rescue_teams and shelters."""
    rng = world.rng("resources")
    counties = world.counties
    by_code = counties.set_index("county_code")
    seats = _seat_counties(counties)
    cities = world.geo.cities

    # ---- warehouses: a few provincial depots, several per city, the rest in the counties.
    n = world.counts["warehouses"]
    n_prov = max(1, round(0.015 * n))
    n_city = max(len(cities) // 4, round(0.10 * n))
    level = np.array(["province"] * n_prov + ["city"] * n_city + ["county"] * (n - n_prov - n_city))
    prov_city = pick(rng, cities.city_code, n_prov,
                     p=[5 if c == "370100" else 1 for c in cities.city_code])
    city_city = cities.city_code.to_numpy()[np.arange(n_city) % len(cities)]
    county_codes = pick(rng, counties.county_code, n - n_prov - n_city,
                        p=counties.population ** 0.5)
    codes = np.concatenate([[seats[c] for c in prov_city], [seats[c] for c in city_city],
                            county_codes])
    lon, lat = _near_seat(world, rng, codes, 4.0)
    kind = pick(rng, WAREHOUSE_TYPES, n, p=[5, 3, 3, 1, 1, 1])
    city_name = by_code.loc[codes, "city"].to_numpy()
    county_name = by_code.loc[codes, "name"].to_numpy()
    wh_name = np.where(level == "province",
                       cat("山东省", kind, "储备库（", np.vectorize(short_name)(city_name), "）"),
                       np.where(level == "city", cat(city_name, kind, "储备库"),
                                cat(county_name, kind, "储备库")))
    dup = pd.Series(wh_name).groupby(wh_name).cumcount().to_numpy()
    wh_name = np.where(dup > 0, cat(wh_name, "（", (dup + 1).astype(str), "号库）"), wh_name)
    owner = np.empty(n, dtype=object)
    for lv in ("province", "city", "county"):
        idx = np.flatnonzero(level == lv)
        templates = pick(rng, names.OWNER_UNITS[lv], len(idx))
        owner[idx] = [t.format(city=ci, county=co) for t, ci, co in
                      zip(templates, city_name[idx], county_name[idx], strict=True)]
    warehouses = pd.DataFrame({
        "warehouse_id": np.arange(1, n + 1, dtype=np.int32), "name": wh_name, "level": level,
        "owner_unit": owner, "county_code": codes,
        "address": street_addresses(rng, city_name, county_name), "lon": lon, "lat": lat,
        "contact_name": person_names(rng, n),
        "contact_phone": landline_phones(rng, by_code.loc[codes, "city_code"].to_numpy()),
    })

    # ---- material kinds and stock
    kinds = material_kinds(world.counts["material_kinds"], rng)
    k = len(kinds)
    popularity = np.where(~kinds.name.str.contains("（"), 6.0, 1.0) * rng.lognormal(0, 0.5, k)
    unit_scale = kinds.unit.map({"条": 3000, "平方米": 2000, "立方米": 500, "米": 1500, "只": 3000,
                                 "副": 300, "箱": 400, "千克": 500, "件": 300, "个": 150,
                                 "顶": 80, "床": 300, "套": 30, "台": 10, "辆": 3, "艘": 4,
                                 "吨": 20}).fillna(50).to_numpy()
    per_level = {"province": (0.35, 0.55, 8.0), "city": (0.15, 0.3, 3.0),
                 "county": (0.05, 0.14, 1.0)}
    w_ids, k_ids, qty = [], [], []
    for wid, lv in zip(warehouses.warehouse_id, level, strict=True):
        lo, hi, mult = per_level[lv]
        m = max(3, min(k, int(k * rng.uniform(lo, hi))))
        chosen = np.sort(rng.choice(k, size=m, replace=False, p=popularity / popularity.sum()))
        w_ids.append(np.full(m, wid, dtype=np.int32))
        k_ids.append(chosen)
        qty.append(unit_scale[chosen] * mult * rng.lognormal(0, 0.8, m))
    k_ids = np.concatenate(k_ids)
    qty = np.concatenate(qty)
    qty *= world.counts["stock_items"] / qty.sum()
    countable = kinds.countable.to_numpy()[k_ids]
    qty = np.where(countable, np.maximum(1, np.round(qty)), np.maximum(0.1, np.round(qty, 1)))
    ratio = np.where(rng.random(len(qty)) < 0.06, rng.uniform(1.1, 2.0, len(qty)),
                     rng.uniform(0.2, 0.6, len(qty)))  # about 6 % below their minimum
    minimum = np.where(countable, np.ceil(qty * ratio), np.round(qty * ratio, 1))
    stock = pd.DataFrame({"warehouse_id": np.concatenate(w_ids),
                          "kind_id": (k_ids + 1).astype(np.int32), "quantity": qty,
                          "initial_quantity": qty, "min_quantity": minimum})

    # ---- rescue teams
    n = world.counts["rescue_teams"]
    team_kinds = list(names.TEAM_KINDS)
    tkind = pick(rng, team_kinds, n, p=list(names.TEAM_SHARE.values()))
    hill = counties.city_code.map(names.LANDSLIDE_WEIGHT).to_numpy()
    codes = np.empty(n, dtype=object)
    for t in team_kinds:
        idx = np.flatnonzero(tkind == t)
        w = counties.population.to_numpy() * (hill if t in ("mine", "forest_fire") else 1.0)
        codes[idx] = pick(rng, counties.county_code, len(idx), p=w)
    codes = codes.astype(str)
    lon, lat = _near_seat(world, rng, codes, 3.0)
    members = np.round(np.select(
        [tkind == "fire", tkind == "volunteer", tkind == "mine"],
        [rng.uniform(30, 120, n), rng.uniform(20, 300, n), rng.uniform(20, 60, n)],
        rng.uniform(15, 80, n))).astype(np.int32)
    zh = np.array([names.TEAM_KINDS[t] for t in tkind])
    team_name = cat(by_code.loc[codes, "name"].to_numpy(), zh, "队")
    dup = pd.Series(team_name).groupby(team_name).cumcount().to_numpy()
    team_name = np.where(dup > 0, cat(team_name, "第", (dup + 1).astype(str), "分队"), team_name)
    teams = pd.DataFrame({
        "team_id": np.arange(1, n + 1, dtype=np.int32), "name": team_name, "kind": tkind,
        "county_code": codes, "lon": lon, "lat": lat, "members": members,
        "leader": person_names(rng, n), "phone": mobile_phones(rng, n),
        "equipment": [names.TEAM_EQUIPMENT[t] for t in tkind],
    })

    # ---- shelters: schools, parks, squares ... in towns
    n = world.counts["shelters"]
    codes = pick(rng, counties.county_code, n, p=counties.population)
    towns = world.towns
    lon = np.empty(n)
    lat = np.empty(n)
    anchor_lon, anchor_lat = np.empty(n), np.empty(n)
    town_name = np.empty(n, dtype=object)
    for code in np.unique(codes):
        idx = np.flatnonzero(codes == code)
        cand = np.flatnonzero(towns.county_code.to_numpy() == code)
        w = np.where(towns.seat.to_numpy()[cand], 3.0, 1.0)
        which = cand[rng.choice(len(cand), size=len(idx), p=w / w.sum())]
        anchor_lon[idx] = towns.lon.to_numpy()[which]
        anchor_lat[idx] = towns.lat.to_numpy()[which]
        town_name[idx] = np.where(towns.seat.to_numpy()[which],
                                  pick(rng, names.ROAD_STEMS, len(idx)),
                                  towns.name.to_numpy()[which])
    lon, lat = scatter(world.geo, rng, codes, anchor_lon, anchor_lat, 1.5, fallback="uniform")
    skinds = list(names.SHELTER_KINDS)
    skind = pick(rng, skinds, n, p=[0.4, 0.2, 0.08, 0.12, 0.2])
    cap_range = {"school": (500, 3000), "park": (2000, 20000), "stadium": (3000, 30000),
                 "square": (1000, 10000), "community": (200, 1500)}
    capacity = np.array([rng.integers(*cap_range[s]) for s in skind], dtype=np.int32)
    label = np.array([{"school": "中学", "park": "公园", "stadium": "体育中心", "square": "广场",
                       "community": "社区服务中心"}[s] for s in skind])
    shelters = pd.DataFrame({
        "shelter_id": np.arange(1, n + 1, dtype=np.int32),
        "name": cat(np.vectorize(short_name)(by_code.loc[codes, "name"].to_numpy()),
                    town_name.astype(str), label, "应急避难场所"),
        "kind": skind, "county_code": codes, "lon": lon, "lat": lat, "capacity": capacity,
        "area_m2": np.round(capacity * rng.uniform(1.5, 3.0, n), -1),
    })

    with store.transaction() as cur:
        store.insert("warehouses", warehouses, cur=cur)
        store.insert("material_kinds", kinds, cur=cur)
        store.insert("stock", stock, cur=cur)
        store.insert("rescue_teams", teams, cur=cur)
        store.insert("shelters", shelters, cur=cur)


def build_experts(world, store) -> None:
    """expert_tags, experts (some employed by registry enterprises) and expert_tag_links."""
    rng = world.rng("experts")
    counties = world.counties
    tags = pd.DataFrame([(tag, t) for t, items in names.EXPERT_TAGS.items() for tag in items],
                        columns=["tag", "type"])
    n = world.counts["experts"]
    types = list(names.EXPERT_TAGS)
    etype = pick(rng, types, n, p=[0.45, 0.25, 0.2, 0.1])
    employer = np.array([names.EXPERT_EMPLOYERS[t][rng.integers(len(names.EXPERT_EMPLOYERS[t]))]
                         for t in etype], dtype=object)
    employer_id = pd.array([None] * n, dtype="Int32")
    # Institutions sit in Jinan and Qingdao mostly; home county near the seat.
    city_p = [6 if c == "370100" else 3 if c == "370200" else 1
              for c in world.geo.cities.city_code]
    seats = _seat_counties(counties)
    home_city = pick(rng, world.geo.cities.city_code, n, p=city_p)
    codes = np.array([seats[c] for c in home_city], dtype=object)
    lon, lat = _near_seat(world, rng, codes.astype(str), 5.0)
    # A quarter of the safety experts work for large and medium enterprises of the registry.
    ent = world.enterprises
    risky = ent[ent["size"].isin(["large", "medium"])
                & ent.industry.isin(["hazchem", "mining", "metallurgy", "nonferrous", "gas",
                                     "fireworks", "explosives"])]
    at_ent = np.flatnonzero((etype == "safety") & (rng.random(n) < 0.25))
    if len(risky) and len(at_ent):
        rows = risky.iloc[rng.choice(len(risky), size=len(at_ent), replace=False
                                     if len(risky) >= len(at_ent) else True)]
        employer[at_ent] = rows.name.to_numpy()
        employer_id[at_ent] = rows.enterprise_id.to_numpy()
        codes[at_ent] = rows.county_code.to_numpy()
        lon[at_ent], lat[at_ent] = rows.lon.to_numpy(), rows.lat.to_numpy()
    rating = np.clip(np.round(rng.normal(4.0, 0.5, n), 1), 1, 5)
    experts = pd.DataFrame({
        "expert_id": np.arange(1, n + 1, dtype=np.int32), "name": person_names(rng, n),
        "type": etype, "title": [names.EXPERT_TITLES[t][rng.integers(len(names.EXPERT_TITLES[t]))]
                  for t in etype], "employer": employer,
        "employer_enterprise_id": employer_id, "county_code": codes.astype(str),
        "lon": lon, "lat": lat, "phone": mobile_phones(rng, n),
        "email": cat("zj", np.char.zfill(np.arange(1, n + 1).astype(str), 4), "@",
                     pick(rng, _EMAIL_DOMAINS, n)),
        "available": rng.random(n) < 0.85,
        "rating": pd.array(np.where(rng.random(n) < 0.1, np.nan, rating), dtype="Float64"),
    })

    # 2–5 tags each, mostly of the expert's own type.
    links = []
    by_type = {t: tags.tag[tags.type == t].to_numpy() for t in types}
    all_tags = tags.tag.to_numpy()
    for eid, t in zip(experts.expert_id, etype, strict=True):
        m = int(rng.integers(2, 6))
        own = rng.choice(by_type[t], size=min(m, len(by_type[t])), replace=False)
        mix = np.where(rng.random(len(own)) < 0.2, rng.choice(all_tags, len(own)), own)
        for tag in dict.fromkeys(mix):
            links.append((int(eid), str(tag)))
    with store.transaction() as cur:
        store.insert("expert_tags", tags, cur=cur)
        store.insert("experts", experts, cur=cur)
        store.insert("expert_tag_links",
                     pd.DataFrame(links, columns=["expert_id", "tag"]), cur=cur)
