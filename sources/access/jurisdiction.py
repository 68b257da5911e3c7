"""Jurisdictions (辖区): the province, a city or a county, by GB/T 2260 six-digit code.

The code itself says what contains what: ``37xxxx`` is in the province ``370000``,
``3713xx`` in the city ``371300`` (临沂市), and a county contains only itself. The demo store's
``counties``/``cities`` tables follow that rule (``tests/sources/test_access_policy.py``
checks it on a generated store), so containment needs no table look-up on the hot path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Level = Literal["province", "city", "county"]
CODE = re.compile(r"^[1-9]\d{5}$")


class JurisdictionError(ValueError):
    """A code that is not a six-digit GB/T 2260 administrative code."""


def check_code(code: str) -> str:
    """``code`` as a string of six digits, or :class:`JurisdictionError`."""
    text = str(code).strip()
    if not CODE.match(text):
        raise JurisdictionError(f"not a six-digit administrative code: {code!r}")
    if text[2:4] == "00" and text[4:] != "00":  # a county part under no city: no such code
        raise JurisdictionError(f"not an administrative code: {code!r}")
    return text


def level(code: str) -> Level:
    """Whether ``code`` names a province (``xx0000``), a city (``xxxx00``) or a county."""
    code = check_code(code)
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "city"
    return "county"


def prefix(code: str) -> str:
    """The code prefix shared by everything inside ``code`` (``37``, ``3713``, ``371302``).

    Views filter their queries with it: ``county_code LIKE prefix || '%'``."""
    return {"province": code[:2], "city": code[:4], "county": code}[level(code)]


def contains(scope: str, code: str) -> bool:
    """Whether the jurisdiction ``scope`` contains the area ``code`` (itself included)."""
    try:
        return check_code(code).startswith(prefix(scope))
    except JurisdictionError:
        return False


def overlaps(scope: str, codes) -> bool:
    """Whether an area named by ``codes`` (counties, cities or the province) meets the
    jurisdiction ``scope``: one of its codes lies inside ``scope``, or contains it (a
    province-wide warning concerns every county)."""
    return any(contains(scope, str(c)) or contains(str(c), scope) for c in (codes or ()))


@dataclass(frozen=True)
class Jurisdiction:
    """One user's area of responsibility."""

    code: str

    def __post_init__(self):
        object.__setattr__(self, "code", check_code(self.code))

    @property
    def level(self) -> Level:
        return level(self.code)

    @property
    def prefix(self) -> str:
        return prefix(self.code)

    def contains(self, code: str) -> bool:
        return contains(self.code, code)


def known_codes(store) -> dict[str, str]:
    """``{code: name}`` of the province, cities and counties in a store's registry.

    The province is derived from the counties (the store has no province table)."""
    counties = store.df("SELECT county_code AS code, name FROM counties")
    cities = store.df("SELECT city_code AS code, name FROM cities")
    out = {str(r.code): str(r.name) for r in cities.itertuples(index=False)}
    out.update({str(r.code): str(r.name) for r in counties.itertuples(index=False)})
    for code in {c[:2] + "0000" for c in out}:
        out.setdefault(code, "")  # the registry names no province
    return out
