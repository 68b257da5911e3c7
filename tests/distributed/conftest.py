"""Fixtures of the distributed mode: log servers on loopback, a registry, centres files.

Everything runs on loopback and is started here; every process is stopped by its PID.
Without Debian's ``nats-server`` the tests skip and say how to install it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sources.distributed.local import NATS_SERVER, LogServers, write_centres

__all__ = ["NEEDS_NATS", "copy_db", "write_centres"]  # write_centres: the test modules import it here

#: Every test module here: ``pytestmark = NEEDS_NATS``.
NEEDS_NATS = [pytest.mark.slow, pytest.mark.skipif(
    NATS_SERVER is None, reason="nats-server not installed (apt-get install -y nats-server)")]


@pytest.fixture(scope="session")
def registry(tiny_db_template, tmp_path_factory) -> Path:
    """The tiny store's registries as a first view snapshot (position tables added)."""
    from sources.distributed.ingest import prepare_registry

    return prepare_registry(tiny_db_template, tmp_path_factory.mktemp("reg") / "registry.duckdb")


@pytest.fixture
def county_log(tmp_path):
    """One log server of county 370102 (R1) and its centres file."""
    servers = LogServers(tmp_path, "370102").start()
    centres = write_centres(tmp_path / "centres.json", {
        "370102": {"level": "county", "servers": servers.urls}})
    yield servers, centres
    servers.stop()


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copy2(src, dst)
    return dst
