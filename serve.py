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
#: The drill a new demo store plays on its first start, so the console is alive at once.
FIRST_SCENARIO = "dongying-leak"


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
    p.add_argument("--scenario", default=None, metavar="NAME",
                   help="play this exercise (演练) scenario of data/scenarios through the demo "
                        "feed at once (marked as an exercise everywhere); on the first start "
                        f"of a new demo store, {FIRST_SCENARIO!r} plays unless 'none' is given")
    p.add_argument("--keep-readings-days", type=float, default=7.0,
                   help="days of raw sensor readings kept in the store (0: all)")
    p.add_argument("--lang", default="zh", choices=["zh", "en"], help="default language")
    p.add_argument("--users", default=None, metavar="FILE",
                   help="users file (python -m sources.access.users): pages need a login; "
                        "without it the console serves without login, on loopback only")
    p.add_argument("--cookie-secret-file", default=None, metavar="FILE",
                   help="file holding the cookie secret (else $CONSOLE_COOKIE_SECRET); "
                        "secrets are never passed on the command line")
    p.add_argument("--sessions-file", default=None, metavar="FILE",
                   help="keep logins across restarts (hashes only; default: in memory)")
    p.add_argument("--login-hours", type=float, default=12.0,
                   help="lifetime of a password login (default 12 h: one duty shift)")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="reverse proxy whose X-Forwarded-For/-Proto are believed (repeatable)")
    p.add_argument("--public-cap", action="store_true",
                   help="serve /cap (CAP documents and feed) without login")
    p.add_argument("--certfile", default=None, help="TLS certificate (PEM): serve HTTPS")
    p.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    p.add_argument("--no-login", action="store_true",
                   help="serve without login on a non-loopback address (a closed network "
                        "only: everyone who reaches the port may act)")
    p.add_argument("--basic-auth", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cookie-secret", default=None, help=argparse.SUPPRESS)
    p.add_argument("--distributed", default=None, metavar="CENTRES.json",
                   help="serve a view of a centre's event log (docs/DISTRIBUTED.md)")
    p.add_argument("--centre", default=None, help="with --distributed: this centre's code")
    p.add_argument("--drill-feed", default=None, metavar="URL",
                   help="with --distributed: the feed (read by the centre's ingest node) whose "
                        "simulator plays exercises for the /drills desk")
    p.add_argument("--risk-workers", type=int, default=None, metavar="N",
                   help="keep the risk points on N local Dask worker processes (the [scale] "
                        "extra; docs/SCALE.md) instead of in this process")
    p.add_argument("--risk-scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="keep the risk points on the workers of this Dask scheduler (they "
                        "read the points' Parquet files beside --db: a shared file system)")
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
    args = p.parse_args(argv)
    if args.basic_auth is not None or args.cookie_secret is not None:
        p.error("--basic-auth and --cookie-secret are gone: secrets on the command line are "
                "visible to every local user (ps). Use --users FILE and --cookie-secret-file "
                "FILE (or $CONSOLE_COOKIE_SECRET); see docs/ACCESS.md")
    return args


def ensure_database(path: Path, scale: str, seed: int) -> None:
    """Build the demo store when the file is missing (with a progress bar)."""
    if path.exists():
        return
    from data.generate import build

    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the demo database ({scale} scale) at {path} ...", flush=True)
    build(path, scale=scale, seed=seed, progress=True)


class StartError(Exception):
    """An option the console cannot start with: one line that says what and how to fix it."""


LOOPBACK = ("localhost", "127.0.0.1", "::1")


def check_options(args: argparse.Namespace) -> None:
    """Check every option before anything is opened, written or started.

    Raises :class:`StartError` (one line) for a port out of range or in use, a ``--db``
    that is a directory, not a DuckDB file or another application's store, a feed URL that
    is not ``ws://``/``wss://``, TLS files that do not exist, or no login on a shared address.
    """
    import socket
    from urllib.parse import urlsplit

    if not 1 <= args.port <= 65535:
        raise StartError(f"--port {args.port}: a port is between 1 and 65535")
    if args.demo_port and not 1 <= args.demo_port <= 65535:
        raise StartError(f"--demo-port {args.demo_port}: a port is between 1 and 65535")
    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the server binds: a port left in TIME_WAIT by a console just stopped is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.address, args.port))
        except OSError as exc:
            raise StartError(f"--address {args.address} --port {args.port}: cannot listen "
                             f"there ({exc.strerror or exc}); is another console running?"
                             ) from None
    if args.scenario and args.scenario != "none" and (args.feed or args.no_demo_feed):
        raise StartError(f"--scenario {args.scenario}: exercises play through the demo feed "
                         "(not with --feed or --no-demo-feed)")
    if args.scenario and args.scenario != "none":
        from data.scenario import available

        if args.scenario not in available():
            raise StartError(f"--scenario {args.scenario}: no such scenario; the scenarios are "
                             f"{', '.join(sorted(available()))}")
    for url in args.feed:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise StartError(f"--feed {url!r}: a feed is a websocket URL (ws://host:port/path "
                             "or wss://...)")
    if args.drill_feed:
        parts = urlsplit(args.drill_feed)
        if not args.distributed:
            raise StartError("--drill-feed goes with --distributed (the embedded console's demo "
                             "feed plays exercises itself)")
        if parts.scheme not in ("ws", "wss") or not parts.hostname or not parts.port:
            raise StartError(f"--drill-feed {args.drill_feed!r}: the feed's websocket URL "
                             "(ws://host:port/path), whose simulator plays the exercises")
    for name in ("certfile", "keyfile"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise StartError(f"--{name} {value}: no such file")
    if bool(args.certfile) != bool(args.keyfile):
        raise StartError("--certfile and --keyfile go together")
    if not args.users and not args.no_login and args.address not in LOOPBACK:
        raise StartError(f"--address {args.address} without --users: every page would be open "
                         "to the network; give --users FILE (or --no-login on a closed network)")
    check_risk_cluster(args)
    check_store(Path(args.db))


def check_risk_cluster(args: argparse.Namespace) -> None:
    """``--risk-workers`` / ``--risk-scheduler``: one of them, well formed, Dask installed."""
    from urllib.parse import urlsplit

    workers, scheduler = getattr(args, "risk_workers", None), getattr(args, "risk_scheduler", None)
    if workers is None and scheduler is None:
        return
    if workers is not None and scheduler is not None:
        raise StartError("--risk-workers and --risk-scheduler: give one of them (local workers, "
                         "or the workers of a running scheduler)")
    if workers is not None and not 1 <= workers <= 256:
        raise StartError(f"--risk-workers {workers}: a number of worker processes, 1 to 256")
    if scheduler is not None:
        parts = urlsplit(scheduler)
        if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
            raise StartError(f"--risk-scheduler {scheduler!r}: a Dask scheduler address is "
                             "tcp://host:port (or tls://host:port)")
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise StartError("--risk-workers/--risk-scheduler need Dask: pip install -e '.[scale]'")


def risk_cluster(args: argparse.Namespace) -> str | None:
    """The console's ``risk_cluster`` of these options (None: points in this process)."""
    if getattr(args, "risk_workers", None) is not None:
        return f"local:{args.risk_workers}"
    return getattr(args, "risk_scheduler", None)


def check_store(path: Path) -> None:
    """A store the console may open: missing (it is built), or a DuckDB file of this console.

    Opened read-only to check, so nothing is written to a file the console did not make."""
    if not path.exists():
        if not path.parent.exists() and path.parent != Path(""):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StartError(f"--db {path}: cannot create its folder ({exc.strerror})"
                                 ) from None
        return
    if path.is_dir():
        raise StartError(f"--db {path}: is a directory, not a store file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise StartError(f"--db {path}: cannot read it ({exc.strerror})") from None
    if len(head) < 12 or head[8:12] != b"DUCK":
        raise StartError(f"--db {path}: not a DuckDB file (refusing to touch it)")
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StartError(f"--db {path}: held by another process (is a console already "
                             "running on it?)") from None
        raise StartError(f"--db {path}: cannot open it ({str(exc).splitlines()[0]})") from None
    except duckdb.Error as exc:
        raise StartError(f"--db {path}: cannot open it ({str(exc).splitlines()[0]})") from None
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()
    missing = {"build_info", "counties", "boundaries", "sensors"} - tables
    if missing:
        raise StartError(f"--db {path}: not a store of this console (no "
                         f"{', '.join(sorted(missing))} table); give another path, or a new "
                         "one to build the demo store there")


def load_access(args: argparse.Namespace):
    """The checked access settings (None: no login), or :class:`StartError`."""
    if not args.users:
        return None
    from sources.access.config import AccessConfigError, load_access_config

    public = [r"/cap(/.*)?"] if args.public_cap else []
    try:
        return load_access_config(users_file=args.users, secret_file=args.cookie_secret_file,
                                  sessions_file=args.sessions_file,
                                  login_hours=args.login_hours,
                                  trusted_proxies=args.trusted_proxy, public_paths=public,
                                  lang=args.lang)
    except AccessConfigError as exc:
        raise StartError(str(exc)) from None


def build_console(args: argparse.Namespace, *, first_start: bool = False):
    """The console of these options (not started).

    The demo feed starts first: it reads the registry from the store and closes the file
    before it says READY, so the console can then open it read-write (no copy needed).
    """
    import duckdb

    from sources.console import Console
    from sources.ingest.demo import DemoFeed, DemoFeedError
    from sources.store.store import Store

    db = Path(args.db)
    if args.distributed:  # a view of the log: no feed, no engine, no demo store of its own
        from sources.distributed.serving import DistributedStartError, distributed_console

        try:
            return distributed_console(args.distributed, args.centre, db, lang=args.lang,
                                       drill_feed=args.drill_feed,
                                       keep_readings_days=args.keep_readings_days,
                                       malloc_trim_s=args.malloc_trim_s,
                                       risk_cluster=risk_cluster(args))
        except DistributedStartError as exc:
            raise StartError(str(exc)) from None
    demo = None
    if not args.feed and not args.no_demo_feed:
        scenario = args.scenario or (FIRST_SCENARIO if first_start else None)
        extra = ["--scenario", scenario] if scenario and scenario != "none" else []
        try:
            demo = DemoFeed(db, port=args.demo_port, speed=args.speed,
                            extra_args=extra).start()
        except DemoFeedError as exc:
            raise StartError(f"the demo feed did not start: {exc}") from None
    try:
        return Console(store=Store(db), lang=args.lang, feeds=list(args.feed), demo=demo,
                       keep_readings_days=args.keep_readings_days,
                       malloc_trim_s=args.malloc_trim_s, risk_cluster=risk_cluster(args))
    except BaseException as exc:
        if demo is not None:
            demo.stop()
        if isinstance(exc, duckdb.Error):
            raise StartError(f"--db {db}: {str(exc).splitlines()[0]}") from None
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
    from bokeh.settings import settings as bokeh_settings

    import dashboards
    from dashboards.endpoints import handlers
    from sources.store.housekeeping import limit_arenas
    from views.i18n import t

    check_options(args)  # before anything is opened, written or started
    access = load_access(args)
    if args.malloc_trim_s > 0:
        limit_arenas(2)  # before any thread starts
    first_start = not args.distributed and not Path(args.db).exists()
    if not args.distributed:
        ensure_database(Path(args.db), args.scale, args.seed)
    console = build_console(args, first_start=first_start)
    console.start()  # stops what it started and closes nothing else if a step fails
    if console.demo is not None:
        print(f"demo feed at {console.demo.url}", flush=True)

    auth = None
    kwargs = {}
    if access is not None:
        from dashboards.auth import ConsoleAuth

        auth = ConsoleAuth(access, audit=console.audit)
        console.access = access.access
        console.principal_of = auth.page_principal
        console.users = access.users
        kwargs.update(auth.serve_kwargs())
    else:  # a warning when others can reach it; on loopback, the single-user default
        log.log(logging.INFO if args.address in LOOPBACK else logging.WARNING,
                "no login (no --users): every page is open to whoever reaches %s:%s",
                args.address, args.port)
    if args.certfile:
        kwargs["ssl_certfile"], kwargs["ssl_keyfile"] = args.certfile, args.keyfile
    routes, titles = dashboards.routes(console)
    # Bokeh checks each new page's models (W-/E- codes) by default: a tenth of what a page
    # costs, for pages that are all the same; the tests check every page once instead
    # (tests/views/test_bokeh_fast.py)
    bokeh_settings.perform_document_validation.set_value(False)
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

    if auth is not None:
        auth.install(server)  # every route behind the one gate, before anything is served
    else:
        from dashboards.auth import restrict_components

        restrict_components(server)  # /components never imports a module for a client
    from dashboards.pacing import pace_pages

    pace_pages(server)  # one page built at a time; /health and open pages answered between
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
    # what is built by now lives as long as the process: out of the collector's sight, a
    # full collection during a burst of pages walks only what the pages made
    console.freeze()
    server.start()
    print(f"console at http://{args.address}:{args.port}/", flush=True)
    try:
        loop.start()
    finally:
        if auth is not None:
            auth.stop()
        console.stop()
        print("stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack to the log
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        serve(parse_args(argv))
    except StartError as exc:
        print(f"serve.py: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
