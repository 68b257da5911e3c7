"""Shared fixtures: a tiny demo store, a served console, a real browser, ``wait_until``.

Browser tests use Debian's chromium through Playwright (never a downloaded browser); without
one they skip and say how to install it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TINY_SEED = 7
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except AssertionError as exc:  # let predicates assert
            last_exc = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s: {last_exc or predicate}")


def arun(coro):
    """Run a coroutine to its end in a thread of its own: once a browser test has started
    Playwright's sync API, the main thread holds a running event loop for the session and
    ``asyncio.run`` refuses to run there."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def rendered(obj) -> dict:
    """What a Panel object renders to Bokeh models: ``text`` (every text, label, title and
    text value, joined; markup as the browser receives it), ``rows`` (rows of every data
    source), ``figures`` and ``models`` (counts).

    Tests check these against what the page should show, never only that a root exists.
    """
    import html as _html

    import panel as pn
    from bokeh.models import ColumnDataSource, Plot

    root = pn.panel(obj).get_root()
    texts, rows, figures = [], 0, 0
    models = list(root.references())
    for m in models:
        for attr in ("text", "label", "title", "placeholder", "code", "value"):
            value = getattr(m, attr, None) if attr in m.properties() else None
            if isinstance(value, str) and value:
                texts.append(_html.unescape(value))
        if isinstance(m, ColumnDataSource):
            rows += max((len(v) for v in m.data.values()), default=0)
        if isinstance(m, Plot):
            figures += 1
    return {"text": "\n".join(texts), "rows": rows, "figures": figures, "models": len(models)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def tiny_db_template(tmp_path_factory) -> Path:
    """A tiny demo store without history (quiet live tables), generated once per test
    session (do not write to it)."""
    from data.generate import build

    path = tmp_path_factory.mktemp("tiny") / "tiny.duckdb"
    build(path, scale="tiny", seed=TINY_SEED, progress=False, history=False)
    return path


@pytest.fixture(scope="session")
def lived_db_template(tmp_path_factory) -> Path:
    """A tiny demo store with its week of history (alarms, warnings, incidents...), as a
    first start of the demo has it; generated once per session (do not write to it)."""
    from data.generate import build

    path = tmp_path_factory.mktemp("lived") / "lived.duckdb"
    build(path, scale="tiny", seed=TINY_SEED, progress=False)
    return path


@pytest.fixture
def tiny_db(tiny_db_template, tmp_path) -> Path:
    """A private, writable copy of the tiny demo store."""
    target = tmp_path / "console.duckdb"
    shutil.copy2(tiny_db_template, target)
    return target


@pytest.fixture
def store(tiny_db):
    """A read-write Store on a private copy of the tiny demo data."""
    from sources.store.store import Store

    s = Store(tiny_db)
    yield s
    with contextlib.suppress(Exception):
        s.close()


@pytest.fixture
def console(store):
    """A console on the tiny store, not started (no feeds, no services): what pages receive."""
    from sources.console import Console

    c = Console(store=store, load_layers=False)
    yield c
    c.stop(close_store=False)


@pytest.fixture(autouse=True)
def _reset_panel_state():
    """Panel keeps caches and callbacks in ``pn.state``: reset them between tests."""
    yield
    if "panel" in sys.modules:
        import panel as pn

        with contextlib.suppress(Exception):
            pn.state.kill_all_servers()
        pn.state.cache.clear()
        with contextlib.suppress(Exception):
            pn.state.clear_caches()


# ---------------------------------------------------------------------- server
class Console:
    """A console served by ``serve.py`` in a subprocess."""

    def __init__(self, proc: subprocess.Popen, port: int, db: Path, log: Path):
        self.proc, self.port, self.db, self.log = proc, port, db, log
        self.url = f"http://127.0.0.1:{port}"

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
            return json.loads(r.read())

    def get(self, path: str) -> tuple[int, bytes, dict]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_console(db: Path, *args: str, port: int | None = None, timeout: float = 120,
                  prelude: str = "") -> Console:
    """Start ``serve.py`` on ``db`` and wait until ``/health`` answers.

    ``prelude``: Python run in the console's process after ``import serve`` and before it
    serves (a test that needs the process to misbehave patches ``serve`` there)."""
    port = port or free_port()
    log = db.with_suffix(f".{port}.log")
    head = [sys.executable, str(ROOT / "serve.py")]
    if prelude:
        head = [sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                f"import serve\n{prelude}\nserve.main(sys.argv[1:])"]
    cmd = [*head, "--db", str(db), "--port", str(port),
           "--address", "127.0.0.1", "--scale", "tiny", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    console = Console(proc, port, db, log)

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"serve.py exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            return console.health()["status"] == "ok"
        except OSError:
            return False

    try:
        wait_until(up, timeout=timeout, interval=0.2, message=f"console not up:\n{log}")
    except BaseException:
        console.stop()
        raise
    return console


@pytest.fixture
def serve(tiny_db):
    """Start consoles on the private tiny store: ``console = serve('--speed', '20')``."""
    started: list[Console] = []

    def _serve(*args: str, db: Path | None = None, port: int | None = None,
               prelude: str = "") -> Console:
        console = start_console(db or tiny_db, *args, port=port, prelude=prelude)
        started.append(console)
        return console

    yield _serve
    for console in started:
        console.stop()


# ---------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright (skips without one)."""
    if CHROMIUM is None:
        pytest.skip("no chromium: install Debian's browser with `apt-get install -y chromium "
                    "fonts-noto-cjk` (browser tests never download one)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class OfflineLog:
    """Every request a page made, to prove none left the console's own server."""

    def __init__(self):
        self.urls: list[str] = []

    def foreign(self, base: str) -> list[str]:
        from urllib.parse import urlparse

        host = urlparse(base).netloc
        return [u for u in self.urls
                if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).netloc != host]


@pytest.fixture
def page(browser):
    """A fresh browser page (1600×1000) with ``page.requests_log`` recording every request."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    log = OfflineLog()
    pg.on("request", lambda req: log.urls.append(req.url))
    pg.on("websocket", lambda ws: log.urls.append(ws.url))
    pg.requests_log = log
    yield pg
    context.close()
