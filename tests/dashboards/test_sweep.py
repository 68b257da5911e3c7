"""Every dashboard builds its page on the tiny store, in every language."""
from __future__ import annotations

import panel as pn
import pytest

import dashboards


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_dashboard_builds(runtime, lang):
    found = dashboards.discover()
    assert {cls.route for cls in found} >= {"", "board", "warnings", "risk", "inventory"}
    for cls in found:
        layout = cls(runtime=runtime, lang=lang).layout()
        model = pn.panel(layout).get_root()
        assert model is not None, cls
