"""The demo feed as a child process of the console (``python -m data.simulate``).

The console owns it like any other service: started before the ingest that reads it, stopped
after that ingest has written its last batch, never left running (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


class DemoFeedError(RuntimeError):
    """The demo feed did not start (its exit code or a timeout is in the message)."""


class ControlError(RuntimeError):
    """The demo feed's exercise desk refused or could not be reached.

    ``status`` is the HTTP status (0: not reached) and ``message`` what the desk said.
    """

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


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

    # ------------------------------------------------------------------ exercise desk
    def control(self, path: str, *, method: str = "GET", timeout: float = 3.0,
                **params) -> dict:
        """Call the simulator's exercise desk (loopback HTTP on the feed's port).

        ``path`` is ``scenarios`` or ``scenario/status|start|pause|resume|stop``. Raises
        :class:`ControlError` with the desk's own message when it refuses (400: a bad
        scenario, 409: not now) or cannot be reached.
        """
        if not self.url or not self.running:
            raise ControlError(0, "the demo feed is not running")
        return desk_control(self.url, path, method=method, timeout=timeout, **params)


def desk_control(feed_url: str, path: str, *, method: str = "GET", timeout: float = 3.0,
                 **params) -> dict:
    """Call the exercise desk of the simulator serving the feed ``feed_url`` (HTTP on the
    feed's host and port): what :meth:`DemoFeed.control` does for its own process, and a
    distributed centre's serving processes for the feed their ingest node reads."""
    parts = urlsplit(feed_url)
    url = f"http://{parts.hostname}:{parts.port}/{path.lstrip('/')}"
    if params:
        url += "?" + urlencode(params)
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST"
                                     else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
            message = body.get("error") or body.get("message") or str(body)
        except ValueError:
            message = exc.reason
        raise ControlError(exc.code, str(message)) from None
    except (OSError, ValueError) as exc:
        raise ControlError(0, f"{type(exc).__name__}: {exc}") from None
