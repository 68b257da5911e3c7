"""serve.py as an operator meets it: bad start-up options are refused with one line and touch
nothing, and with --users every page and route is behind the login, each role sees and does
what it may, and every action is in the audit log."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, start_console
from tests.sources.access_fixtures import PASSWORDS, make_users

pytestmark = pytest.mark.slow


def run_serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONSOLE_COOKIE_SECRET": "x" * 40}
    return subprocess.run([sys.executable, str(ROOT / "serve.py"), "--address", "127.0.0.1",
                           "--no-demo-feed", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def children_of(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def foreign_store(tmp_path) -> Path:
    """Another application's DuckDB file."""
    import duckdb

    path = tmp_path / "erp.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices AS SELECT range AS id FROM range(10)")
    con.close()
    return path


def test_bad_start_up_options_exit_with_one_line_and_touch_nothing(tmp_path, foreign_store):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(os.urandom(4096))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    before = {p: digest(p) for p in (junk, foreign_store)}
    db = ["--db", str(tmp_path / "new.duckdb")]
    cases = [
        (["--db", str(folder)], "is a directory"),
        (["--db", str(junk)], "not a DuckDB file"),
        (["--db", str(foreign_store)], "not a store of this console"),
        ([*db, "--port", str(taken)], "cannot listen"),
        ([*db, "--port", "70000"], "between 1 and 65535"),
        ([*db, "--port", "0"], "between 1 and 65535"),
        ([*db, "--feed", "http://gateway/feed"], "websocket URL"),
        ([*db, "--feed", "not a url"], "websocket URL"),
        ([*db, "--basic-auth", "secret"], "secrets on the command line"),
        ([*db, "--users", str(tmp_path / "missing.json")], "missing.json"),
        ([*db, "--address", "0.0.0.0"], "without --users"),
        ([*db, "--certfile", str(tmp_path / "nope.pem"), "--keyfile", "x"], "no such file"),
    ]
    try:
        for args, said in cases:
            done = run_serve(*args)
            err = done.stderr.strip().splitlines()
            assert done.returncode != 0, (args, done.stdout[-500:])
            assert err and said in err[-1], (args, done.stderr[-800:])
            assert "Traceback" not in done.stderr, (args, done.stderr[-2000:])
    finally:
        busy.close()
    # nothing written: the foreign files are byte for byte the same, no store was built
    assert {p: digest(p) for p in before} == before
    assert not (tmp_path / "new.duckdb").exists()
    assert not list(tmp_path.glob("*.wal"))


def test_malformed_users_file_or_no_secret_refuses_to_start(tmp_path, tiny_db):
    users = tmp_path / "users.json"
    users.write_text("{ not json")
    done = run_serve("--db", str(tiny_db), "--users", str(users),
                     "--port", str(free_port()))
    assert done.returncode != 0 and "users.json" in done.stderr.splitlines()[-1]
    make_users(tmp_path / "ok.json", wall=None)
    env_free = {k: v for k, v in os.environ.items() if k != "CONSOLE_COOKIE_SECRET"}
    done = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--db", str(tiny_db),
                           "--users", str(tmp_path / "ok.json"), "--no-demo-feed",
                           "--port", str(free_port()), "--address", "127.0.0.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=env_free)
    assert done.returncode != 0 and "cookie secret" in done.stderr.splitlines()[-1]


@pytest.fixture
def guarded(tmp_path, tiny_db, monkeypatch):
    """A console served by serve.py with --users: an admin, officers of the province, a
    city and a county, an analyst."""
    from tests.dashboards.auth_server import Client

    users = tmp_path / "users.json"
    make_users(users, wall=None)
    secret = tmp_path / "cookie.secret"
    secret.write_text("s" * 48)
    secret.chmod(0o600)
    console = start_console(tiny_db, "--no-demo-feed", "--users", str(users),
                            "--cookie-secret-file", str(secret))
    console.client = lambda: Client(console.port)
    yield console
    console.stop()


def signed_in(console, name):
    c = console.client()
    r = c.login(name, PASSWORDS[name])
    assert r.status in (302, 303), r.text[:300]
    return c


def test_login_guards_every_route_and_health_says_little_to_strangers(guarded):
    anon = guarded.client()
    for path in ("/board", "/alarms", "/console", "/cap/index.xml", "/components/panel/x.js",
                 "/static/js/bokeh.min.js", "/nope"):
        r = anon.get(path)
        assert r.status in (302, 303, 401, 403), (path, r.status)
        assert b"bokeh" not in r.body.lower() or path.startswith("/static") and r.status != 200
    health = json.loads(anon.get("/health").body)
    assert set(health) == {"status", "uptime_s"}  # no paths, URLs or errors for strangers
    admin = signed_in(guarded, "wang.admin")
    detail = json.loads(admin.get("/health").body)
    assert detail["db"] == str(guarded.db) and "services" in detail
    officer = signed_in(guarded, "li.county")
    assert set(json.loads(officer.get("/health").body)) == {"status", "uptime_s"}
    assert officer.get("/board").status == 200
    assert officer.get("/console").status == 403  # the SQL console is the analysts'
    analyst = signed_in(guarded, "qian.analyst")
    assert analyst.get("/console").status == 200
