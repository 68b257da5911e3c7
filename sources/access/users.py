"""The users store: one JSON file that administrators edit while the console runs.

Not in the DuckDB store on purpose: the running console holds that file exclusively, and an
administrator must be able to add, disable or reset a user at any time; the console notices
the change by the file's identity (inode, size, mtime) within a second, without a restart.

File format (``var/users.json`` by default, ``$CONSOLE_USERS`` overrides; mode 0600)::

    {"format": "emergency-console-users", "version": 1, "id": "<uuid4>",
     "users": {"zhang.san": {"role": "officer", "jurisdiction": "371302",
                             "display_name": "张三", "password": "$scrypt$ln=15,r=8,p=1$…",
                             "token": null, "disabled": false,
                             "changed_at": "2025-06-01T08:00:00Z"}},
     "log": [{"n": 1, "at": "…", "os_user": "root", "by": "admin.wang",
              "action": "user.add", "user": "zhang.san", "changes": {"role": "officer"}}]}

Passwords are scrypt hashes (:mod:`sources.access.passwords`), wall tokens SHA-256
fingerprints; neither is ever written in plain text. ``log`` lists every change made with
the command line; the console copies new entries into its audit log
(:meth:`sources.access.audit.AuditLog.import_user_log`).

Edit with ``python -m sources.access.users`` (see :mod:`sources.access.users_cli`).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sources.access.jurisdiction import JurisdictionError, check_code
from sources.access.passwords import is_password_hash
from sources.access.policy import ROLES

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
FORMAT, VERSION = "emergency-console-users", 1
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
TOKEN = re.compile(r"^sha256\$[0-9a-f]{64}$")
MAX_DISPLAY_NAME = 64


def default_users_path() -> Path:
    """``$CONSOLE_USERS`` or ``var/users.json`` beside the default store."""
    return Path(os.environ.get("CONSOLE_USERS") or ROOT / "var" / "users.json")


class UsersFileError(ValueError):
    """The users file is missing or malformed (the message names the file and the fault)."""


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_name(name: str) -> str:
    """A user name: 1–64 of ``a-z 0-9 . _ -``, starting with a letter or digit.

    ASCII only, so that a name shown as the actor of an action cannot be HTML or look like
    another name; a person's name in Chinese goes into ``display_name``."""
    if not isinstance(name, str) or not NAME.match(name):
        raise UsersFileError(f"not a valid user name: {name!r} (1-64 of a-z 0-9 . _ -, "
                             "starting with a letter or digit)")
    return name


@dataclass(frozen=True)
class User:
    """One account. ``password``/``token`` hold a hash and a fingerprint, never a secret."""

    name: str
    role: str
    jurisdiction: str
    display_name: str = ""
    password: str | None = None
    token: str | None = None
    disabled: bool = False
    changed_at: str = ""

    def credential(self, kind: str) -> str | None:
        """A fingerprint of the credential a login of ``kind`` used ("password"/"token").

        A session remembers it; a password reset or a revoked token changes it, and every
        session opened with the old one is refused from then on."""
        secret = self.password if kind == "password" else self.token
        if not secret:
            return None
        return hashlib.sha256(f"{kind}:{secret}".encode()).hexdigest()[:32]

    def public(self) -> dict[str, Any]:
        """What may be shown or logged: no hash, no token fingerprint."""
        return {"name": self.name, "role": self.role, "jurisdiction": self.jurisdiction,
                "display_name": self.display_name, "disabled": self.disabled,
                "password_set": bool(self.password), "token_set": bool(self.token),
                "changed_at": self.changed_at}


@dataclass
class UsersData:
    """The parsed file."""

    id: str
    users: dict[str, User]
    log: list[dict]

    def to_json(self) -> dict:
        users = {}
        for name, u in sorted(self.users.items()):
            record = asdict(u)
            record.pop("name")
            users[name] = record
        return {"format": FORMAT, "version": VERSION, "id": self.id, "users": users,
                "log": self.log}

    @property
    def last_n(self) -> int:
        return self.log[-1]["n"] if self.log else 0


def empty() -> UsersData:
    return UsersData(id=str(uuid.uuid4()), users={}, log=[])


def _user(name: str, raw: Any, where: str) -> User:
    try:
        check_name(name)
    except UsersFileError as exc:
        raise UsersFileError(f"{where}: {exc}") from None
    if not isinstance(raw, dict):
        raise UsersFileError(f"{where}: user {name!r} is not an object")
    role = raw.get("role")
    if role not in ROLES:
        raise UsersFileError(f"{where}: user {name!r}: role {role!r} is not one of "
                             f"{', '.join(ROLES)}")
    try:
        jurisdiction = check_code(raw.get("jurisdiction", ""))
    except JurisdictionError as exc:
        raise UsersFileError(f"{where}: user {name!r}: {exc}") from None
    password, token = raw.get("password"), raw.get("token")
    if password is not None and not is_password_hash(password):
        raise UsersFileError(f"{where}: user {name!r}: password is not a $scrypt$ hash "
                             "(set it with `python -m sources.access.users reset`)")
    if token is not None and not (isinstance(token, str) and TOKEN.match(token)):
        raise UsersFileError(f"{where}: user {name!r}: token is not a sha256$ fingerprint")
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise UsersFileError(f"{where}: user {name!r}: disabled must be true or false")
    display = raw.get("display_name", "") or ""
    if not isinstance(display, str) or len(display) > MAX_DISPLAY_NAME:
        raise UsersFileError(f"{where}: user {name!r}: display_name must be text of at most "
                             f"{MAX_DISPLAY_NAME} characters")
    return User(name=name, role=role, jurisdiction=jurisdiction, display_name=display,
                password=password, token=token, disabled=disabled,
                changed_at=str(raw.get("changed_at", "")))


def parse(text: str, where: str = "users file") -> UsersData:
    """Parse and validate the file's text; :class:`UsersFileError` names the first fault."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsersFileError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsersFileError(f"{where}: not a users file (\"format\": \"{FORMAT}\" missing); "
                             "create one with `python -m sources.access.users add`")
    if raw.get("version") != VERSION:
        raise UsersFileError(f"{where}: version {raw.get('version')!r} is not {VERSION}")
    users_raw, log_raw = raw.get("users"), raw.get("log", [])
    if not isinstance(users_raw, dict) or not isinstance(log_raw, list):
        raise UsersFileError(f"{where}: \"users\" must be an object and \"log\" a list")
    users = {name: _user(name, u, where) for name, u in users_raw.items()}
    return UsersData(id=str(raw.get("id") or ""), users=users, log=log_raw)


def read(path: str | Path) -> UsersData:
    """Read the users file at ``path`` (:class:`UsersFileError` if missing or malformed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsersFileError(f"{path}: no users file; create the first administrator with "
                             f"`python -m sources.access.users --file {path} add NAME "
                             "--role admin --jurisdiction 370000`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"{path}: cannot read the users file ({exc})") from None
    return parse(text, str(path))


def write(path: str | Path, data: UsersData) -> None:
    """Write atomically (temporary file, fsync, rename) with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data.to_json(), f, ensure_ascii=False, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def editing(path: str | Path, *, create: bool = False) -> Iterator[UsersData]:
    """Read-modify-write the file under an exclusive lock (two administrators at once lose
    nothing); written only if the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = empty() if create and not path.exists() else read(path)
            yield data
            write(path, data)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_log(data: UsersData, *, action: str, user: str, changes: dict, os_user: str,
               by: str | None) -> dict:
    """Add one change to the file's log (copied into the audit log by the console)."""
    entry = {"n": data.last_n + 1, "at": now_text(), "os_user": os_user, "by": by,
             "action": action, "user": user, "changes": changes}
    data.log.append(entry)
    return entry


def set_user(data: UsersData, user: User) -> None:
    data.users[user.name] = replace(user, changed_at=now_text())


# ---------------------------------------------------------------------- the console's view
class UserDirectory:
    """The users as the running console sees them, re-read when the file changes.

    Parameters
    ----------
    path : path
        The users file. Missing or malformed at construction: :class:`UsersFileError`.
        Malformed later (an editor's half-saved file): the last good copy stays in use,
        the fault is logged and kept in :attr:`last_error`.
    check_interval_s : float
        At most one ``stat`` of the file per interval (1 s: a disabled user is refused
        within about a second).
    clock : callable
        Monotonic seconds (tests pass their own).
    """

    def __init__(self, path: str | Path, *, check_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Callable[[UserDirectory], None]] = []
        self.last_error: str | None = None
        self._data = read(self.path)
        self._identity = self._stat()
        self._checked = clock()
        self._by_token = self._index(self._data)

    @staticmethod
    def _index(data: UsersData) -> dict[str, User]:
        return {u.token: u for u in data.users.values() if u.token}

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def on_reload(self, callback: Callable[[UserDirectory], None]) -> None:
        """Call ``callback(directory)`` after each successful re-read (audit import)."""
        self._listeners.append(callback)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed; return whether it was re-read."""
        now = self._clock()
        if not force and now - self._checked < self.check_interval_s:
            return False
        with self._lock:
            self._checked = now
            identity = self._stat()
            if identity == self._identity and not force:
                return False
            if identity is None:
                self.last_error = f"{self.path}: the users file disappeared; keeping the last one"
                log.error(self.last_error)
                return False
            try:
                data = read(self.path)
            except UsersFileError as exc:
                self.last_error = f"{exc}; keeping the last good users file"
                log.error(self.last_error)
                self._identity = identity  # report once per bad version, not per request
                return False
            self._data, self._identity, self.last_error = data, identity, None
            self._by_token = self._index(data)
        log.info("users file re-read: %d users", len(data.users))
        for callback in self._listeners:
            try:
                callback(self)
            except Exception:  # an audit hiccup must not stop logins
                log.exception("users reload listener failed")
        return True

    def get(self, name: str) -> User | None:
        """The user ``name`` (disabled ones included), or None."""
        self.refresh()
        return self._data.users.get(name) if isinstance(name, str) else None

    def by_token(self, fingerprint: str) -> User | None:
        """The user whose current wall token has ``fingerprint``, or None."""
        self.refresh()
        return self._by_token.get(fingerprint)

    def users(self) -> list[User]:
        self.refresh()
        return sorted(self._data.users.values(), key=lambda u: u.name)

    @property
    def file_id(self) -> str:
        return self._data.id

    def log_since(self, n: int) -> list[dict]:
        """The file's change log after entry ``n``."""
        return [e for e in self._data.log if isinstance(e, dict) and int(e.get("n", 0)) > n]


if __name__ == "__main__":
    from sources.access.users_cli import main

    raise SystemExit(main())
