"""The translation table is complete: every key used in the code exists in both languages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from views.i18n import LABELS, t

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")
USE = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.]+)["']""")
# Labels whose text is deliberately the other language's name (the language switch).
CROSS = {"lang.switch"}


def used_keys() -> dict[str, str]:
    keys = {}
    for folder in ("views", "dashboards"):
        for path in (ROOT / folder).rglob("*.py"):
            for key in USE.findall(path.read_text(encoding="utf-8")):
                if not key.endswith("."):  # a prefix completed at run time, e.g. t("app." + r)
                    keys.setdefault(key, str(path.relative_to(ROOT)))
    return keys


def test_every_used_key_is_in_the_table():
    missing = {k: where for k, where in used_keys().items() if k not in LABELS}
    assert not missing, f"labels used but not translated: {missing}"


@pytest.mark.parametrize("key", sorted(LABELS))
def test_both_languages_are_complete(key):
    zh, en = LABELS[key]
    assert zh.strip() and en.strip(), key
    if key in CROSS:
        return
    assert CJK.search(zh) or zh == en or not re.search("[A-Za-z]{3,}", zh), (
        f"{key}: the Chinese label has no Chinese: {zh!r}")
    assert not CJK.search(en), f"{key}: English label has Chinese: {en!r}"


def test_lookup_and_format():
    assert t("risk.red", "zh") == "重大风险"
    assert t("risk.red", "en") == "Major risk"
    assert t("live.readings_count", "en", n=3) == "3 readings received"
    assert t("no.such.key", "en") == "no.such.key"


def test_a_key_in_two_apps_tables_stops_the_import():
    from views.i18n import _merged
    from views.labels import board, common

    with pytest.raises(ValueError, match="risk.red"):
        _merged(common.LABELS, board.LABELS, {"risk.red": ("红", "Red")})
