"""Incident grade (特别重大/重大/较大/一般) from what is reported, where a rule exists.

Production-safety accidents (the 事故灾难 category) are graded by the State Council's
regulation on the reporting and investigation of production-safety accidents (生产安全事故报告
和调查处理条例, 2007, art. 3): the highest band any one of deaths, seriously injured (acute
industrial poisoning included) or direct economic loss reaches decides. "以上" includes the
number, "以下" excludes it:

====== ========== ===================== =========================
grade  deaths     seriously injured     direct loss (万元 = 10k ¥)
====== ========== ===================== =========================
I      ≥ 30       ≥ 100                 ≥ 10,000 (100 M ¥)
II     10–29      50–99                 5,000–9,999.99
III    3–9        10–49                 1,000–4,999.99
IV     below      below                 below
====== ========== ===================== =========================

Other categories have no single numeric rule here: the officer sets the grade (the result
says so), and an officer may override any computed grade with a reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import SUBTYPES

#: (grade, deaths ≥, seriously injured ≥, direct loss in 万元 ≥), most severe first.
PRODUCTION_SAFETY_BANDS = (
    ("I", 30, 100, 10_000.0),
    ("II", 10, 50, 5_000.0),
    ("III", 3, 10, 1_000.0),
)
RULE_NAME = "生产安全事故报告和调查处理条例 第三条"


@dataclass(frozen=True)
class GradeResult:
    """A computed grade and why: ``rule`` names the criterion that fired (or None)."""

    grade: str | None          # I..IV, None when no rule applies
    rule: str | None           # e.g. "deaths 12 >= 10" (machine-readable, English)
    rule_key: str              # label key of views.i18n: command.rule.<...>
    fmt: dict                  # fields of the label

    @property
    def computed(self) -> bool:
        return self.grade is not None


def production_safety_grade(deaths: int | None, injured: int | None,
                            loss_wan: float | None) -> GradeResult:
    """Grade of a production-safety accident from the reported figures (None counts as 0).

    The most severe band reached by any criterion wins; the first criterion (deaths, then
    injured, then loss) reaching it is the rule reported.
    """
    d = int(deaths or 0)
    i = int(injured or 0)
    x = float(loss_wan or 0.0)
    for grade, d_min, i_min, x_min in PRODUCTION_SAFETY_BANDS:
        if d >= d_min:
            return GradeResult(grade, f"deaths {d} >= {d_min}", "command.rule.deaths",
                               {"n": d, "min": d_min, "grade": grade})
        if i >= i_min:
            return GradeResult(grade, f"seriously injured {i} >= {i_min}",
                               "command.rule.injured", {"n": i, "min": i_min, "grade": grade})
        if x >= x_min:
            return GradeResult(grade, f"direct loss {x:g} >= {x_min:g} (10k yuan)",
                               "command.rule.loss", {"n": x, "min": x_min, "grade": grade})
    return GradeResult("IV", f"deaths {d} < 3, seriously injured {i} < 10, "
                             f"direct loss {x:g} < 1000 (10k yuan)",
                       "command.rule.below", {"d": d, "i": i, "x": x, "grade": "IV"})


def compute_grade(subtype: str, deaths: int | None, injured: int | None,
                  loss_wan: float | None) -> GradeResult:
    """The grade the rule for ``subtype`` gives, or a result with ``grade=None`` (no rule)."""
    st = SUBTYPES.get(subtype)
    if st is not None and st.category == "accident":
        return production_safety_grade(deaths, injured, loss_wan)
    return GradeResult(None, None, "command.rule.none", {})


def check_count(value, name: str) -> int:
    """A casualty count: a whole number ≥ 0 (None counts as 0); raises ValueError."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(float(value)) or float(value) < 0 \
            or float(value) != int(value):
        raise ValueError(name)
    return int(value)


def check_amount(value, name: str) -> float:
    """A loss: a finite number ≥ 0 (None counts as 0); raises ValueError."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(name)
    return float(value)
