"""What a plain (non-editable) install ships: every package and every data file the code reads.

An editable install finds everything on the source tree; a wheel holds only what
``pyproject.toml`` names. A new sub-package or a new kind of data file that the
configuration misses works in development and breaks on the first real install.
"""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
TOP = ("dashboards", "sources", "views", "data")


def _packages() -> list[str]:
    return sorted(str(p.parent.relative_to(ROOT)).replace("/", ".")
                  for top in TOP for p in (ROOT / top).rglob("__init__.py")
                  if "__pycache__" not in p.parts)


def test_every_package_is_in_the_wheel():
    include = CONFIG["packages"]["find"]["include"]
    missing = [p for p in _packages() if not any(fnmatch.fnmatch(p, pat) for pat in include)]
    assert len(_packages()) > 10
    assert not missing, f"packages left out of a wheel: {missing}"


def test_every_data_file_is_in_the_wheel():
    data = CONFIG["package-data"]
    files = [p for top in TOP for p in (ROOT / top).rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert any(p.suffix == ".toml" for p in files)
    missing = []
    for path in files:
        rel = path.relative_to(ROOT)
        owner = ".".join(rel.parts[:-1])
        while owner and owner not in data:  # package-data of the nearest package that lists it
            owner = owner.rpartition(".")[0]
        inner = str(rel.relative_to(*owner.split("."))) if owner else str(rel)
        if not owner or not any(fnmatch.fnmatch(inner, pat) for pat in data[owner]):
            missing.append(str(rel))
    assert not missing, f"data files left out of a wheel: {missing}"
