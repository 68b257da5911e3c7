"""The users store: scrypt hashes, the command line, reload of a running console's view."""
from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from sources.access import passwords
from sources.access.users import User, UserDirectory, UsersFileError, read
from tests.sources.access_fixtures import PASSWORDS, make_users, users_cli


@pytest.fixture(scope="module")
def users_template(tmp_path_factory):
    """A users file made once with the command line (five people and a wall)."""
    path = tmp_path_factory.mktemp("users") / "users.json"
    url = make_users(path)
    return path, url


@pytest.fixture
def users_file(users_template, tmp_path):
    path = tmp_path / "users.json"
    shutil.copy2(users_template[0], path)
    return path


# ---------------------------------------------------------------------- hashing
def test_scrypt_hash_verifies_and_states_its_parameters():
    h = passwords.hash_password("correct horse battery")
    assert h.startswith("$scrypt$ln=15,r=8,p=1$")
    assert passwords.verify_password("correct horse battery", h)
    assert not passwords.verify_password("correct horse batterY", h)
    assert passwords.hash_password("correct horse battery") != h  # salted
    assert not passwords.needs_rehash(h)


def test_hashes_are_checked_against_an_independent_scrypt():
    """The stored key is scrypt(password, salt) as hashlib computes it (RFC 7914)."""
    import base64
    import hashlib

    h = passwords.hash_password("independent check")
    _, _, params, salt, key = h.split("$")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    expected = hashlib.scrypt(b"independent check", salt=base64.b64decode(pad(salt)),
                              n=2**15, r=8, p=1, dklen=32, maxmem=2**26)
    assert base64.b64decode(pad(key)) == expected


@pytest.mark.parametrize("bad", ["", "plain", "$scrypt$ln=15,r=8,p=1$abc", "$bcrypt$x$y$z",
                                 "$scrypt$ln=40,r=8,p=1$AAAA$AAAA", "$scrypt$ln=x$a$b"])
def test_malformed_hashes_never_verify(bad):
    assert not passwords.verify_password("anything at all", bad)
    assert not passwords.is_password_hash(bad)


def test_weaker_parameters_are_flagged_for_rehash():
    weak = passwords.hash_password("old password 1", log2_n=10)
    assert passwords.verify_password("old password 1", weak)
    assert passwords.needs_rehash(weak)


@pytest.mark.parametrize("bad", ["short", "x" * 1025, "has\x00nul chars", "tab\tinside pw"])
def test_unfit_passwords_are_refused(bad):
    with pytest.raises(ValueError):
        passwords.hash_password(bad)


# ---------------------------------------------------------------------- command line
def test_cli_adds_users_with_the_password_on_stdin_never_stored_plain(users_template):
    path, url = users_template
    text = path.read_text(encoding="utf-8")
    for pw in PASSWORDS.values():
        assert pw not in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    data = read(path)
    li = data.users["li.county"]
    assert (li.role, li.jurisdiction, li.disabled) == ("officer", "371302", False)
    assert passwords.verify_password(PASSWORDS["li.county"], li.password)
    token = url.split("#t=", 1)[1]
    assert url.startswith("/login/token#t=") and token not in text
    assert data.users["wall-hall"].token == passwords.token_fingerprint(token)
    assert [e["action"] for e in data.log][:2] == ["user.add", "user.add"]
    listing = users_cli(path, "list").stdout
    assert "li.county" in listing and "$scrypt$" not in listing and "sha256$" not in listing


def test_cli_disable_enable_reset_role_and_revoke(users_file):
    path = users_file
    before = read(path).users["li.county"]
    users_cli(path, "disable", "li.county")
    assert read(path).users["li.county"].disabled
    users_cli(path, "enable", "li.county")
    assert not read(path).users["li.county"].disabled
    users_cli(path, "reset", "li.county", stdin="a brand new password\n")
    after = read(path).users["li.county"]
    assert passwords.verify_password("a brand new password", after.password)
    assert after.credential("password") != before.credential("password")
    users_cli(path, "role", "li.county", "analyst", "--jurisdiction", "371300")
    assert (read(path).users["li.county"].role, read(path).users["li.county"].jurisdiction) == (
        "analyst", "371300")
    users_cli(path, "token", "wall-hall", "--revoke")
    assert read(path).users["wall-hall"].token is None
    actions = [e["action"] for e in read(path).log]
    assert actions[-5:] == ["user.disable", "user.enable", "user.reset", "user.role",
                            "user.token_revoke"]


@pytest.mark.parametrize("args, message", [
    (["add", "li.county", "--role", "officer", "--jurisdiction", "371302"], "exists"),
    (["add", "<b>x</b>", "--role", "officer", "--jurisdiction", "371302"], "not a valid user name"),
    (["add", "new.one", "--role", "officer", "--jurisdiction", "37130"], "six-digit"),
    (["add", "new.one", "--role", "officer", "--jurisdiction", "370012"], "not an administrative"),
    (["token", "li.county"], "kiosk tokens are for the wall role"),
    (["disable", "nobody"], "no user 'nobody'"),
    (["--by", "li.county", "disable", "zhao.city"], "not an enabled admin"),
])
def test_cli_refuses_bad_input_with_one_line(users_file, args, message):
    path = users_file
    before = path.read_bytes()
    out = users_cli(path, *args, stdin="some password 1\n", check=False)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert path.read_bytes() == before  # nothing written


def test_cli_refuses_a_password_on_the_command_line(tmp_path):
    out = users_cli(tmp_path / "u.json", "add", "x.y", "--role", "admin", "--jurisdiction",
                    "370000", "--password", "secret words", check=False)
    assert out.returncode == 2  # argparse: there is no such option


def test_cli_checks_jurisdictions_against_the_store(tmp_path, tiny_db_template):
    path = tmp_path / "users.json"
    ok = users_cli(path, "add", "a.b", "--role", "officer", "--jurisdiction", "371302",
                   stdin="a long password\n", db=tiny_db_template)
    assert ok.returncode == 0
    out = users_cli(path, "add", "c.d", "--role", "officer", "--jurisdiction", "379999",
                    stdin="a long password\n", db=tiny_db_template, check=False)
    assert out.returncode == 1 and "not a province, city or county of the store" in out.stderr


def test_concurrent_administrators_lose_no_change(tmp_path):
    path = tmp_path / "users.json"
    make_users(path, users=[("wang.admin", "admin", "370000")], wall=None)
    errors = []

    def add(i):
        out = users_cli(path, "add", f"user.{i}", "--role", "wall", "--jurisdiction", "370000",
                        "--no-password", check=False)
        if out.returncode:
            errors.append(out.stderr)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    data = read(path)
    assert {f"user.{i}" for i in range(4)} <= set(data.users)
    assert sorted(e["n"] for e in data.log) == list(range(1, 6))  # one entry per change


def test_secret_command_writes_a_private_file(tmp_path):
    out = users_cli(tmp_path / "u.json", "secret", "--out", str(tmp_path / "s"))
    assert out.returncode == 0
    assert len((tmp_path / "s").read_text().strip()) >= 32
    assert (tmp_path / "s").stat().st_mode & 0o077 == 0
    again = users_cli(tmp_path / "u.json", "secret", "--out", str(tmp_path / "s"), check=False)
    assert again.returncode == 1 and "exists" in again.stderr


# ---------------------------------------------------------------------- the console's view
def test_directory_sees_a_disable_without_restart(users_file):
    path = users_file
    directory = UserDirectory(path, check_interval_s=0)
    seen = []
    directory.on_reload(lambda d: seen.append(d.get("li.county").disabled))
    assert not directory.get("li.county").disabled
    users_cli(path, "disable", "li.county")
    assert directory.get("li.county").disabled
    assert seen == [True]


def test_directory_keeps_the_last_good_file_when_a_bad_one_appears(users_file):
    path = users_file
    directory = UserDirectory(path, check_interval_s=0)
    good = directory.get("li.county")
    path.write_text('{"format": "emergency-console-users", "version": 1, "users": {', "utf-8")
    assert directory.get("li.county") == good
    assert "not valid JSON" in directory.last_error
    os.unlink(path)
    assert directory.get("li.county") == good


@pytest.mark.parametrize("content, message", [
    (None, "no users file"),
    ("{not json", "not valid JSON"),
    ("[]", "not a users file"),
    ('{"format": "emergency-console-users", "version": 2, "users": {}}', "version 2"),
    ('{"format": "emergency-console-users", "version": 1, "users": {"a": {"role": "boss", '
     '"jurisdiction": "370000"}}}', "role 'boss'"),
    ('{"format": "emergency-console-users", "version": 1, "users": {"a": {"role": "admin", '
     '"jurisdiction": "370000", "password": "hunter2hunter2"}}}', "not a $scrypt$ hash"),
    ('{"format": "emergency-console-users", "version": 1, "users": {"A B": {"role": "admin", '
     '"jurisdiction": "370000"}}}', "not a valid user name"),
    ('{"format": "emergency-console-users", "version": 1, "users": {"a": {"role": "admin", '
     '"jurisdiction": "370000", "disabled": "no"}}}', "disabled must be true or false"),
])
def test_missing_or_malformed_files_are_named_with_the_fault(tmp_path, content, message):
    path = tmp_path / "users.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UsersFileError) as err:
        UserDirectory(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_credentials_fingerprints_never_show_the_hash():
    u = User(name="a", role="admin", jurisdiction="370000", password="$scrypt$x", token=None)
    assert u.credential("password") and "$scrypt$" not in json.dumps(u.public())
    assert u.credential("token") is None
