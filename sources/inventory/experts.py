"""The expert inventory (应急专家库): search, recommendation, a fair and audited random draw,
rating after the work and fee statements.

Every write runs in one ``store.transaction()``; a refused action raises
:class:`~sources.inventory.common.InventoryError` before anything is written.
"""
from __future__ import annotations

import json
import random
import secrets
from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import param

from sources.base import Source, query
from sources.geo import haversine_km
from sources.inventory.common import (
    InventoryError,
    actor_name,
    county_point,
    next_id,
    utc_now,
)
from sources.inventory.expert_fees import ExpertAfterCare

EXPERT_TYPES = ("safety", "natural", "rescue", "general")

# The qualified pool of a draw: available experts matching the criteria, minus anyone tied to
# the enterprise involved, anyone drawn in the last K days and anyone already on the task.
POOL_SQL = """
SELECT e.expert_id
FROM experts e
WHERE e.available
  AND ($type IS NULL OR e.type = $type)
  AND ($county IS NULL OR e.county_code = $county)
  AND (len($tags::VARCHAR[]) = 0 OR e.expert_id IN (
        SELECT l.expert_id FROM expert_tag_links l
        GROUP BY l.expert_id
        HAVING CASE WHEN $match_all THEN list_has_all(list(l.tag), $tags::VARCHAR[])
                    ELSE list_has_any(list(l.tag), $tags::VARCHAR[]) END))
  AND NOT coalesce(e.employer_enterprise_id = $enterprise_id, FALSE)
  AND NOT coalesce(e.employer = (SELECT name FROM enterprises
                                  WHERE enterprise_id = $enterprise_id), FALSE)
  AND e.expert_id NOT IN (SELECT expert_id FROM expert_draw_members WHERE drawn_at >= $since)
  AND e.expert_id NOT IN (SELECT expert_id FROM expert_draw_members WHERE task_id = $task_id)
ORDER BY e.expert_id
"""

SEARCH_SQL = """
WITH t AS (SELECT expert_id, list(tag ORDER BY tag) AS tags FROM expert_tag_links GROUP BY 1)
SELECT e.expert_id, e.name, e.type, e.title, e.employer, e.employer_enterprise_id,
       e.county_code, c.name AS county, e.lon, e.lat, e.available, e.rating, e.phone,
       coalesce(t.tags, []::VARCHAR[]) AS tags
FROM experts e
LEFT JOIN t USING (expert_id)
LEFT JOIN counties c USING (county_code)
WHERE ($name IS NULL OR contains(lower(e.name), lower($name))
       OR contains(lower(coalesce(e.employer, '')), lower($name)))
  AND (len($tags::VARCHAR[]) = 0 OR list_has_all(coalesce(t.tags, []::VARCHAR[]), $tags::VARCHAR[]))
  AND ($type IS NULL OR e.type = $type)
  AND ($county IS NULL OR e.county_code = $county)
  AND ($available IS NULL OR e.available = $available)
ORDER BY e.rating DESC NULLS LAST, e.expert_id
"""



class ExpertSource(ExpertAfterCare, Source):
    """Queries and officer actions over the expert registry.

    Build one on the console's store (``ExpertSource(store=console.store)``) or on a file
    in a notebook (``ExpertSource.from_path('var/console.duckdb')``).
    """

    source_type: ClassVar[str] = "experts"

    prior_weight = param.Integer(default=4, bounds=(0, None), doc=(
        "How many past ratings the registry's own rating stands for when a new rating is "
        "averaged in."))
    workload_days = param.Integer(default=90, bounds=(1, None), doc=(
        "Window (days) of the recent workload used by the recommendation."))
    distance_scale_km = param.Number(default=50.0, bounds=(1, None), doc=(
        "Distance at which the distance score halves."))
    weights = param.Dict(default={"tags": 0.5, "distance": 0.2, "rating": 0.2, "workload": 0.1},
                         doc="Weights of the recommendation's score components.")

    # ------------------------------------------------------------------ registry
    def tags(self) -> pd.DataFrame:
        """Every tag with its type and how many experts carry it."""
        return self.store.df(
            "SELECT t.tag, t.type, count(l.expert_id) AS experts FROM expert_tags t "
            "LEFT JOIN expert_tag_links l USING (tag) GROUP BY ALL ORDER BY t.type, t.tag"
        )

    def find_enterprises(self, text: str, limit: int = 30) -> pd.DataFrame:
        """Enterprises whose name contains ``text`` (or whose id is ``text``), for pickers."""
        text = (text or "").strip()
        if not text:
            return pd.DataFrame({"enterprise_id": pd.Series([], dtype="int64"),
                                 "name": pd.Series([], dtype=object)})
        return self.store.df(
            "SELECT enterprise_id, name FROM enterprises WHERE contains(name, $text) "
            "OR CAST(enterprise_id AS VARCHAR) = $text ORDER BY enterprise_id LIMIT $limit",
            {"text": text, "limit": int(limit)})

    @query()
    def registry(self) -> pd.DataFrame:
        """Every expert with its tags (list) and county name, loaded once per source.

        The registry is static while the console runs except for ratings, which
        :meth:`rate` refreshes; searching it in memory keeps a search at a few ms.
        """
        df = self.store.df(SEARCH_SQL, {"name": None, "tags": [], "type": None,
                                        "county": None, "available": None})
        df["tags"] = df["tags"].map(list)
        df["_tagset"] = df["tags"].map(frozenset)
        df["_name"] = df["name"].str.lower()
        df["_employer"] = df["employer"].fillna("").str.lower()
        return df

    def search(self, *, name: str | None = None, tags: list[str] | tuple = (),
               type: str | None = None, county: str | None = None,
               available: bool | None = None) -> pd.DataFrame:
        """Experts matching every given filter (name or employer contains ``name``, all ``tags``).

        Returns one row per expert with its tags as a list, best rated first.
        """
        df = self.registry()
        mask = np.ones(len(df), dtype=bool)
        text = (name or "").strip().lower()
        if text:
            mask &= (df["_name"].str.contains(text, regex=False)
                     | df["_employer"].str.contains(text, regex=False)).to_numpy()
        if tags:
            need = frozenset(tags)
            mask &= df["_tagset"].map(need.issubset).to_numpy(dtype=bool)
        if type:
            mask &= (df["type"] == type).to_numpy()
        if county:
            mask &= (df["county_code"] == county).to_numpy()
        if available is not None:
            mask &= (df["available"] == bool(available)).to_numpy()
        return df.loc[mask, [c for c in df.columns if not c.startswith("_")]].reset_index(
            drop=True)

    @staticmethod
    def facets(found: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Counts of a search result by type, county, tag and availability."""
        def count(series: pd.Series, name: str) -> pd.DataFrame:
            vc = series.value_counts(dropna=False)
            return pd.DataFrame({name: vc.index, "count": vc.to_numpy()})

        tags = found["tags"].explode().dropna() if len(found) else pd.Series([], dtype=object)
        return {
            "type": count(found["type"], "type"),
            "county": count(found["county"].fillna(found["county_code"]), "county"),
            "tag": count(tags, "tag"),
            "available": count(found["available"], "available"),
        }

    def expert_card(self, expert_id: int) -> dict[str, Any]:
        """One expert's record, tags, tasks and ratings (raises if the id is unknown)."""
        rows = self.store.df(SEARCH_SQL.replace("WHERE (", "WHERE e.expert_id = $id AND ("),
                             {"id": int(expert_id), "name": None, "tags": [], "type": None,
                              "county": None, "available": None})
        if rows.empty:
            raise InventoryError("inventory.error.unknown_expert", "unknown expert: {id}",
                                 id=expert_id)
        card = rows.iloc[0].to_dict()
        card["tags"] = list(card["tags"])
        card["tasks"] = self.store.df(
            "SELECT t.task_id, t.title, m.drawn_at, m.status FROM expert_draw_members m "
            "JOIN expert_tasks t USING (task_id) WHERE m.expert_id = ? ORDER BY m.drawn_at DESC",
            [int(expert_id)])
        card["ratings"] = int(self.store.scalar(
            "SELECT count(*) FROM expert_ratings WHERE expert_id = ?", [int(expert_id)]))
        return card

    # ------------------------------------------------------------------ recommendation
    def recommend(self, tags: list[str] | tuple, *, lon: float | None = None,
                  lat: float | None = None, county: str | None = None,
                  enterprise_id: int | None = None, limit: int = 20,
                  now: datetime | None = None) -> pd.DataFrame:
        """Available experts for a need, best first, with every component of their score.

        Components (each 0..1): ``tag_score`` share of the needed tags the expert has,
        ``distance_score`` 1 / (1 + km / distance_scale_km) (0.5 without a location),
        ``rating_score`` (rating - 1) / 4, ``workload_score`` 1 / (1 + tasks in the last
        ``workload_days``). ``score`` is their weighted sum. Experts tied to
        ``enterprise_id`` are left out.
        """
        tags = self._check_tags(tags, required=True)
        if county and (lon is None or lat is None):
            lon, lat = county_point(self.store, county)
        if enterprise_id is not None:
            self._check_enterprise(enterprise_id)
        since = (now or utc_now()) - timedelta(days=self.workload_days)
        df = self.registry()
        need = frozenset(tags)
        matched = df["_tagset"].map(lambda ts: len(ts & need)).to_numpy()
        keep = (matched > 0) & df["available"].to_numpy(dtype=bool)
        if enterprise_id is not None:
            name = self.store.scalar("SELECT name FROM enterprises WHERE enterprise_id = ?",
                                     [int(enterprise_id)])
            keep &= ~((df["employer_enterprise_id"] == int(enterprise_id))
                      | (df["employer"] == name)).to_numpy(dtype=bool)
        df = df.loc[keep, ["expert_id", "name", "type", "title", "employer", "county_code",
                           "lon", "lat", "rating", "tags"]].copy()
        df["matched"] = matched[keep]
        busy = self.store.df(
            "SELECT expert_id, count(*) AS workload FROM expert_draw_members "
            "WHERE drawn_at >= ? AND status <> 'declined' GROUP BY 1", [since])
        df["workload"] = df["expert_id"].map(
            dict(zip(busy["expert_id"], busy["workload"], strict=True))).fillna(0).astype("int64")
        w = self.weights
        df["tag_score"] = df["matched"] / len(tags)
        if lon is not None and lat is not None:
            df["distance_km"] = haversine_km(float(lon), float(lat), df["lon"], df["lat"])
            df["distance_score"] = 1.0 / (1.0 + df["distance_km"] / self.distance_scale_km)
        else:
            df["distance_km"] = np.nan
            df["distance_score"] = 0.5
        df["rating_score"] = ((df["rating"].fillna(3.0) - 1.0) / 4.0).clip(0, 1)
        df["workload_score"] = 1.0 / (1.0 + df["workload"])
        df["score"] = (w["tags"] * df["tag_score"] + w["distance"] * df["distance_score"]
                       + w["rating"] * df["rating_score"] + w["workload"] * df["workload_score"])
        df = df.sort_values(["score", "expert_id"], ascending=[False, True]).head(int(limit))
        return df.drop(columns=["lon", "lat"]).reset_index(drop=True)

    # ------------------------------------------------------------------ draw
    def draw(self, *, n: int, title: str, tags: list[str] | tuple = (), match_all: bool = False,
             type: str | None = None, county: str | None = None,
             enterprise_id: int | None = None, exclude_days: int = 30,
             lon: float | None = None, lat: float | None = None,
             actor: str | None = None, seed: int | None = None,
             now: datetime | None = None) -> dict[str, Any]:
        """一键抽取: draw ``n`` experts at random from the qualified pool, for a new task.

        The pool is the available experts with any (or, with ``match_all``, all) of ``tags``,
        of ``type`` and in ``county`` when given, minus anyone employed by or tied to
        ``enterprise_id`` (its id or its name as employer) and anyone drawn in the last
        ``exclude_days`` days. The result is ``random.Random(seed).sample(pool, n)`` on the
        ascending pool; seed, pool, criteria, actor and time are recorded.

        Returns a dict: task_id, draw_id, seed, pool_size, result (expert ids).
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
            raise InventoryError("inventory.error.bad_n",
                                 "the number of experts must be a whole number above 0")
        if not (title or "").strip():
            raise InventoryError("inventory.error.no_title", "give the task a title")
        if isinstance(exclude_days, bool) or not isinstance(exclude_days, int | np.integer) \
                or exclude_days < 0:
            raise InventoryError("inventory.error.bad_days",
                                 "the exclusion window must be a whole number of days, 0 or more")
        criteria = {"tags": self._check_tags(tags), "match_all": bool(match_all),
                    "type": self._check_type(type), "county": county or None,
                    "enterprise_id": self._check_enterprise(enterprise_id),
                    "exclude_days": int(exclude_days), "n": int(n)}
        now = now or utc_now()
        actor = actor_name(actor)
        with self.store.transaction() as cur:
            pool = self._pool(cur, criteria, now, task_id=None)
            if len(pool) < n:
                raise InventoryError(
                    "inventory.error.pool_too_small",
                    "only {pool} experts qualify, fewer than the {n} asked for",
                    pool=len(pool), n=int(n))
            task_id = next_id(cur)
            cur.execute(
                "INSERT INTO expert_tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [task_id, title.strip(), criteria["enterprise_id"], lon, lat, actor, now])
            draw = self._record_draw(cur, task_id=task_id, parent=None, replaces=None,
                                     criteria=criteria, pool=pool, n=int(n), seed=seed,
                                     actor=actor, now=now)
        return {"task_id": task_id, **draw}

    def redraw(self, task_id: int, expert_id: int, *, actor: str | None = None,
               reason: str = "", seed: int | None = None,
               now: datetime | None = None) -> dict[str, Any]:
        """Replace an expert who declines: mark them declined and draw one more, recorded.

        The replacement comes from the task's criteria, recomputed now (so anyone drawn
        since, and everyone already on the task, is out). Nothing changes when no one
        qualifies.
        """
        now = now or utc_now()
        actor = actor_name(actor)
        with self.store.transaction() as cur:
            first = cur.execute(
                "SELECT draw_id, criteria FROM expert_draws WHERE task_id = ? "
                "ORDER BY draw_id LIMIT 1", [int(task_id)]).fetchall()
            if not first:
                raise InventoryError("inventory.error.unknown_task", "unknown task: {id}",
                                     id=task_id)
            member = cur.execute(
                "SELECT count(*) FROM expert_draw_members WHERE task_id = ? AND expert_id = ? "
                "AND status = 'drawn'", [int(task_id), int(expert_id)]).fetchone()[0]
            if not member:
                raise InventoryError("inventory.error.not_member",
                                     "expert {expert} is not on task {task}",
                                     expert=expert_id, task=task_id)
            criteria = {**json.loads(first[0][1]), "n": 1}
            pool = self._pool(cur, criteria, now, task_id=int(task_id))
            if not pool:
                raise InventoryError("inventory.error.pool_too_small",
                                     "only {pool} experts qualify, fewer than the {n} asked for",
                                     pool=0, n=1)
            cur.execute(
                "UPDATE expert_draw_members SET status = 'declined', declined_at = ?, note = ? "
                "WHERE task_id = ? AND expert_id = ? AND status = 'drawn'",
                [now, reason or None, int(task_id), int(expert_id)])
            parent = cur.execute("SELECT max(draw_id) FROM expert_draws WHERE task_id = ?", [int(task_id)]).fetchone()[0]
            draw = self._record_draw(cur, task_id=int(task_id), parent=parent,
                                     replaces=int(expert_id), criteria=criteria, pool=pool,
                                     n=1, seed=seed, actor=actor, now=now)
        return {"task_id": int(task_id), **draw}

    def replay(self, draw_id: int) -> list[int]:
        """Re-run a recorded draw from its seed and pool (equals its recorded result)."""
        t = self.store.arrow("SELECT seed, pool, n FROM expert_draws WHERE draw_id = ?",
                             [int(draw_id)])
        if t.num_rows == 0:
            raise InventoryError("inventory.error.unknown_draw", "unknown draw: {id}", id=draw_id)
        row = t.to_pylist()[0]
        return random.Random(row["seed"]).sample(list(row["pool"]), row["n"])

    def draws(self, task_id: int | None = None) -> pd.DataFrame:
        """The audit log of draws: who, when, criteria, seed, pool size and result."""
        return self.store.df(
            "SELECT d.draw_id, d.task_id, t.title, d.parent_draw_id, d.replaces_expert_id, "
            "d.drawn_by, d.drawn_at, d.criteria, d.seed, d.pool_size, d.n, d.result, d.pool "
            "FROM expert_draws d JOIN expert_tasks t USING (task_id) "
            "WHERE ($task IS NULL OR d.task_id = $task) ORDER BY d.draw_id DESC",
            {"task": None if task_id is None else int(task_id)})

    def tasks(self, limit: int = 200) -> pd.DataFrame:
        """Tasks, newest first, with how many experts are on each and the county of the
        enterprise involved (whose officers act on the task)."""
        return self.store.df(
            "SELECT t.task_id, t.title, t.enterprise_id, e.county_code, t.created_by, "
            "t.created_at, count(m.expert_id) FILTER (WHERE m.status = 'drawn') AS experts "
            "FROM expert_tasks t LEFT JOIN expert_draw_members m USING (task_id) "
            "LEFT JOIN enterprises e ON e.enterprise_id = t.enterprise_id "
            "GROUP BY ALL ORDER BY t.task_id DESC LIMIT ?", [int(limit)])

    def members(self, task_id: int) -> pd.DataFrame:
        """The experts of a task (drawn and declined) with their contact details."""
        return self.store.df(
            "SELECT m.draw_id, m.expert_id, e.name, e.type, e.title, e.employer, e.phone, "
            "m.status, m.drawn_at, m.declined_at, m.note "
            "FROM expert_draw_members m JOIN experts e USING (expert_id) "
            "WHERE m.task_id = ? ORDER BY m.drawn_at, m.draw_id, m.expert_id", [int(task_id)])

    def _pool(self, cur, criteria: dict, now: datetime, task_id: int | None) -> list[int]:
        params = {"tags": criteria["tags"], "match_all": criteria["match_all"],
                  "type": criteria["type"], "county": criteria["county"],
                  "enterprise_id": criteria["enterprise_id"],
                  "since": now - timedelta(days=criteria["exclude_days"]),
                  "task_id": task_id}
        return [int(r[0]) for r in cur.execute(POOL_SQL, params).fetchall()]

    def _record_draw(self, cur, *, task_id, parent, replaces, criteria, pool, n, seed, actor,
                     now) -> dict[str, Any]:
        seed = secrets.randbits(62) if seed is None else int(seed)
        result = random.Random(seed).sample(pool, n)
        draw_id = next_id(cur)
        cur.execute(
            "INSERT INTO expert_draws VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [draw_id, task_id, parent, replaces, actor, now,
             json.dumps(criteria, ensure_ascii=False), seed,
             pool, len(pool), n, result])
        members = pd.DataFrame({
            "draw_id": draw_id, "task_id": task_id, "expert_id": result,
            "drawn_at": [now] * len(result), "status": "drawn"})
        self.store.insert("expert_draw_members", members, cur=cur)
        return {"draw_id": draw_id, "seed": seed, "pool_size": len(pool), "result": result}

    def _check_member(self, cur, task_id, expert_id) -> None:
        ok = cur.execute("SELECT count(*) FROM expert_draw_members WHERE task_id = ? AND "
                     "expert_id = ? AND status = 'drawn'", [int(task_id), int(expert_id)]).fetchone()[0]
        if not ok:
            raise InventoryError("inventory.error.not_member",
                                 "expert {expert} is not on task {task}",
                                 expert=expert_id, task=task_id)

    def _check_tags(self, tags, required: bool = False) -> list[str]:
        tags = sorted({str(t) for t in (tags or [])})
        if required and not tags:
            raise InventoryError("inventory.error.no_tags", "choose at least one tag")
        if tags:
            known = set(self.store.arrow(
                "SELECT tag FROM expert_tags WHERE list_contains(?::VARCHAR[], tag)",
                [tags]).column(0).to_pylist())
            unknown = [t for t in tags if t not in known]
            if unknown:
                raise InventoryError("inventory.error.unknown_tag", "unknown tag: {tag}",
                                     tag=", ".join(unknown))
        return tags

    @staticmethod
    def _check_type(type: str | None) -> str | None:
        if type and type not in EXPERT_TYPES:
            raise InventoryError("inventory.error.unknown_type", "unknown expert type: {type}",
                                 type=type)
        return type or None

    def _check_enterprise(self, enterprise_id) -> int | None:
        if enterprise_id is None or enterprise_id == "":
            return None
        try:
            eid = int(enterprise_id)
        except (TypeError, ValueError):
            eid = None
        if eid is None or not self.store.scalar(
                "SELECT count(*) FROM enterprises WHERE enterprise_id = ?", [eid]):
            raise InventoryError("inventory.error.unknown_enterprise",
                                 "unknown enterprise: {id}", id=enterprise_id)
        return eid
