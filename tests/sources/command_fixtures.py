"""Shared pieces of the command tests: a clock to move by hand, a source, store fingerprints."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sources.command import CommandSource
from sources.hub import Hub

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)

#: every table an action of the command may write
WRITTEN = ("command_incidents", "command_plan_items", "command_plan_ticks", "command_tasks",
           "command_task_states", "command_commitments", "command_reports", "command_notes",
           "incidents", "dispatches", "stock_ledger", "expert_tasks", "expert_draws",
           "expert_draw_members")


class Clock:
    """A clock the test moves: ``clock.step(minutes=5)``."""

    def __init__(self, t: datetime = T0):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def step(self, **delta) -> datetime:
        self.t += timedelta(**delta)
        return self.t


@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="cmd")
def cmd_fixture(store, clock) -> CommandSource:
    """A command source on the private tiny store, with a hub and a hand-moved clock."""
    return CommandSource(store=store, hub=Hub(), clock=clock)


def fingerprint(store) -> dict:
    """Row counts of every table the command writes, and the stock (to prove nothing moved)."""
    out = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in WRITTEN}
    out["stock"] = store.scalar("SELECT sum(quantity) FROM stock")
    out["seq"] = store.scalar("SELECT max(seq) FROM incidents WHERE feed = 'command'")
    return out


def hazchem_enterprise(store) -> dict:
    """A hazardous-chemical enterprise with an installation (the usual scene of a leak)."""
    return store.df(
        "SELECT e.enterprise_id, e.name, e.lon, e.lat, e.county_code FROM enterprises e "
        "WHERE e.industry = 'hazchem' AND e.enterprise_id IN (SELECT enterprise_id FROM "
        "installations) ORDER BY e.enterprise_id LIMIT 1").iloc[0].to_dict()


def open_leak(cmd, store, **kw) -> dict:
    ent = hazchem_enterprise(store)
    args = {"subtype": "hazchem_leak", "user": "wang", "enterprise_id": int(ent["enterprise_id"]),
            "deaths": 1, "injured": 2, "loss_wan": 50.0, "description": "储罐区泄漏",
            "learned_at": cmd.clock() - timedelta(minutes=5)}
    args.update(kw)
    return cmd.open_incident(**args)
