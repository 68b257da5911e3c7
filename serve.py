"""Serve the emergency-management console.

``python serve.py`` with no arguments builds the demo database if it is missing, starts the
demo feed, ingests it and serves every app at http://localhost:5006.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_DB = ROOT / "var" / "console.duckdb"

log = logging.getLogger("console")
EXIT_STUCK = 70  # stopping hung past --stop-timeout: stacks logged, process ended by force


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--port", type=int, default=5006, help="HTTP port (default 5006)")
    p.add_argument("--address", default="localhost", help="address to listen on")
    p.add_argument("--db", default=str(DEFAULT_DB), help="DuckDB store (built if missing)")
    p.add_argument(
        "--scale", default="demo", choices=["tiny", "small", "demo", "large"],
        help="scale of the demo data when the store must be built",
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the demo data")
    p.add_argument(
        "--feed", action="append", default=[], metavar="URL",
        help="feed URL to ingest (repeatable); replaces the demo feed",
    )
    p.add_argument("--no-demo-feed", action="store_true", help="do not start the demo feed")
    p.add_argument("--demo-port", type=int, default=0, help="port of the demo feed (0: any)")
    p.add_argument("--speed", type=float, default=1.0, help="time acceleration of the demo feed")
    p.add_argument("--keep-readings-days", type=float, default=7.0,
                   help="days of raw sensor readings kept in the store (0: all)")
    p.add_argument("--lang", default="zh", choices=["zh", "en"], help="default language")
    p.add_argument("--basic-auth", default=None, help="Panel basic auth: a password or a JSON file")
    p.add_argument("--cookie-secret", default=None, help="cookie secret (with --basic-auth)")
    p.add_argument("--malloc-trim-s", type=float, default=60.0,
                   help="return freed memory to the system every N seconds, with malloc "
                        "arenas capped at 2 (glibc; 0: neither)")
    p.add_argument("--stop-timeout", type=float, default=20.0,
                   help="seconds a SIGTERM may take; past them every thread's stack is "
                        f"logged and the process exits with {EXIT_STUCK} (0: wait forever)")
    p.add_argument(
        "--allow-websocket-origin", action="append", default=[],
        help="extra host[:port] allowed to open the page's websocket",
    )
    return p.parse_args(argv)


def ensure_database(path: Path, scale: str, seed: int) -> None:
    """Build the demo store when the file is missing (with a progress bar)."""
    if path.exists():
        return
    from data.generate import build

    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the demo database ({scale} scale) at {path} ...", flush=True)
    build(path, scale=scale, seed=seed, progress=True)


def start_demo_feed(db: Path, port: int, speed: float) -> tuple[subprocess.Popen, str]:
    """Start ``python -m data.simulate`` and wait until it serves.

    The simulator reads the registry from the store and closes it before it says READY, so
    the console can open the file read-write afterwards.
    """
    cmd = [sys.executable, "-m", "data.simulate", "--db", str(db), "--port", str(port),
           "--speed", str(speed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the demo feed exited with code {proc.wait()}")
        if line.startswith("READY "):
            url = line.split()[1]
            # keep draining its stdout so it never blocks on a full pipe
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, url
    proc.terminate()
    raise RuntimeError("the demo feed did not start within 120 s")


def stop_child(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it has not exited in ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def make_runtime(db: Path, feeds: list[str], lang: str, keep_readings_days: float = 7.0):
    """Open the store and start the shared services: hub, ingests (one per feed), retention."""
    from sources.runtime import Runtime
    from sources.store.retention import ReadingRetention
    from sources.store.store import Store

    runtime = Runtime(store=Store(db), lang=lang).install()
    retention = ReadingRetention(store=runtime.store, keep_days=keep_readings_days).start()
    runtime.on_stop(retention.stop)
    for url in feeds:
        from sources.ingest.feed import FeedIngest

        ingest = FeedIngest(url=url, store=runtime.store, hub=runtime.hub)
        runtime.ingests = [*runtime.ingests, ingest]
        ingest.start()
        runtime.on_stop(ingest.stop)
    for start in _service_starters():
        start(runtime)
    return runtime


def _service_starters():
    """Server-wide services that dashboards declare (alarm engine, expiry of warnings...).

    A dashboard module may define ``start_services(runtime)``; each runs once, here.
    """
    import dashboards

    seen = set()
    for cls in dashboards.discover():
        module = sys.modules[cls.__module__]
        fn = getattr(module, "start_services", None)
        if fn is not None and fn not in seen:
            seen.add(fn)
            yield fn


def start_stop_watchdog(timeout_s: float, children=()) -> threading.Thread:
    """End the process by force if stopping takes more than ``timeout_s``.

    A console stuck while stopping keeps the store's file locked (no other process can open
    it) and a supervisor's restart of the wall never comes. First every thread's stack goes
    to the log (what was stuck), then the demo feed is killed and the process exits with
    ``EXIT_STUCK``; committed rows are safe in DuckDB's write-ahead log.
    """
    def watch():
        time.sleep(timeout_s)
        log.error("did not stop within %.0f s: every thread's stack follows; exiting with %d",
                  timeout_s, EXIT_STUCK)
        for handler in logging.getLogger().handlers:
            handler.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        for child in children:
            if child is not None and child.poll() is None:
                child.kill()
        sys.stderr.flush()
        os._exit(EXIT_STUCK)

    thread = threading.Thread(target=watch, name="stop-watchdog", daemon=True)
    thread.start()
    return thread


def memory(runtime) -> dict:
    """The process's resident memory and DuckDB's share of it (MB), and open pages."""
    out: dict = {"rss_mb": None, "duckdb_mb": None, "sessions": None}
    try:  # Linux; elsewhere the figure is simply absent
        with open("/proc/self/statm") as f:
            out["rss_mb"] = round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:  # anonymous (heaps) against file-backed (code, libraries) resident memory
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    key = "rss_anon_mb" if line.startswith("RssAnon") else "rss_file_mb"
                    out[key] = round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:  # DuckDB's buffers, in all and by what holds them (table data, hash tables...)
        tags = runtime.store.arrow(
            "SELECT tag, memory_usage_bytes AS b FROM duckdb_memory() WHERE memory_usage_bytes > 0"
        ).to_pylist()
        out["duckdb_mb"] = round(sum(r["b"] for r in tags) / 2**20, 1)
        out["duckdb_by_tag_mb"] = {r["tag"].lower(): round(r["b"] / 2**20, 1) for r in tags}
    except Exception:  # a busy or closing store must not break the health check
        pass
    from sources.store.housekeeping import allocators

    out.update(allocators())
    out["sessions"] = open_pages(getattr(runtime, "server", None))
    return out


def open_pages(server) -> int | None:
    """Pages connected right now (Bokeh sessions with a live websocket); a page fetched but
    never opened in a browser does not count. None before the server exists."""
    if server is None:
        return None
    try:
        return sum(1 for s in server.get_sessions() if s.connection_count > 0)
    except Exception:  # a session closing while counted must not break the health check
        return None


def health(runtime) -> dict:
    """The JSON of ``/health``."""
    return {
        "status": "ok",
        "db": runtime.store.path,
        "uptime_s": round(time.time() - runtime.started_at, 1),
        "memory": memory(runtime),
        "feeds": [ingest.status() for ingest in runtime.ingests],
    }


def make_handlers(runtime) -> list[tuple]:
    import tornado.web

    import dashboards

    class HealthHandler(tornado.web.RequestHandler):
        def get(self):
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.write(json.dumps(health(runtime), ensure_ascii=False))

    handlers: list[tuple] = [(r"/health", HealthHandler)]
    for cls in dashboards.discover():
        handlers.extend(cls.handlers(runtime))
    return handlers


def serve(args: argparse.Namespace) -> None:
    import panel as pn

    import dashboards
    from sources.store.housekeeping import MemoryTrimmer, limit_arenas

    if args.malloc_trim_s > 0:
        limit_arenas(2)  # before any thread starts
    db = Path(args.db)
    ensure_database(db, args.scale, args.seed)

    feeds = list(args.feed)
    demo = None
    if not feeds and not args.no_demo_feed:
        demo, url = start_demo_feed(db, args.demo_port, args.speed)
        feeds = [url]
        print(f"demo feed at {url}", flush=True)

    runtime = make_runtime(db, feeds, args.lang, args.keep_readings_days)
    trimmer = MemoryTrimmer(args.malloc_trim_s).start()
    runtime.on_stop(trimmer.stop)
    if demo is not None:
        # after the ingest has flushed its last batch; never leave it running
        runtime.on_stop(lambda: stop_child(demo), last=True)

    from views.i18n import t

    routes, titles = {}, {}
    for cls in dashboards.discover():
        key = "/" if cls.route == "" else cls.route
        routes[key] = cls.app(runtime)
        titles[key] = t(cls.title_key, args.lang)
    from dashboards.notebooks_served import notebook_apps  # dashboards/notebooks/*.ipynb

    for key, (app, title) in notebook_apps(args.lang).items():
        routes[key], titles[key] = app, title
    kwargs = {}
    if args.basic_auth:
        kwargs["basic_auth"] = args.basic_auth
        kwargs["cookie_secret"] = args.cookie_secret or os.urandom(24).hex()
    origins = [f"{args.address}:{args.port}", f"localhost:{args.port}",
               f"127.0.0.1:{args.port}", *args.allow_websocket_origin]
    server = pn.serve(
        routes,
        port=args.port,
        address=args.address,
        show=False,
        start=False,
        title={r: cls_title for r, cls_title in titles.items()},
        websocket_origin=origins,
        extra_patterns=make_handlers(runtime),
        check_unused_sessions=10_000,
        unused_session_lifetime=30_000,
        **kwargs,
    )

    runtime.server = server  # /health counts its open pages
    loop = server.io_loop
    stopping = threading.Event()

    def shutdown(signum=None):
        if stopping.is_set():
            return
        stopping.set()
        log.info("stopping (signal %s)", signum)
        if args.stop_timeout > 0:
            start_stop_watchdog(args.stop_timeout, [demo])

        def stop_loop():
            try:
                server.stop()
            finally:  # the loop must end even if the server's own stop fails
                loop.stop()

        loop.add_callback(stop_loop)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.asyncio_loop.add_signal_handler(sig, shutdown, sig)
    server.start()
    print(f"console at http://{args.address}:{args.port}/", flush=True)
    try:
        loop.start()
    finally:
        runtime.stop()
        print("stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack to the log
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
