"""Contingency plans (应急预案) as data files the bureau edits: ``data/plans/*.toml``.

One file per plan::

    id = "hazchem"                          # letters, digits, _ and -
    title = "危险化学品事故专项应急预案"
    title_en = "Hazardous-chemical accident plan"      # optional
    issued_by = "山东省应急管理厅"                       # optional
    revision = "2023-06"                                # optional
    subtypes = ["hazchem_leak", "explosion"]  # incident subtypes it covers (sources.command.catalog)
    # or: categories = ["accident"]           # every subtype of these categories not covered above
    # or: fallback = true                     # any incident no other plan covers

    [[items]]
    levels = ["I", "II", "III", "IV"]       # response levels at which this measure applies
    measure = "启动危化品事故现场处置方案，划定警戒区"
    measure_en = "Start the on-site procedure; set up the cordon"   # optional
    unit = "事发地县级人民政府、消防救援机构"    # responsible unit(s)
    within_min = 30                          # optional: to be done within N minutes of launch

Launching a response at level L opens the items of the matching plan whose ``levels`` include
L, in file order. Files are validated on load; every problem is reported with the file, the
item number and what to write instead (:class:`PlanError`), and a broken file never opens a
half plan.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .catalog import CATEGORIES, GRADES, SUBTYPES

PLANS_DIR = Path(__file__).resolve().parents[2] / "data" / "plans"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOP = {"id", "title", "title_en", "issued_by", "revision", "subtypes", "categories",
        "fallback", "items"}
_ITEM = {"levels", "measure", "measure_en", "unit", "within_min"}


class PlanError(ValueError):
    """A plan file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class PlanItem:
    """One measure of a plan: what, by whom, at which levels, within how long."""

    no: int
    levels: tuple[str, ...]
    measure: str
    measure_en: str
    unit: str
    within_min: int | None


@dataclass(frozen=True)
class Plan:
    """A validated plan file."""

    id: str
    title: str
    title_en: str
    issued_by: str
    revision: str
    subtypes: tuple[str, ...]
    categories: tuple[str, ...]
    fallback: bool
    items: tuple[PlanItem, ...]
    path: str

    def items_for(self, level: str) -> list[PlanItem]:
        """The measures that apply at response level ``level``, in file order."""
        return [item for item in self.items if level in item.levels]


def _text(value, where: str, field: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise PlanError(f"{where}: '{field}' must be a non-empty text")
    return value.strip()


def _keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(unknown)} "
                        f"(allowed: {', '.join(sorted(allowed))})")


def parse_plan(text: str, path: str = "<plan>") -> Plan:
    """Validate one plan file's text; raises :class:`PlanError` naming ``path``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from None
    _keys(doc, _TOP, path)
    plan_id = doc.get("id")
    if not isinstance(plan_id, str) or not _ID.match(plan_id):
        raise PlanError(f"{path}: 'id' must be letters, digits, '_' or '-' (got {plan_id!r})")
    subtypes = doc.get("subtypes", [])
    categories = doc.get("categories", [])
    fallback = doc.get("fallback", False)
    if not isinstance(subtypes, list) or not all(isinstance(s, str) for s in subtypes):
        raise PlanError(f"{path}: 'subtypes' must be a list of texts")
    bad = [s for s in subtypes if s not in SUBTYPES]
    if bad:
        raise PlanError(f"{path}: unknown subtype(s) {', '.join(bad)} "
                        f"(known: {', '.join(SUBTYPES)})")
    if not isinstance(categories, list) or any(c not in CATEGORIES for c in categories):
        raise PlanError(f"{path}: 'categories' must list some of {', '.join(CATEGORIES)}")
    if not isinstance(fallback, bool):
        raise PlanError(f"{path}: 'fallback' must be true or false")
    if not (subtypes or categories or fallback):
        raise PlanError(f"{path}: say what the plan covers: 'subtypes', 'categories' or "
                        "'fallback = true'")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise PlanError(f"{path}: a plan needs at least one [[items]] table")
    items = []
    for no, raw in enumerate(raw_items, start=1):
        where = f"{path}: item {no}"
        if not isinstance(raw, dict):
            raise PlanError(f"{where}: must be a [[items]] table")
        _keys(raw, _ITEM, where)
        levels = raw.get("levels")
        if not isinstance(levels, list) or not levels:
            raise PlanError(f"{where}: 'levels' must list response levels (I, II, III, IV)")
        wrong = [lv for lv in levels if lv not in GRADES]
        if wrong:
            raise PlanError(f"{where}: unknown level(s) {', '.join(map(repr, wrong))} "
                            "(use I, II, III, IV)")
        within = raw.get("within_min")
        if within is not None and (isinstance(within, bool) or not isinstance(within, int)
                                   or within <= 0):
            raise PlanError(f"{where}: 'within_min' must be a whole number of minutes above 0")
        items.append(PlanItem(no=no, levels=tuple(dict.fromkeys(levels)),
                              measure=_text(raw.get("measure"), where, "measure"),
                              measure_en=_text(raw.get("measure_en"), where, "measure_en",
                                               required=False),
                              unit=_text(raw.get("unit"), where, "unit"), within_min=within))
    missing = [lv for lv in GRADES if not any(lv in it.levels for it in items)]
    if missing:
        raise PlanError(f"{path}: no measure for response level(s) {', '.join(missing)}: "
                        "every level needs at least one item")
    return Plan(id=plan_id, title=_text(doc.get("title"), path, "title"),
                title_en=_text(doc.get("title_en"), path, "title_en", required=False),
                issued_by=_text(doc.get("issued_by"), path, "issued_by", required=False),
                revision=_text(doc.get("revision"), path, "revision", required=False),
                subtypes=tuple(subtypes), categories=tuple(categories), fallback=fallback,
                items=tuple(items), path=path)


def load_plans(directory: str | Path = PLANS_DIR) -> dict[str, Plan]:
    """Every ``*.toml`` plan of ``directory`` by id; raises :class:`PlanError` on any problem.

    Two plans may not share an id or a subtype, and at most one may be the fallback.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PlanError(f"{directory}: no plan directory")
    plans: dict[str, Plan] = {}
    owner: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        plan = parse_plan(path.read_text(encoding="utf-8"), path.name)
        if plan.id in plans:
            raise PlanError(f"{path.name}: id '{plan.id}' is also used by "
                            f"{plans[plan.id].path}")
        claims = [f"subtype:{s}" for s in plan.subtypes] + \
                 [f"category:{c}" for c in plan.categories] + \
                 (["fallback"] if plan.fallback else [])
        for claim in claims:
            if claim in owner:
                raise PlanError(f"{path.name}: {claim.replace(':', ' ')} is also covered by "
                                f"{owner[claim]}")
            owner[claim] = path.name
        plans[plan.id] = plan
    if not plans:
        raise PlanError(f"{directory}: no plan files (*.toml)")
    return plans


def plan_for(plans: dict[str, Plan], subtype: str) -> Plan | None:
    """The plan covering ``subtype``: by subtype, else by its category, else the fallback."""
    for plan in plans.values():
        if subtype in plan.subtypes:
            return plan
    st = SUBTYPES.get(subtype)
    for plan in plans.values():
        if st is not None and st.category in plan.categories:
            return plan
    for plan in plans.values():
        if plan.fallback:
            return plan
    return None
