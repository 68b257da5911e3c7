"""Everything access needs, read and checked before the console opens or serves anything.

``load_access_config(users_file=..., secret_file=...)`` raises :class:`AccessConfigError`
with one line that says what is wrong and how to fix it; ``serve.py`` prints it and exits
non-zero. Secrets come from a file or an environment variable, never from the command line
(``ps`` shows every process's arguments to every local user).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sources.access.policy import Access
from sources.access.sessions import LoginThrottle, SessionStore
from sources.access.users import UserDirectory, UsersFileError

log = logging.getLogger(__name__)

SECRET_ENV = "CONSOLE_COOKIE_SECRET"
MIN_SECRET = 32


class AccessConfigError(ValueError):
    """A users file or secret the console cannot start with (one line, with the fix)."""


@dataclass
class AccessConfig:
    """The checked access settings of one console process."""

    users: UserDirectory
    secret: str
    access: Access = field(default_factory=Access)
    sessions: SessionStore = field(default_factory=SessionStore)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    login_lifetime_s: float = 12 * 3600.0  # one duty shift
    wall_lifetime_s: float = 30 * 86400.0  # an unattended wall re-logs by its token URL
    trusted_proxies: tuple = ()
    public_paths: tuple[str, ...] = ()  # regexes of routes served without login (public CAP)
    lang: str = "zh"

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is a configured reverse proxy (its X-Forwarded-* count)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def read_secret(secret_file: str | Path | None, env: str = SECRET_ENV) -> str:
    """The cookie secret from ``secret_file`` or, without one, the environment variable."""
    if secret_file is not None:
        path = Path(secret_file)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise AccessConfigError(f"{path}: no cookie secret file; create one with "
                                    f"`python -m sources.access.users secret --out {path}`"
                                    ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AccessConfigError(f"{path}: cannot read the cookie secret ({exc})") from None
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s is readable by other users (chmod 600 it)", path)
        where = str(path)
    else:
        text = os.environ.get(env, "").strip()
        where = f"${env}"
        if not text:
            raise AccessConfigError(f"no cookie secret: give a secret file or set ${env} "
                                    "(`python -m sources.access.users secret --out FILE`)")
    if len(text) < MIN_SECRET or "\n" in text:
        raise AccessConfigError(f"{where}: the cookie secret must be one line of at least "
                                f"{MIN_SECRET} characters")
    return text


def _networks(items: Iterable[str]) -> tuple:
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise AccessConfigError(f"trusted proxy {item!r} is not an address or network "
                                    "(e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return tuple(out)


def load_access_config(*, users_file: str | Path, secret_file: str | Path | None = None,
                       secret_env: str = SECRET_ENV, sessions_file: str | Path | None = None,
                       login_hours: float = 12.0, wall_days: float = 30.0,
                       user_failures: int = 5, address_failures: int = 20,
                       window_minutes: float = 15.0, lock_minutes: float = 15.0,
                       trusted_proxies: Iterable[str] = (), public_paths: Iterable[str] = (),
                       access: Access | None = None, lang: str = "zh",
                       clock: Callable[[], float] = time.time) -> AccessConfig:
    """Read and check the users file, the cookie secret and the login settings.

    Parameters
    ----------
    users_file : path
        The users file (see :mod:`sources.access.users`).
    secret_file : path, optional
        A file holding the cookie secret; without one, ``$CONSOLE_COOKIE_SECRET``.
    sessions_file : path, optional
        Where logins persist across restarts (hashes only); None: in memory.
    login_hours, wall_days : float
        Lifetime of a password login and of a wall's token login.
    user_failures, address_failures, window_minutes, lock_minutes
        Lockout: that many failed logins of one name (or from one address) within the
        window lock it for ``lock_minutes``.
    trusted_proxies : addresses or networks
        Reverse proxies whose ``X-Forwarded-For``/``-Proto`` are believed.
    public_paths : regexes
        Routes served without login (e.g. ``r"/cap/.*"`` when CAP is public).

    Raises
    ------
    AccessConfigError
        One line naming the file or setting at fault.
    """
    if not 0 < login_hours <= 24 * 7:
        raise AccessConfigError("login lifetime must be between 0 and 168 hours")
    if not 0 < wall_days <= 366:
        raise AccessConfigError("wall login lifetime must be between 0 and 366 days")
    if min(user_failures, address_failures) < 1 or min(window_minutes, lock_minutes) <= 0:
        raise AccessConfigError("lockout settings must be positive")
    secret = read_secret(secret_file, secret_env)
    try:
        users = UserDirectory(users_file)
    except UsersFileError as exc:
        raise AccessConfigError(str(exc)) from None
    if not any(not u.disabled for u in users.users()):
        raise AccessConfigError(f"{users_file}: no enabled user; add one with "
                                "`python -m sources.access.users add`")
    for pattern in public_paths:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise AccessConfigError(f"public path {pattern!r} is not a regex ({exc})") from None
    return AccessConfig(
        users=users, secret=secret, access=access or Access(),
        sessions=SessionStore(sessions_file, clock=clock),
        throttle=LoginThrottle(user_failures=user_failures, address_failures=address_failures,
                               window_s=window_minutes * 60, lock_s=lock_minutes * 60,
                               clock=clock),
        login_lifetime_s=login_hours * 3600, wall_lifetime_s=wall_days * 86400,
        trusted_proxies=_networks(trusted_proxies), public_paths=tuple(public_paths),
        lang=lang)
