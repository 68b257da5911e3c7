"""``python -m sources.access.users``: add, disable, enable, reset, list users; roles; tokens.

Passwords are read from the terminal (asked twice, not echoed) or, when stdin is not a
terminal, from its first line — never from the command line, where ``ps`` shows them.
Every change is written to the file's log with the operating-system user (and ``--by``, the
console administrator acting); the running console copies it into its audit log.

Examples::

    python -m sources.access.users add wang.admin --role admin --jurisdiction 370000
    python -m sources.access.users add li.county --role officer --jurisdiction 371302 \\
        --display-name 李四 < password.txt
    python -m sources.access.users token wall-hall-1 --base https://console.example:5006
    python -m sources.access.users disable li.county
    python -m sources.access.users secret --out var/cookie.secret
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from sources.access import users as store
from sources.access.jurisdiction import JurisdictionError, check_code, known_codes
from sources.access.passwords import hash_password, new_token, token_fingerprint
from sources.access.policy import ROLES, WALL


class CliError(Exception):
    pass


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def read_password(prompt: str = "password") -> str:
    """From the terminal (twice) or the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"{prompt}: ")
        if getpass.getpass(f"{prompt} again: ") != first:
            raise CliError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise CliError("no password on stdin")
    return line.rstrip("\r\n")


def check_jurisdiction(code: str, db: str | None) -> str:
    """Six digits, and known to the store's registry when one can be opened."""
    try:
        code = check_code(code)
    except JurisdictionError as exc:
        raise CliError(str(exc)) from None
    from sources.store.snapshot import default_db, latest_snapshot
    from sources.store.store import Store

    path = Path(db) if db else default_db()
    if not path.exists():
        if db:
            raise CliError(f"{path}: no such store to check the jurisdiction against")
        sys.stderr.write(f"note: no store at {path}; {code} checked for form only\n")
        return code
    try:  # the file itself when the console is stopped, else its newest snapshot
        st = Store(path, read_only=True)
    except Exception:
        snap = latest_snapshot(path)
        if snap is None:
            sys.stderr.write(f"note: {path} is in use and has no snapshot; {code} checked "
                             "for form only\n")
            return code
        st = Store(snap, read_only=True)
    try:
        names = known_codes(st)
    finally:
        st.close()
    if code not in names:
        raise CliError(f"{code} is not a province, city or county of the store {path}")
    return code


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return str(os.getuid())


def _by(args, data: store.UsersData) -> str | None:
    """``--by``: the console administrator acting; must be an enabled admin of the file."""
    if args.by is None:
        return None
    admin = data.users.get(args.by)
    if admin is None or admin.role != "admin" or admin.disabled:
        raise CliError(f"--by {args.by}: not an enabled admin of this users file")
    return args.by


def _get(data: store.UsersData, name: str) -> store.User:
    user = data.users.get(name)
    if user is None:
        raise CliError(f"no user {name!r}")
    return user


def _change(args, data, user: store.User, action: str, changes: dict) -> None:
    store.set_user(data, user)
    store.append_log(data, action=action, user=user.name, changes=changes,
                     os_user=_os_user(), by=_by(args, data))


def cmd_add(args) -> str:
    store.check_name(args.name)
    if args.role not in ROLES:
        raise CliError(f"role must be one of {', '.join(ROLES)}")
    if Path(args.file).exists() and args.name in store.read(args.file).users:
        raise CliError(f"user {args.name!r} exists (use reset, role or enable)")
    code = check_jurisdiction(args.jurisdiction, args.db)
    password = None if args.no_password else hash_password(read_password())
    with store.editing(args.file, create=True) as data:
        if args.name in data.users:
            raise CliError(f"user {args.name!r} exists (use reset, role or enable)")
        user = store.User(name=args.name, role=args.role, jurisdiction=code,
                          display_name=args.display_name or "", password=password)
        _change(args, data, user, "user.add",
                {"role": args.role, "jurisdiction": code, "display_name": user.display_name,
                 "password_set": password is not None})
    return f"added {args.name} ({args.role}, {code})"


def cmd_disable(args, disabled: bool = True) -> str:
    with store.editing(args.file) as data:
        user = _get(data, args.name)
        _change(args, data, replace(user, disabled=disabled),
                "user.disable" if disabled else "user.enable", {"disabled": disabled})
    return f"{'disabled' if disabled else 'enabled'} {args.name}"


def cmd_reset(args) -> str:
    password = hash_password(read_password("new password"))
    with store.editing(args.file) as data:
        user = _get(data, args.name)
        _change(args, data, replace(user, password=password),
                "user.reset", {"password_set": True})
    return f"password of {args.name} reset (its open logins end)"


def cmd_role(args) -> str:
    if args.role not in ROLES:
        raise CliError(f"role must be one of {', '.join(ROLES)}")
    code = check_jurisdiction(args.jurisdiction, args.db) if args.jurisdiction else None
    with store.editing(args.file) as data:
        user = _get(data, args.name)
        changes = {"role": [user.role, args.role]}
        fields = {"role": args.role}
        if code:
            changes["jurisdiction"] = [user.jurisdiction, code]
            fields["jurisdiction"] = code
        if args.role != WALL and user.token:  # tokens are for walls only
            fields["token"] = None
            changes["token_revoked"] = True
        _change(args, data, replace(user, **fields), "user.role", changes)
    return f"{args.name}: role {args.role}" + (f", jurisdiction {code}" if code else "")


def cmd_token(args) -> str:
    with store.editing(args.file) as data:
        user = _get(data, args.name)
        if args.revoke:
            _change(args, data, replace(user, token=None),
                    "user.token_revoke", {"token_set": False})
            return f"token of {args.name} revoked (the wall is logged out)"
        if user.role != WALL:
            raise CliError(f"{args.name} is {user.role}: kiosk tokens are for the wall role")
        token = new_token()
        _change(args, data, replace(user, token=token_fingerprint(token)),
                "user.token", {"token_set": True})
    base = (args.base or "").rstrip("/")
    # The token travels in the fragment: browsers never send it to the server, so it stays
    # out of access logs, proxies and Referer headers; the page posts it (dashboards/auth.py).
    return f"{base}/login/token#t={token}"


def cmd_list(args) -> str:
    data = store.read(args.file)
    rows = [u.public() for u in sorted(data.users.values(), key=lambda u: u.name)]
    if args.json:
        return json.dumps(rows, ensure_ascii=False, indent=1)
    lines = [f"{'name':<24} {'role':<8} {'jurisdiction':<12} {'status':<9} {'password':<8} "
             f"{'token':<6} changed"]
    for r in rows:
        lines.append(f"{r['name']:<24} {r['role']:<8} {r['jurisdiction']:<12} "
                     f"{'disabled' if r['disabled'] else 'enabled':<9} "
                     f"{'set' if r['password_set'] else '-':<8} "
                     f"{'set' if r['token_set'] else '-':<6} {r['changed_at']}")
    return "\n".join(lines)


def cmd_secret(args) -> str:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"{out} exists (--force replaces it and logs everybody out)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")
    return f"cookie secret written to {out} (mode 0600)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sources.access.users",
                                description="Manage the console's users (file edited in place; "
                                "the running console picks changes up within a second).")
    p.add_argument("--file", default=str(store.default_users_path()),
                   help="users file (default $CONSOLE_USERS or var/users.json)")
    p.add_argument("--db", default=None,
                   help="store whose counties/cities check jurisdictions (default: "
                        "$CONSOLE_DB or var/console.duckdb when it exists)")
    p.add_argument("--by", default=None, help="the console administrator making the change")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add", help="add a user (password from the terminal or stdin)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--jurisdiction", required=True, help="370000, a city or a county code")
    a.add_argument("--display-name", default="")
    a.add_argument("--no-password", action="store_true",
                   help="no password (a wall that logs in by token only)")
    for name in ("disable", "enable", "reset"):
        sub.add_parser(name, help=f"{name} a user").add_argument("name")
    r = sub.add_parser("role", help="change a user's role (and jurisdiction)")
    r.add_argument("name")
    r.add_argument("role", choices=ROLES)
    r.add_argument("--jurisdiction", default=None)
    t = sub.add_parser("token", help="issue (or --revoke) a wall's kiosk login URL")
    t.add_argument("name")
    t.add_argument("--revoke", action="store_true")
    t.add_argument("--base", default="", help="the console's URL, printed before the path")
    ls = sub.add_parser("list", help="list users (no hashes)")
    ls.add_argument("--json", action="store_true")
    s = sub.add_parser("secret", help="write a new random cookie secret file")
    s.add_argument("--out", required=True)
    s.add_argument("--force", action="store_true")
    return p


COMMANDS = {"add": cmd_add, "disable": cmd_disable, "reset": cmd_reset, "role": cmd_role,
            "token": cmd_token, "list": cmd_list, "secret": cmd_secret,
            "enable": lambda a: cmd_disable(a, disabled=False)}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        _out(COMMANDS[args.command](args))
    except (CliError, store.UsersFileError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
