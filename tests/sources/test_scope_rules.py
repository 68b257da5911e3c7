"""The two rules the scoped pages share: which warning areas concern a jurisdiction, and a
risk filter narrowed to one (a user cannot widen it by choosing another city or county)."""
from __future__ import annotations

import pytest

from sources.access.jurisdiction import overlaps
from sources.risk.risk import RiskFilter


@pytest.mark.parametrize(("scope", "codes", "expected"), [
    ("371302", ["371302"], True),              # the county itself
    ("371302", ["371311", "371302"], True),    # an area holding it among others
    ("371302", ["371300"], True),              # its city's warning
    ("371302", ["370000"], True),              # a province-wide one
    ("371302", ["371311"], False),             # a neighbour of the same city
    ("371302", ["370102", "371700"], False),   # elsewhere
    ("371300", ["371311"], True),              # a city: any of its counties
    ("371300", ["371700"], False),
    ("370000", ["371700"], True),
    ("371302", [], False),
    ("371302", None, False),
    ("371302", ["", "abc", "3713", "37130'", "1234567"], False),  # garbage is no area
])
def test_which_warning_areas_concern_a_jurisdiction(scope, codes, expected):
    assert overlaps(scope, codes) is expected


def test_a_filter_narrowed_to_a_jurisdiction_cannot_be_widened():
    asked = RiskFilter(cities=("370100",), counties=("370102", "371302", "371311"),
                       industries=("hazchem",), grades=("red",))
    county = asked.within("371302")
    assert (county.cities, county.counties) == ((), ("371302",))
    assert (county.industries, county.grades) == (("hazchem",), ("red",))  # kept
    city = asked.within("3713")
    assert (city.cities, city.counties) == (("371300",), ("371302", "371311"))
    assert RiskFilter(cities=("370100",)).within("3713").cities == ("371300",)
    assert RiskFilter().within("3713").counties == ()  # the whole city
    assert asked.within(None) is asked
