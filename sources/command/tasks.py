"""One-key dispatch (一键调度) and tasks: teams, materials, experts, shelters.

Every dispatch becomes a task (``command_tasks``) whose state moves through
``assigned -> en_route -> on_scene -> done`` (or ``cancelled`` from any but done); each step
is a row of ``command_task_states`` and any other step is refused.

* **Team / shelter:** committed through ``command_commitments``: slot n+1 of a resource
  can be taken once (primary key), and only when the task holding slot n has ended. Of two
  officers committing the same team at once one wins; the other is told who has it.
* **Materials:** a dispatch of the inventory's ledger (request -> approve -> ship ->
  receive; never negative, one winner). Moving the task en route approves and ships it (the
  stock leaves the warehouse), on scene receives it; cancelling rejects a request. An
  exercise's incident (``drill_id``) moves no stock: its materials task has no dispatch.
* **Experts:** the inventory's audited random draw, leaving out the enterprise involved.

The inventory's own steps commit in their own transactions inside ours, while ours holds the
store's write lock; every check that could refuse is made before the first of them, so a
refusal leaves the store unchanged.
"""
from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pandas as pd

from sources.base import query
from sources.inventory.common import actor_name

from .catalog import SUBTYPES
from .common import (
    ACTIVE_STATES,
    CHINA_TZ,
    TASK_STATES,
    TRANSITIONS,
    CommandError,
    aware,
    clean_text,
    records,
)

TASKS_SQL = """
SELECT t.task_id, t.incident_id, t.kind, t.resource_id, t.resource_name, t.quantity, t.unit,
       t.dispatch_id, t.draw_id, t.detail, t.base_lon, t.base_lat, t.owner, t.created_by,
       t.created_at, s.state, s.state_at, s.state_by,
       s.en_route_at, s.on_scene_at, s.done_at, s.cancelled_at
FROM command_tasks t
JOIN (SELECT task_id, arg_max(state, seq) AS state, max(acted_at) AS state_at,
             arg_max(actor, seq) AS state_by,
             min(acted_at) FILTER (WHERE state = 'en_route') AS en_route_at,
             min(acted_at) FILTER (WHERE state = 'on_scene') AS on_scene_at,
             min(acted_at) FILTER (WHERE state = 'done') AS done_at,
             min(acted_at) FILTER (WHERE state = 'cancelled') AS cancelled_at
      FROM command_task_states WHERE $at::TIMESTAMPTZ IS NULL OR acted_at <= $at GROUP BY 1) s
  USING (task_id)
WHERE ($incident::VARCHAR IS NULL OR t.incident_id = $incident)
  AND ($at::TIMESTAMPTZ IS NULL OR t.created_at <= $at)
ORDER BY t.task_id
"""

COMMITMENTS_SQL = """
SELECT c.resource, c.resource_id, c.incident_id, c.task_id, c.actor, c.acted_at, s.state,
       t.quantity
FROM (SELECT unnest(arg_max(c, c.slot)) FROM command_commitments c
      WHERE $resource::VARCHAR IS NULL OR c.resource = $resource
      GROUP BY c.resource, c.resource_id) c
JOIN (SELECT task_id, arg_max(state, seq) AS state FROM command_task_states GROUP BY 1) s
  USING (task_id)
JOIN command_tasks t USING (task_id)
WHERE s.state IN ('assigned', 'en_route', 'on_scene')
"""


class TaskActions:
    """Mixin of :class:`~sources.command.source.CommandSource`: dispatch and tasks."""

    # ------------------------------------------------------------------ reading
    def tasks(self, incident_id: str | None = None, at: datetime | None = None) -> pd.DataFrame:
        """Tasks (of one incident, as they stood at ``at`` if given) with their state."""
        return self.store.df(TASKS_SQL, {"incident": incident_id, "at": at})

    def commitments(self, resource: str | None = "team") -> pd.DataFrame:
        """Teams (or shelters; None: both) committed now: resource, resource_id, incident_id,
        task_id, actor, acted_at, state, quantity (a shelter's people)."""
        return self.store.df(COMMITMENTS_SQL, {"resource": resource})

    # ------------------------------------------------------------------ dispatch
    def assign_team(self, incident_id: str, team_id: int, *, user: str | None,
                    owner: str | None = None, note: str = "",
                    now: datetime | None = None) -> dict:
        """Send a rescue team; refused if it is committed to an incident now."""
        now = aware(now) if now is not None else self.now()
        team = self.store.df("SELECT team_id, name, kind, members, lon, lat FROM rescue_teams "
                             "WHERE team_id = ?", [_int(team_id)])
        if team.empty:
            raise CommandError("command.error.unknown_team", "unknown team: {id}", id=team_id)
        t = records(team)[0]
        try:
            with self.store.transaction() as cur:
                inc = self._current(cur, incident_id, open_only=True)
                task = self._new_task(cur, inc, "team", t["team_id"], t["name"], t["members"],
                                      None, {"team_kind": t["kind"]}, t["lon"], t["lat"],
                                      user, owner, now, note)
                self._take(cur, "team", t["team_id"], t["name"], task, now)
        except duckdb.Error as exc:  # the uniqueness rule fired: another desk won the slot
            raise self._taken_error("team", t["team_id"], t["name"]) from exc
        return self._task_published(task)

    def open_shelter(self, incident_id: str, shelter_id: int, *, people: int,
                     user: str | None, owner: str | None = None, note: str = "",
                     now: datetime | None = None) -> dict:
        """Open a shelter for ``people`` evacuees (at most its capacity)."""
        now = aware(now) if now is not None else self.now()
        shelter = self.store.df("SELECT shelter_id, name, capacity, lon, lat FROM shelters "
                                "WHERE shelter_id = ?", [_int(shelter_id)])
        if shelter.empty:
            raise CommandError("command.error.unknown_shelter", "unknown shelter: {id}",
                               id=shelter_id)
        s = records(shelter)[0]
        if isinstance(people, bool) or not isinstance(people, int | float) or people != people \
                or people <= 0 or float(people) != int(people):
            raise CommandError("command.error.bad_people",
                               "the number of people must be a whole number above 0")
        if people > s["capacity"]:
            raise CommandError("command.error.over_capacity",
                               "{name} holds {capacity} people, fewer than {people}",
                               name=s["name"], capacity=s["capacity"], people=int(people))
        try:
            with self.store.transaction() as cur:
                inc = self._current(cur, incident_id, open_only=True)
                task = self._new_task(cur, inc, "shelter", s["shelter_id"], s["name"],
                                      int(people), None, {"capacity": s["capacity"]},
                                      s["lon"], s["lat"], user, owner, now, note)
                self._take(cur, "shelter", s["shelter_id"], s["name"], task, now)
        except duckdb.Error as exc:
            raise self._taken_error("shelter", s["shelter_id"], s["name"]) from exc
        return self._task_published(task)

    def request_materials(self, incident_id: str, *, kind_id: int, quantity: float,
                          warehouse_id: int, user: str | None, owner: str | None = None,
                          note: str = "", now: datetime | None = None) -> dict:
        """Request materials from a warehouse to the scene through the dispatch ledger."""
        now = aware(now) if now is not None else self.now()
        with self.store.transaction() as cur:
            inc = self._current(cur, incident_id, open_only=True)
            # an exercise moves no real stock: its materials task has no ledger dispatch
            dispatch_id = None if inc.get("drill_id") else self.materials.request_dispatch(
                kind_id=kind_id, quantity=quantity, from_warehouse_id=warehouse_id,
                destination=f"{inc['title']}（{inc['incident_id']}）", requester=actor_name(user),
                note=f"incident {inc['incident_id']}", now=now)
            d = cur.execute(
                "SELECT w.name, w.lon, w.lat, k.name, k.unit FROM warehouses w, material_kinds k "
                "WHERE w.warehouse_id = ? AND k.kind_id = ?",
                [int(warehouse_id), int(kind_id)]).fetchone()
            task = self._new_task(cur, inc, "materials", int(warehouse_id), f"{d[3]} · {d[0]}",
                                  float(quantity), d[4], {"kind_id": int(kind_id),
                                                          "warehouse": d[0]},
                                  d[1], d[2], user, owner, now, note, dispatch_id=dispatch_id)
        return self._task_published(task)

    def draw_experts(self, incident_id: str, *, n: int, user: str | None,
                     tags: list[str] | None = None, type: str | None = "",
                     exclude_days: int = 30, seed: int | None = None,
                     owner: str | None = None, note: str = "",
                     now: datetime | None = None) -> dict:
        """Draw ``n`` experts for the incident (audited), leaving out its enterprise's staff.

        ``tags`` default to the incident type's; ``type`` ("" = the type's default, None =
        any).
        """
        now = aware(now) if now is not None else self.now()
        with self.store.transaction() as cur:
            inc = self._current(cur, incident_id, open_only=True)
            st = SUBTYPES[inc["subtype"]]
            known = set(self.known_tags())
            wanted = list(tags) if tags else [t for t in st.expert_tags if t in known]
            draw = self.experts.draw(
                n=n, title=f"{'【演练】' if inc.get('drill_id') else ''}{inc['title']}"
                         f"（{inc['incident_id']}）", tags=wanted,
                type=st.expert_type if type == "" else type,
                enterprise_id=inc["enterprise_id"], exclude_days=exclude_days,
                lon=inc["lon"], lat=inc["lat"], actor=actor_name(user), seed=seed, now=now)
            ids = [int(x) for x in draw["result"]]
            ex = cur.execute("SELECT list(name ORDER BY expert_id), avg(lon), avg(lat) "
                             "FROM experts WHERE list_contains(?, expert_id)", [ids]).fetchone()
            task = self._new_task(cur, inc, "experts", draw["task_id"], "、".join(ex[0]),
                                  len(ids), None, {"expert_ids": ids, "tags": wanted},
                                  ex[1], ex[2], user, owner, now, note, draw_id=draw["draw_id"])
        return self._task_published(task)

    @query(table=False)
    def known_tags(self) -> list[str]:
        """Expert tags of the registry (read once)."""
        return self.store.arrow("SELECT tag FROM expert_tags").column(0).to_pylist()

    # ------------------------------------------------------------------ state machine
    def advance_task(self, task_id: int, state: str, *, user: str | None, note: str = "",
                     now: datetime | None = None) -> dict:
        """Move a task to ``state``; any move the state machine does not allow is refused."""
        if state not in TASK_STATES:
            raise CommandError("command.error.bad_state", "unknown task state: {state}",
                               state=state)
        now = aware(now) if now is not None else self.now()
        actor = actor_name(user)
        with self.store.transaction() as cur:
            rows = cur.execute("SELECT * FROM command_tasks WHERE task_id = ?",
                               [_int(task_id)]).fetch_df()
            if rows.empty:
                raise CommandError("command.error.unknown_task", "unknown task: {id}", id=task_id)
            task = records(rows)[0]
            self._current(cur, task["incident_id"], open_only=True)
            seq, current, who = cur.execute(
                "SELECT max(seq), arg_max(state, seq), arg_max(actor, seq) "
                "FROM command_task_states WHERE task_id = ?", [task["task_id"]]).fetchone()
            if state not in TRANSITIONS[current]:
                raise CommandError("command.error.bad_transition",
                                   "task {id} is {current} ({who}): it cannot become {state}",
                                   id=task["task_id"], current=current, state=state, who=who)
            if task["kind"] == "materials" and task["dispatch_id"] is not None:
                self._ledger_step(cur, task, state, actor, now)
            cur.execute("INSERT INTO command_task_states VALUES (?, ?, ?, ?, ?, ?)",
                        [task["task_id"], seq + 1, state, clean_text(note) or None, actor, now])
        task.update(state=state, state_at=now, state_by=actor)
        self._publish_change(task["incident_id"], "task", actor, now, task_id=task["task_id"],
                             kind=task["kind"], state=state)
        return task

    def _ledger_step(self, cur, task: dict, state: str, actor: str, now: datetime) -> None:
        """The dispatch ledger's steps behind a materials task's move (checked first)."""
        did = int(task["dispatch_id"])
        d = cur.execute("SELECT status, quantity, from_warehouse_id, kind_id FROM dispatches "
                        "WHERE dispatch_id = ?", [did]).fetchone()
        status, qty, wh, kind = d
        m = self.materials
        if state == "en_route":
            if status in ("requested", "approved"):
                held = cur.execute("SELECT quantity FROM stock WHERE warehouse_id = ? AND "
                                   "kind_id = ?", [wh, kind]).fetchone()
                held = held[0] if held else 0.0
                if held < qty:  # checked before approving: a refusal changes nothing
                    raise CommandError("command.error.short",
                                       "the warehouse now holds {held:g}, fewer than {qty:g}; "
                                       "nothing was changed", held=held, qty=qty)
                if status == "requested":
                    m.approve(did, actor=actor, now=now)
                m.ship(did, actor=actor, now=now)
            elif status == "rejected":
                raise CommandError("command.error.dispatch_rejected",
                                   "dispatch {id} was rejected", id=did)
        elif state == "on_scene":
            if status == "shipped":
                m.receive(did, actor=actor, now=now)
            elif status != "received":
                raise CommandError("command.error.not_shipped", "dispatch {id} is not shipped",
                                   id=did)
        elif state == "cancelled":
            if status == "requested":
                m.reject(did, actor=actor, note="cancelled by command", now=now)
            elif status != "rejected":
                raise CommandError("command.error.cannot_cancel",
                                   "dispatch {id} is {status}: it cannot be cancelled; "
                                   "finish the task instead", id=did, status=status)

    # ------------------------------------------------------------------ helpers
    def _new_task(self, cur, inc: dict, kind: str, resource_id, name: str, quantity, unit,
                  detail: dict, lon, lat, user, owner, now, note, *, dispatch_id=None,
                  draw_id=None) -> dict:
        actor = actor_name(user)
        task_id = int(cur.execute("SELECT nextval('command_ids')").fetchone()[0])
        task = {"task_id": task_id, "incident_id": inc["incident_id"], "kind": kind,
                "resource_id": None if resource_id is None else int(resource_id),
                "resource_name": name, "quantity": quantity, "unit": unit,
                "dispatch_id": dispatch_id, "draw_id": draw_id,
                "detail": json.dumps(detail, ensure_ascii=False), "base_lon": lon,
                "base_lat": lat, "owner": clean_text(owner) or actor, "created_by": actor,
                "created_at": now}
        cur.execute(f"INSERT INTO command_tasks ({', '.join(task)}) VALUES "
                    f"({', '.join('?' * len(task))})", list(task.values()))
        cur.execute("INSERT INTO command_task_states VALUES (?, 1, 'assigned', ?, ?, ?)",
                    [task_id, clean_text(note) or None, actor, now])
        return {**task, "state": "assigned", "state_at": now, "state_by": actor}

    def _take(self, cur, resource: str, resource_id: int, name: str, task: dict, now) -> None:
        last = cur.execute(
            "SELECT c.slot, c.incident_id, c.actor, c.acted_at, (SELECT arg_max(state, seq) FROM "
            "command_task_states s WHERE s.task_id = c.task_id) FROM command_commitments c "
            "WHERE resource = ? AND resource_id = ? ORDER BY slot DESC LIMIT 1",
            [resource, int(resource_id)]).fetchall()
        if last and last[0][4] in ACTIVE_STATES:
            slot, incident, who, at, _ = last[0]
            raise _taken(resource, name, incident, who, at)
        cur.execute("INSERT INTO command_commitments VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [resource, int(resource_id), (last[0][0] if last else 0) + 1,
                     task["task_id"], task["incident_id"], task["created_by"], now])

    def _taken_error(self, resource: str, resource_id: int, name: str) -> CommandError:
        """The refusal for a commitment lost at commit time: names the winner."""
        c = self.commitments(resource)
        hit = c[c["resource_id"] == int(resource_id)]
        if hit.empty:
            return CommandError("command.error.conflict",
                                "someone changed {id} at the same moment: reload and try again",
                                id=name)
        r = records(hit)[0]
        return _taken(resource, name, r["incident_id"], r["actor"], r["acted_at"])

    def _task_published(self, task: dict) -> dict:
        self._publish_change(task["incident_id"], "task", task["created_by"],
                             task["created_at"], task_id=task["task_id"], kind=task["kind"],
                             state="assigned")
        return task


def _taken(resource: str, name: str, incident: str, who: str, at) -> CommandError:
    return CommandError(f"command.error.{resource}_taken",
                        "{name} is already committed to incident {incident} by {who} ({at})",
                        name=name, incident=incident, who=who,
                        at=at.astimezone(CHINA_TZ).strftime("%m-%d %H:%M")
                        if hasattr(at, "astimezone") else at)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
