"""After an expert's work: ratings (professionalism, conduct, timeliness) and fees, with
statements per expert and period. A mixin of :class:`sources.inventory.experts.ExpertSource`.
"""
from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from sources.inventory.common import (
    InventoryError,
    actor_name,
    next_id,
    to_csv_bytes,
    to_excel_bytes,
    utc_now,
)


class ExpertAfterCare:
    """Rating and fees of the experts who worked on a task."""

    def rate(self, task_id: int, expert_id: int, *, professionalism: float, conduct: float,
             timeliness: float, actor: str | None = None,
             now: datetime | None = None) -> float:
        """Rate an expert's work on a task (1..5 each); returns the expert's new rating.

        The new rating is a running mean in which the registry's rating counts as
        ``prior_weight`` past ratings.
        """
        marks = {"professionalism": professionalism, "conduct": conduct, "timeliness": timeliness}
        for key, value in marks.items():
            if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
                    or not 1 <= float(value) <= 5:
                raise InventoryError("inventory.error.bad_mark",
                                     "{field} must be a mark from 1 to 5", field=key)
        score = float(np.mean([float(v) for v in marks.values()]))
        now = now or utc_now()
        with self.store.transaction() as cur:
            self._check_member(cur, task_id, expert_id)
            done = cur.execute("SELECT count(*) FROM expert_ratings WHERE task_id = ? AND "
                           "expert_id = ?", [int(task_id), int(expert_id)]).fetchone()[0]
            if done:
                raise InventoryError("inventory.error.already_rated",
                                     "expert {expert} is already rated for this task",
                                     expert=expert_id)
            old, count = cur.execute(
                "SELECT e.rating, (SELECT count(*) FROM expert_ratings r "
                "WHERE r.expert_id = e.expert_id) FROM experts e WHERE e.expert_id = ?", [int(expert_id)]).fetchone()
            if old is None:
                total = cur.execute("SELECT coalesce(sum(score), 0) FROM expert_ratings "
                                "WHERE expert_id = ?", [int(expert_id)]).fetchone()[0]
                new = (total + score) / (count + 1)
            else:
                weight = self.prior_weight + count
                new = (old * weight + score) / (weight + 1)
            cur.execute("INSERT INTO expert_ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [int(task_id), int(expert_id), *map(float, marks.values()), score,
                         actor_name(actor), now])
            cur.execute("UPDATE experts SET rating = ? WHERE expert_id = ?",
                        [float(new), int(expert_id)])
        self.invalidate("registry")  # the rating changed
        return float(new)

    def record_fee(self, task_id: int, expert_id: int, *, days: float, daily_rate: float,
                   travel: float = 0.0, work_date: date | None = None,
                   actor: str | None = None, now: datetime | None = None) -> int:
        """Record the fee owed to an expert for a task; returns the fee id."""
        for key, value, low in (("days", days, 0.0), ("daily_rate", daily_rate, None),
                                ("travel", travel, None)):
            ok = not isinstance(value, bool) and isinstance(value, int | float | np.number) \
                and np.isfinite(value) and (float(value) > low if low is not None
                                            else float(value) >= 0)
            if not ok:
                raise InventoryError("inventory.error.bad_amount",
                                     "{field} must be a number of 0 or more (days above 0)",
                                     field=key)
        now = now or utc_now()
        work_date = work_date or now.date()
        amount = float(days) * float(daily_rate) + float(travel)
        with self.store.transaction() as cur:
            self._check_member(cur, task_id, expert_id)
            fee_id = next_id(cur)
            cur.execute("INSERT INTO expert_fees VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [fee_id, int(task_id), int(expert_id), work_date, float(days),
                         float(daily_rate), float(travel), amount, actor_name(actor), now])
        return fee_id

    def fee_statement(self, start: date, end: date, expert_id: int | None = None) -> pd.DataFrame:
        """Fees per expert and task with work dates in [start, end]."""
        return self.store.df(
            "SELECT f.expert_id, e.name, e.employer, f.task_id, t.title, f.work_date, f.days, "
            "f.daily_rate, f.travel, f.amount FROM expert_fees f "
            "JOIN experts e USING (expert_id) JOIN expert_tasks t USING (task_id) "
            "WHERE f.work_date BETWEEN $start AND $end "
            "AND ($expert IS NULL OR f.expert_id = $expert) "
            "ORDER BY f.expert_id, f.work_date, f.fee_id",
            {"start": start, "end": end,
             "expert": None if expert_id is None else int(expert_id)})

    def fee_export(self, start: date, end: date, expert_id: int | None = None,
                   fmt: str = "csv") -> bytes:
        """The fee statement as CSV, or an Excel workbook (details and totals per expert)."""
        detail = self.fee_statement(start, end, expert_id)
        if fmt == "csv":
            return to_csv_bytes(detail)
        totals = (detail.groupby(["expert_id", "name"], as_index=False)
                  .agg(tasks=("task_id", "nunique"), days=("days", "sum"),
                       amount=("amount", "sum")))
        return to_excel_bytes({"fees": detail, "totals": totals})

    # ------------------------------------------------------------------ helpers
