"""Users files for the access tests, made with the real command line (password on stdin)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"wang.admin": "admin password 1", "li.county": "county password 1",
             "zhao.city": "city password 12", "sun.province": "province password",
             "qian.analyst": "analyst password 1"}
USERS = [  # name, role, jurisdiction
    ("wang.admin", "admin", "370000"),
    ("li.county", "officer", "371302"),
    ("zhao.city", "officer", "371300"),
    ("sun.province", "officer", "370000"),
    ("qian.analyst", "analyst", "370000"),
]


def users_cli(users_file: Path, *args: str, stdin: str = "", db: Path | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m sources.access.users`` as an administrator would."""
    cmd = [sys.executable, "-m", "sources.access.users", "--file", str(users_file)]
    if db is not None:
        cmd += ["--db", str(db)]
    env = {**os.environ, "CONSOLE_DB": str(users_file.parent / "no-store.duckdb")}
    out = subprocess.run([*cmd, *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60)
    if check and out.returncode != 0:
        raise AssertionError(f"users {args} failed ({out.returncode}): {out.stderr}")
    return out


def make_users(path: Path, users=USERS, *, wall: str | None = "wall-hall") -> str | None:
    """Write a users file with ``users`` (and a wall with a token); return the wall's URL."""
    for name, role, code in users:
        users_cli(path, "add", name, "--role", role, "--jurisdiction", code,
                  stdin=PASSWORDS[name] + "\n")
    if wall is None:
        return None
    users_cli(path, "add", wall, "--role", "wall", "--jurisdiction", "370000", "--no-password")
    return users_cli(path, "token", wall).stdout.strip()
