"""Serve the emergency-management console.

``python serve.py`` with no arguments builds the demo database if it is missing, starts the
demo feed, ingests it and serves every app at http://localhost:5006.

This module only parses options, builds the :class:`~sources.console.Console` (which owns
every service) and serves its pages (``dashboards``) and HTTP routes
(``dashboards.endpoints``).
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
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


def build_console(args: argparse.Namespace):
    """The console of these options (not started).

    The demo feed starts first: it reads the registry from the store and closes the file
    before it says READY, so the console can then open it read-write (no copy needed).
    """
    from sources.console import Console
    from sources.ingest.demo import DemoFeed
    from sources.store.store import Store

    db = Path(args.db)
    demo = None
    if not args.feed and not args.no_demo_feed:
        demo = DemoFeed(db, port=args.demo_port, speed=args.speed).start()
    try:
        return Console(store=Store(db), lang=args.lang, feeds=list(args.feed), demo=demo,
                       keep_readings_days=args.keep_readings_days,
                       malloc_trim_s=args.malloc_trim_s)
    except BaseException:
        if demo is not None:
            demo.stop()
        raise


def start_stop_watchdog(timeout_s: float, console) -> threading.Thread:
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
        if console.demo is not None:
            console.demo.kill()
        sys.stderr.flush()
        os._exit(EXIT_STUCK)

    thread = threading.Thread(target=watch, name="stop-watchdog", daemon=True)
    thread.start()
    return thread


def serve(args: argparse.Namespace) -> None:
    import panel as pn

    import dashboards
    from dashboards.endpoints import handlers
    from sources.store.housekeeping import limit_arenas
    from views.i18n import t

    if args.malloc_trim_s > 0:
        limit_arenas(2)  # before any thread starts
    ensure_database(Path(args.db), args.scale, args.seed)
    console = build_console(args)
    console.start()  # stops what it started and closes nothing else if a step fails
    if console.demo is not None:
        print(f"demo feed at {console.demo.url}", flush=True)

    routes, titles = dashboards.routes(console)
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
        title={route: t(key, args.lang) if key else title
               for route, (key, title) in titles.items()},
        websocket_origin=origins,
        extra_patterns=handlers(console),
        check_unused_sessions=10_000,
        unused_session_lifetime=30_000,
        **kwargs,
    )

    console.server = server  # /health counts its open pages
    loop = server.io_loop
    stopping = threading.Event()

    def shutdown(signum=None):
        if stopping.is_set():
            return
        stopping.set()
        log.info("stopping (signal %s)", signum)
        if args.stop_timeout > 0:
            start_stop_watchdog(args.stop_timeout, console)

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
        console.stop()
        print("stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack to the log
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
