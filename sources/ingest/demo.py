"""The demo feed as a child process of the console (``python -m data.simulate``).

The console owns it like any other service: started before the ingest that reads it, stopped
after that ingest has written its last batch, never left running (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


class DemoFeedError(RuntimeError):
    """The demo feed did not start (its exit code or a timeout is in the message)."""


class DemoFeed:
    """``python -m data.simulate`` in a child process, serving the feed protocol on loopback.

    Parameters
    ----------
    db : path
        The store the simulator reads its registry from (it closes it before READY, so the
        console can open it read-write afterwards).
    port : int
        The port to serve on (0: any free one).
    speed : float
        Simulated seconds per wall-clock second.
    extra_args : list of str
        More options for the simulator (e.g. a scenario to play).
    """

    def __init__(self, db: str | Path, *, port: int = 0, speed: float = 1.0,
                 extra_args: list[str] | None = None, start_timeout_s: float = 120.0):
        self.db, self.port, self.speed = Path(db), int(port), float(speed)
        self.extra_args = list(extra_args or [])
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None

    def start(self) -> DemoFeed:
        """Start the simulator and wait until it says READY (raises :class:`DemoFeedError`)."""
        if self.proc is not None:
            return self
        cmd = [sys.executable, "-m", "data.simulate", "--db", str(self.db), "--port",
               str(self.port), "--speed", str(self.speed), *self.extra_args]
        self.proc = proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + self.start_timeout_s
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                code = proc.wait()
                self.proc = None
                raise DemoFeedError(f"the demo feed exited with code {code}")
            if line.startswith("READY "):
                self.url = line.split()[1]
                # keep draining its stdout so it never blocks on a full pipe
                threading.Thread(target=proc.stdout.read, name="demo-feed-stdout",
                                 daemon=True).start()
                return self
        self.stop()
        raise DemoFeedError(f"the demo feed did not start within {self.start_timeout_s:.0f} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the demo feed ignored SIGTERM for %.0f s: killed", timeout)
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        """End it now (the stop watchdog's last resort)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def status(self) -> dict:
        return {"running": self.running, "url": self.url,
                "pid": None if self.proc is None else self.proc.pid}
