"""Start a centre: its ingest node, N serving processes and nginx in front of them.

``python -m sources.distributed.centre --centres centres.json --centre 370102 --processes 3
--port 8080 --registry var/console.duckdb --feed ws://gateway/feed --var var/370102 --nginx``

1. creates the centre's streams and snapshot bucket on its log servers (idempotent) and, the
   first time, publishes the registry store as the first view snapshot (position 0);
2. starts the ingest node (``python -m sources.distributed.ingest``);
3. starts ``--processes`` serving consoles (``serve.py --distributed``) on consecutive ports
   from ``--first-port``, each on its own view store under ``--var``; the first also
   publishes a snapshot of its view every 5 minutes (new processes start from it);
4. writes ``nginx.conf`` (sticky routing by a cookie, websockets upgraded, a dead process
   skipped) and, with ``--nginx``, runs Debian's nginx on it;
5. restarts any of its processes that dies (a serving process resumes from its own store's
   position in the log), until SIGTERM or Ctrl-C, then stops each by its PID.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .ingest import prepare_registry
from .log import EventLog
from .topology import Topology

log = logging.getLogger("console.distributed")
ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
COOKIE = "console_node"


def nginx_config(ports: list[int], *, listen: str, prefix: Path) -> str:
    """An nginx configuration for the serving processes on ``ports`` (see docs/DISTRIBUTED.md).

    Sticky routing: the first response sets a cookie with a random key (``$request_id``);
    every later request of that browser, its websockets included, hashes to the same
    process. A process that does not answer is skipped (``proxy_next_upstream``) and the
    page's clock, polling ``/health``, reloads it onto another.
    """
    upstream = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=3s;"
                         for p in ports)
    temp = "\n".join(f"    {k}_temp_path {prefix}/tmp/{k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# written by python -m sources.distributed.centre
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}
    map $cookie_{COOKIE} $console_node {{ "" $request_id; default $cookie_{COOKIE}; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    upstream console {{
        hash $console_node consistent;
{upstream}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://console;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 1s;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout http_502 http_503;
            add_header Set-Cookie "{COOKIE}=$console_node; Path=/; HttpOnly; SameSite=Lax" always;
        }}
    }}
}}
"""


def publish_first_snapshot(event_log: EventLog, topology: Topology, code: str,
                           registry: str | Path) -> bool:
    """The registry as the centre's first view snapshot, unless one is published (True:
    published now)."""
    event_log.ensure_streams(topology, code)
    probe = Path(tempfile.mkdtemp(prefix="snap-probe-"))
    try:
        if event_log.get_snapshot(topology[code].snapshots, probe / "x.duckdb"):
            return False
        first = prepare_registry(registry, probe / "registry.duckdb")
        event_log.put_snapshot(topology[code].snapshots, first)
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class Centre:
    """The processes of one centre (module docstring), each started and stopped by PID."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.var = Path(args.var)
        self.var.mkdir(parents=True, exist_ok=True)
        self.ports = [args.first_port + i for i in range(args.processes)]
        self.procs: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, tuple[list[str], dict]] = {}
        self._stop = threading.Event()

    def command_of(self, name: str) -> tuple[list[str], dict]:
        a, env = self.args, dict(os.environ)
        if name == "ingest":
            cmd = [sys.executable, "-m", "sources.distributed.ingest", "--centres", a.centres,
                   "--centre", a.centre, "--db", str(self.var / "ingest.duckdb"),
                   "--registry", a.registry]
            for url in a.feed:
                cmd += ["--feed", url]
            return cmd, env
        i = int(name.split("-")[1])
        host = a.listen.rsplit(":", 1)
        cmd = [sys.executable, str(ROOT / "serve.py"), "--distributed", a.centres,
               "--centre", a.centre, "--db", str(self.var / f"serve-{i}.duckdb"),
               "--port", str(self.ports[i]), "--address", "127.0.0.1",
               "--allow-websocket-origin", a.listen,
               "--allow-websocket-origin", f"localhost:{host[-1]}", *a.serve_args]
        if a.drill_feed:
            cmd += ["--drill-feed", a.drill_feed]
        if i == 0:
            env["CONSOLE_VIEW_SNAPSHOT_S"] = str(a.snapshot_every_s)
        return cmd, env

    def spawn(self, name: str) -> None:
        if name not in self.commands:
            self.commands[name] = self.command_of(name)
        cmd, env = self.commands[name]
        out = open(self.var / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)
        out.close()
        log.info("started %s (pid %d)", name, self.procs[name].pid)

    def start(self) -> Centre:
        a = self.args
        topology = Topology.load(a.centres)
        event_log = EventLog(servers=list(topology[a.centre].servers)).start()
        try:
            publish_first_snapshot(event_log, topology, a.centre, a.registry)
        finally:
            event_log.stop()
        self.spawn("ingest")
        for i in range(a.processes):
            self.spawn(f"serve-{i}")
        conf = self.var / "nginx.conf"
        (self.var / "tmp").mkdir(exist_ok=True)
        conf.write_text(nginx_config(self.ports, listen=a.listen, prefix=self.var.resolve()),
                        encoding="utf-8")
        if a.nginx:
            if NGINX is None:
                raise SystemExit("nginx is not installed (apt-get install -y nginx)")
            self.commands["nginx"] = ([NGINX, "-p", str(self.var.resolve()), "-c",
                                       str(conf.resolve()), "-g", "daemon off;"], dict(os.environ))
            self.spawn("nginx")
        return self

    def supervise(self) -> None:
        """Restart whatever died, until :meth:`stop`."""
        while not self._stop.wait(0.5):
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    log.warning("%s exited with %s: restarting it", name, proc.returncode)
                    self.spawn(name)

    def stop(self) -> None:
        self._stop.set()
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Start a centre: ingest node, N serving "
                                "processes, nginx (docs/DISTRIBUTED.md)")
    p.add_argument("--centres", required=True, help="the centres file (JSON)")
    p.add_argument("--centre", required=True, help="this centre's code")
    p.add_argument("--processes", type=int, default=3, help="serving processes (default 3)")
    p.add_argument("--first-port", type=int, default=5101, help="port of the first process")
    p.add_argument("--listen", default="127.0.0.1:8080", help="nginx's address:port")
    p.add_argument("--registry", required=True, help="a console store with the registries")
    p.add_argument("--feed", action="append", default=[], help="feed URL (repeatable)")
    p.add_argument("--drill-feed", default=None, metavar="URL",
                   help="the --feed whose simulator plays exercises (the /drills desk of "
                        "every serving process starts and stops them there)")
    p.add_argument("--var", default="var/centre", help="folder of the stores and logs")
    p.add_argument("--nginx", action="store_true", help="run nginx on the written config")
    p.add_argument("--snapshot-every-s", type=float, default=300.0,
                   help="seconds between view snapshots published by the first process")
    p.add_argument("serve_args", nargs="*", help="after --: more serve.py options "
                   "(e.g. --users users.json --cookie-secret-file secret)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    centre = Centre(parse_args(argv)).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: centre._stop.set())
    print(f"centre {centre.args.centre}: http://{centre.args.listen}/ over "  # noqa: T201
          f"{len(centre.ports)} processes", flush=True)
    try:
        centre.supervise()
    finally:
        centre.stop()
        time.sleep(0)


if __name__ == "__main__":
    main()
