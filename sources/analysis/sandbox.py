"""Sandbox processes for analysts' queries: the console side of the pool.

A :class:`Sandbox` keeps up to ``workers`` processes of
:mod:`sources.analysis.sandbox_worker`, started on demand, each running one query at a time
on a read-only, locked-down DuckDB instance under OS limits. The console process never runs
an analyst's SQL itself: whatever a query does — read a file, change a setting, exhaust
memory, crash DuckDB — happens in a process that holds no secret, no live store and no
open page, and that the console kills and replaces when needed (cancel, time limit, crash).

What comes back is bounded here too: an answer larger than the byte limit allows is not
read (the process is killed), so a misbehaving sandbox cannot grow the console either.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import param
import pyarrow as pa

WORKER = Path(__file__).with_name("sandbox_worker.py")
#: Seconds a new sandbox process may take to say it is ready (imports on a busy machine).
START_TIMEOUT_S = 60.0
#: Seconds past a query's time limit before the console kills its process (the engine's own
#: limit answers first; this is the backstop).
GRACE_S = 3.0
#: A process holding more than this share of its address-space limit after a query, or
#: that ran out of memory, is replaced by a fresh one (its allocators keep what they mapped).
RECYCLE_AT = 0.6
#: Allocator settings that keep a sandbox's address space near what it uses, so that its
#: RLIMIT_AS bounds memory rather than reservations: by default glibc maps 64 MiB per thread
#: arena, OpenBLAS (through numpy) buffers per core and Arrow's jemalloc its own arenas —
#: 2.0 GiB of address space for ``SELECT 1``; 0.4 GiB with these.
SMALL = {"MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
         "ARROW_DEFAULT_MEMORY_POOL": "system"}
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
#: Environment variables passed to a sandbox: none that could hold a secret.
PASS_ENV = ("PATH", "LD_LIBRARY_PATH", "TZ")


@dataclass
class SandboxAnswer:
    """What a sandbox process answered (or why it did not)."""

    status: str                      # ok / refused / error / timeout / cancelled
    code: str = ""
    message: str = ""
    table: pa.Table | None = None
    cut: str = ""                    # '', 'rows' or 'bytes'
    bytes: int = 0
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Ticket:
    """One query's place in the sandbox: :meth:`cancel` stops it wherever it is."""

    def __init__(self):
        self.cancelled = False
        self._lock = threading.Lock()
        self._worker: _Worker | None = None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            worker = self._worker
        if worker is not None:
            worker.kill()

    def _attach(self, worker: _Worker | None) -> bool:
        with self._lock:
            self._worker = worker
            return not self.cancelled


class _Died(Exception):
    """The sandbox process ended (killed, crashed or out of limits) before answering."""


class _Worker:
    """One sandbox process and its pipes."""

    def __init__(self, settings: dict, workdir: str):
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env.update(HOME=workdir, TMPDIR=workdir, LANG="C.UTF-8", LC_ALL="C.UTF-8", **SMALL)
        self.proc = subprocess.Popen(
            [sys.executable, "-E", "-s", "-B", str(WORKER), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=workdir, env=env,
            close_fds=True, start_new_session=True)
        try:  # a large result passes in fewer, larger reads (Linux; 1 MiB is the default cap)
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        self.killed_by = ""  # 'timeout' / 'cancel' / 'stop' / 'size' when the console killed it
        self.worn = False    # holds too much memory: replace it after this query
        self._timer: threading.Timer | None = None
        head, _ = self._read(START_TIMEOUT_S, 0)
        if not head.get("ready"):
            self.kill()
            raise _Died(f"the sandbox did not start: {head}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, why: str = "cancel") -> None:
        if not self.killed_by:
            self.killed_by = why
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        self.kill("stop")
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not block
            pass

    def _exactly(self, n: int) -> bytes:
        data = self.proc.stdout.read(n)
        if data is None or len(data) < n:
            raise _Died("end of output")
        return data

    def _read(self, timeout_s: float, max_payload: int) -> tuple[dict, bytes]:
        timer = threading.Timer(timeout_s, self.kill, args=("timeout",))
        timer.daemon = True
        timer.start()
        try:
            (n,) = struct.unpack(">I", self._exactly(4))
            if n > 1 << 20:
                self.kill("size")
                raise _Died("header too large")
            head = json.loads(self._exactly(n))
            (size,) = struct.unpack(">Q", self._exactly(8))
            if size > max_payload:
                self.kill("size")
                raise _Died(f"answer of {size} bytes")
            payload = self._exactly(size) if size else b""
        finally:
            timer.cancel()
        return head, payload

    def ask(self, request: dict, timeout_s: float, max_payload: int) -> tuple[dict, bytes]:
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise _Died(str(exc)) from exc
        return self._read(timeout_s, max_payload)


def _ended(worker: _Worker) -> SandboxAnswer:
    """The answer for a sandbox process that ended before answering."""
    try:
        code = worker.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        code = None
    why = worker.killed_by
    if why == "cancel":
        return SandboxAnswer("cancelled", message="cancelled")
    if why == "timeout" or code == -signal.SIGXCPU:
        return SandboxAnswer("timeout", message="the sandbox was stopped at its time limit")
    if why == "size":
        return SandboxAnswer("refused", "sandbox", "the answer was larger than the byte limit")
    if why == "stop":
        return SandboxAnswer("refused", "sandbox", "the console is stopping")
    what = (signal.Signals(-code).name if isinstance(code, int) and code < 0
            else f"exit status {code}")
    return SandboxAnswer("refused", "sandbox", what, extra={"unexplained": True})


class Sandbox(param.Parameterized):
    """A pool of sandbox processes that run analysts' queries.

    The console owns one and stops it with the other services; notebooks and tests without a
    console use :meth:`shared`. Each process runs one query at a time; a query waits for a
    free one at most its time limit.
    """

    workers = param.Integer(default=2, bounds=(1, 32),
                            doc="Sandbox processes at most (queries running at once).")
    threads = param.Integer(default=1, bounds=(1, 64), doc="DuckDB threads per query.")
    memory_limit = param.String(default="512MB",
                                doc="DuckDB memory_limit of each query (no spill to disk).")
    address_space_mb = param.Integer(
        default=1536, bounds=(0, None),
        doc="RLIMIT_AS of each process in MiB (0: none): the hard bound on its memory. A "
            "process maps about 0.4 GiB before its first query, and its allocators keep "
            "freed memory mapped: one past RECYCLE_AT of this after a query is replaced.")
    nice = param.Integer(default=10, bounds=(0, 19),
                         doc="Scheduling priority below the console's (ingest, board).")
    started = param.Integer(default=0, doc="Sandbox processes started so far (read-only).")

    _shared: ClassVar[Sandbox | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, **params):
        super().__init__(**params)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._count = 0
        self._stopped = False
        self._workdir = tempfile.mkdtemp(prefix="console-sandbox-")

    @classmethod
    def shared(cls) -> Sandbox:
        """The process-wide sandbox for runners given none (stopped at exit)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
                atexit.register(cls._shared.stop)
            return cls._shared

    def settings(self) -> dict:
        """What each process is started with (its OS limits)."""
        return {"address_space": self.address_space_mb * 2**20, "nice": self.nice}

    def pids(self) -> list[int]:
        """Process ids of the sandbox processes now running."""
        with self._cond:
            return [w.proc.pid for w in self._all if w.alive]

    # ------------------------------------------------------------------ workers
    def _acquire(self, deadline: float, ticket: Ticket) -> _Worker | SandboxAnswer:
        with self._cond:
            while True:
                if self._stopped:
                    return SandboxAnswer("refused", "sandbox", "the console is stopping")
                if ticket.cancelled:
                    return SandboxAnswer("cancelled", message="cancelled")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._discard(worker)
                if self._count < self.workers:
                    self._count += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return SandboxAnswer("refused", "busy", str(self.workers))
                self._cond.wait(min(left, 0.5))
        try:
            worker = _Worker(self.settings(), self._workdir)
        except (OSError, _Died) as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            return SandboxAnswer("refused", "sandbox", f"could not start: {exc}")
        with self._cond:
            self._all.add(worker)
            self.started += 1
            if self._stopped:
                worker.close()
        return worker

    def _discard(self, worker: _Worker) -> None:
        """Forget a process that ended or was killed (call with the lock held)."""
        worker.close()
        if worker in self._all:
            self._all.discard(worker)
            self._count -= 1
        self._cond.notify()

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive and not worker.killed_by and not worker.worn and not self._stopped:
                self._idle.append(worker)
                self._cond.notify()
            else:
                self._discard(worker)

    # ------------------------------------------------------------------ running
    def run(self, request: dict, *, time_limit_s: float, byte_limit: int,
            ticket: Ticket | None = None) -> SandboxAnswer:
        """Run one request (see :mod:`sources.analysis.sandbox_worker`) in a sandbox process.

        Parameters
        ----------
        request : dict
            ``sql``, ``db``, ``row_limit``, ``timezone``, ``guard``; the limits are added here.
        time_limit_s : float
            The query's time limit (waiting for a free process counts too).
        byte_limit : int
            At most this many bytes of result come back.
        ticket : Ticket, optional
            Lets another thread cancel the query.
        """
        ticket = ticket or Ticket()
        deadline = time.monotonic() + time_limit_s
        answer = self._run_once(request, deadline, time_limit_s, byte_limit, ticket)
        if answer.code == "sandbox" and answer.extra.get("unexplained"):
            # A process that died on its own may have died idle (killed from outside, or out
            # of CPU while opening the next instance): once more on a fresh one. A query that
            # crashes its process crashes the second one too, and that is its answer.
            answer = self._run_once(request, deadline, time_limit_s, byte_limit, ticket)
        answer.extra.pop("unexplained", None)
        return answer

    def _run_once(self, request: dict, deadline: float, time_limit_s: float, byte_limit: int,
                  ticket: Ticket) -> SandboxAnswer:
        got = self._acquire(deadline, ticket)
        if isinstance(got, SandboxAnswer):
            return got
        worker = got
        full = dict(request, time_limit_s=time_limit_s, byte_limit=int(byte_limit),
                    threads=self.threads, memory_limit=self.memory_limit)
        max_payload = int(byte_limit) + int(byte_limit) // 8 + (1 << 20)
        try:
            if not ticket._attach(worker):
                worker.kill("cancel")
                raise _Died("cancelled")
            head, payload = worker.ask(full, time_limit_s + GRACE_S, max_payload)
        except _Died:
            answer = _ended(worker)
        else:
            answer = SandboxAnswer(
                status=str(head.get("status", "error")), code=str(head.get("code", "")),
                message=str(head.get("message", "")), cut=str(head.get("cut", "")),
                bytes=int(head.get("bytes", 0) or 0),
                elapsed_s=float(head.get("elapsed_s", 0.0)))
            if payload:
                answer.table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
            limit = self.address_space_mb * 2**20
            worker.worn = answer.code == "memory" or bool(
                limit and int(head.get("address_space", 0) or 0) > RECYCLE_AT * limit)
        finally:
            ticket._attach(None)
            self._release(worker)
        return answer

    def stop(self) -> None:
        """Kill every sandbox process (queries running get a 'stopping' answer)."""
        with self._cond:
            self._stopped = True
            workers = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill("stop")
        for worker in workers:
            worker.close()
        shutil.rmtree(self._workdir, ignore_errors=True)
