"""Server-side logins and the login throttle (no web framework here: plain, clocked logic).

A login is a random 256-bit session id that the browser keeps in a signed, HttpOnly cookie;
the server keeps only its SHA-256, with the user, the credential it was opened with and its
expiry. Logging out deletes the entry, so the old cookie is worth nothing; a password reset,
a revoked wall token or a disabled account refuse every session opened before.
Optionally the entries persist in a JSON file (hashes only), so a restart of the console
does not send the unattended wall back to a login page it cannot type into.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def session_hash(session_id: str) -> str:
    """What the server stores and pages see of a session id."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass
class Session:
    """One login."""

    user: str
    kind: str  # "password" or "token"
    credential: str  # fingerprint of the credential used (User.credential)
    address: str
    created: float
    expires: float


@dataclass(frozen=True)
class Principal:
    """The signed-in user of a request or a page: who, as what, where, by which login."""

    name: str
    role: str
    jurisdiction: str
    display_name: str = ""
    session: str = ""  # session_hash of the login
    kind: str = "password"
    address: str = ""

    def public(self) -> dict:
        """What a page may carry (no session secret: the hash cannot be turned into one)."""
        return asdict(self)


class SessionStore:
    """The open logins of the console.

    Parameters
    ----------
    path : path, optional
        JSON file to persist sessions in (hashes only); None keeps them in memory.
    clock : callable
        Wall-clock seconds (tests pass their own).
    max_sessions : int
        Oldest logins are dropped beyond this many (a flood of logins cannot fill memory).
    """

    def __init__(self, path: str | Path | None = None, *, clock: Callable[[], float] = time.time,
                 max_sessions: int = 10_000):
        self.path = Path(path) if path else None
        self._clock = clock
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            now = self._clock()
            for key, s in raw.items():
                session = Session(**s)
                if session.expires > now:
                    self._sessions[key] = session
        except (OSError, ValueError, TypeError) as exc:  # a damaged file: everybody logs in again
            log.warning("%s: sessions not restored (%r)", self.path, exc)
            self._sessions.clear()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({k: asdict(s) for k, s in self._sessions.items()}, f)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def create(self, *, user: str, kind: str, credential: str, address: str,
               lifetime_s: float) -> str:
        """Open a login; return the session id (goes only into the signed cookie)."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._sessions[session_hash(session_id)] = Session(
                user=user, kind=kind, credential=credential, address=address,
                created=now, expires=now + lifetime_s)
            self._expire(now)
            while len(self._sessions) > self.max_sessions:
                del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].created)]
            self._save()
        return session_id

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]

    def get(self, key: str) -> Session | None:
        """The live session with hash ``key``, or None (expired ones are removed)."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires <= self._clock():
                del self._sessions[key]
                self._save()
                return None
            return session

    def revoke(self, key: str) -> Session | None:
        """End the login with hash ``key``; return it (None if there was none)."""
        with self._lock:
            session = self._sessions.pop(key, None)
            if session is not None:
                self._save()
            return session

    def revoke_user(self, user: str) -> int:
        """End every login of ``user``; return how many."""
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.user == user]
            for key in keys:
                del self._sessions[key]
            if keys:
                self._save()
            return len(keys)

    def items(self) -> list[tuple[str, Session]]:
        with self._lock:
            return list(self._sessions.items())


# ---------------------------------------------------------------------- throttle
@dataclass
class _Key:
    failures: deque
    locked_until: float = 0.0
    refused_while_locked: int = 0


@dataclass(frozen=True)
class Lock:
    """A lockout in force: on what (``"user"``/``"address"``), which value, until when."""

    on: str
    value: str
    until: float
    first_refusal: bool  # the first refused attempt of this lockout (recorded in the audit)


class LoginThrottle:
    """Rate limit and temporary lockout of logins, per user name and per address.

    ``user_failures`` failed logins of one name within ``window_s`` lock that name for
    ``lock_s``; ``address_failures`` from one address lock the address. While locked, even
    the right password is refused. A success clears the name's failures but not the
    address's (one valid account must not reset an address that guesses others).
    """

    def __init__(self, *, user_failures: int = 5, address_failures: int = 20,
                 window_s: float = 900.0, lock_s: float = 900.0,
                 clock: Callable[[], float] = time.time, max_keys: int = 100_000):
        self.user_failures, self.address_failures = user_failures, address_failures
        self.window_s, self.lock_s = window_s, lock_s
        self._clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], _Key] = {}

    def _key(self, on: str, value: str) -> _Key:
        key = self._keys.get((on, value))
        if key is None:
            if len(self._keys) >= self.max_keys:
                self._prune(self._clock())
            key = self._keys[(on, value)] = _Key(deque())
        return key

    def _prune(self, now: float) -> None:
        for k in [k for k, v in self._keys.items()
                  if v.locked_until <= now and (not v.failures or v.failures[-1] <= now - self.window_s)]:
            del self._keys[k]
        while len(self._keys) >= self.max_keys:  # still full: drop the oldest entries
            del self._keys[next(iter(self._keys))]

    def locked(self, name: str | None, address: str) -> Lock | None:
        """The lockout that refuses a login of ``name`` from ``address`` now, if any
        (``name`` None: a wall-token login, limited by address only)."""
        now = self._clock()
        with self._lock:
            for on, value in (("user", name), ("address", address)):
                if value is None:
                    continue
                key = self._keys.get((on, value))
                if key is not None and key.locked_until > now:
                    key.refused_while_locked += 1
                    return Lock(on, value, key.locked_until, key.refused_while_locked == 1)
        return None

    def failure(self, name: str | None, address: str) -> list[Lock]:
        """Count a failed login; return the lockouts it started (usually none)."""
        now = self._clock()
        started = []
        with self._lock:
            for on, value, limit in (("user", name, self.user_failures),
                                     ("address", address, self.address_failures)):
                if value is None:
                    continue
                key = self._key(on, value)
                while key.failures and key.failures[0] <= now - self.window_s:
                    key.failures.popleft()
                key.failures.append(now)
                if len(key.failures) >= limit and key.locked_until <= now:
                    key.locked_until = now + self.lock_s
                    key.failures.clear()
                    key.refused_while_locked = 0
                    started.append(Lock(on, value, key.locked_until, False))
        return started

    def remaining(self, lock: Lock) -> float:
        """Seconds until ``lock`` ends."""
        return max(0.0, lock.until - self._clock())

    def success(self, name: str) -> None:
        """A successful login clears the name's failures."""
        with self._lock:
            self._keys.pop(("user", name), None)
