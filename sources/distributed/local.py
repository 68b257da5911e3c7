"""Log servers on one machine: a centre's NATS JetStream cluster on loopback, and a relay.

For a demonstration, the tests and the benchmarks: :class:`LogServers` writes the
configuration of one server or a cluster of three (``nats-server`` from Debian), starts
them, kills one (``kill -9``) and starts it again on its own store; :func:`write_centres`
writes the centres file that names them; :class:`Relay` is a TCP relay that a leaf-node
link goes through, so a test can cut the link and restore it. Every process is stopped by
its PID.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def write_centres(path: str | Path, centres: dict[str, dict]) -> Path:
    """Write a centres file (``{"centres": centres}``, see :mod:`.topology`) at ``path``."""
    path = Path(path)
    path.write_text(json.dumps({"centres": centres}), encoding="utf-8")
    return path


class LogServers:
    """``n`` (1 or 3) NATS JetStream servers of one centre (domain ``c<code>``) on loopback.

    ``leaf_port``: the first server accepts leaf nodes (children centres) there, and tells
    them to reconnect to ``leaf_advertise`` (default: itself);
    ``parent``: URL of the parent centre's leaf-node port (this centre is a leaf of it).
    """

    def __init__(self, directory: str | Path, code: str, *, n: int = 1,
                 parent: str | None = None, leaf_port: int | None = None,
                 leaf_advertise: str | None = None):
        if NATS_SERVER is None:
            raise FileNotFoundError("nats-server is not installed (apt-get install nats-server)")
        self.dir = Path(directory) / f"log-{code}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.code, self.n, self.parent = code, n, parent
        self.ports = [free_port() for _ in range(n)]
        self.cluster_ports = [free_port() for _ in range(n)] if n > 1 else []
        self.leaf_port, self.leaf_advertise = leaf_port, leaf_advertise
        self.procs: list[subprocess.Popen | None] = [None] * n

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    def config(self, i: int) -> Path:
        lines = [f"server_name: \"c{self.code}-{i}\"", f"listen: 127.0.0.1:{self.ports[i]}",
                 f'jetstream {{ store_dir: "{self.dir / f"js{i}"}", domain: c{self.code} }}']
        if self.n > 1:
            routes = ", ".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports)
                               if j != i)
            lines.append(f"cluster {{ name: c{self.code}, listen: 127.0.0.1:"
                         f"{self.cluster_ports[i]}, routes: [{routes}] }}")
        leaf = []
        if self.leaf_port and i == 0:
            leaf.append(f"listen: 127.0.0.1:{self.leaf_port}")
            if self.leaf_advertise:  # leaves reconnect to what is advertised: a relay
                leaf.append(f'advertise: "{self.leaf_advertise}"')
        if self.parent:
            leaf.append(f'remotes: [ {{ url: "{self.parent}" }} ], reconnect: 1')
        if leaf:
            lines.append(f"leafnodes {{ {', '.join(leaf)} }}")
        path = self.dir / f"server{i}.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self, i: int | None = None) -> LogServers:
        for j in ([i] if i is not None else range(self.n)):
            log = open(self.dir / f"server{j}.log", "ab")
            self.procs[j] = subprocess.Popen([NATS_SERVER, "-c", str(self.config(j))],
                                             stdout=log, stderr=subprocess.STDOUT)
            log.close()
        for j in ([i] if i is not None else range(self.n)):
            wait_port(self.ports[j])
        return self

    def kill(self, i: int) -> None:
        """``kill -9`` one server."""
        proc = self.procs[i]
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            self.procs[i] = None

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)
                self.procs[i] = None


class Relay:
    """A TCP relay 127.0.0.1:``port`` → ``target``: :meth:`cut` drops every connection and
    refuses new ones, :meth:`restore` accepts them again."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", self.port))
        self._srv.listen(16)
        self._srv.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._srv.accept()
            except OSError:
                continue
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            a.settimeout(None)
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
        self._running = False
        self._srv.close()
        self._thread.join(2)
