"""Server-side logins and the login throttle, on a clock the test controls; start-up checks."""
from __future__ import annotations

import pytest

from sources.access.config import AccessConfigError, load_access_config
from sources.access.sessions import LoginThrottle, SessionStore, session_hash


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_are_revoked_and_keep_only_hashes(tmp_path):
    clock = Clock()
    path = tmp_path / "sessions.json"
    store = SessionStore(path, clock=clock)
    sid = store.create(user="li", kind="password", credential="c", address="10.0.0.1",
                       lifetime_s=60)
    key = session_hash(sid)
    assert store.get(key).user == "li"
    assert sid not in path.read_text()  # the file holds hashes only
    assert SessionStore(path, clock=clock).get(key).user == "li"  # survives a restart
    clock.now += 61
    assert store.get(key) is None
    sid2 = store.create(user="li", kind="password", credential="c", address="", lifetime_s=60)
    assert store.revoke(session_hash(sid2)) is not None
    assert store.get(session_hash(sid2)) is None
    assert SessionStore(path, clock=clock).get(session_hash(sid2)) is None


def test_a_damaged_sessions_file_logs_everyone_out_instead_of_failing(tmp_path):
    path = tmp_path / "sessions.json"
    path.write_text("{broken")
    assert SessionStore(path).items() == []


def test_a_flood_of_logins_is_bounded():
    store = SessionStore(max_sessions=5)
    for i in range(20):
        store.create(user=f"u{i}", kind="password", credential="c", address="", lifetime_s=60)
    assert len(store.items()) == 5


def test_lockout_per_user_and_its_end():
    clock = Clock()
    th = LoginThrottle(user_failures=3, address_failures=100, window_s=60, lock_s=300,
                       clock=clock)
    assert th.failure("li", "1.1.1.1") == []
    assert th.failure("li", "1.1.1.2") == []
    started = th.failure("li", "1.1.1.3")
    assert [(lk.on, lk.value) for lk in started] == [("user", "li")]
    first = th.locked("li", "9.9.9.9")
    assert first.on == "user" and first.first_refusal
    assert not th.locked("li", "9.9.9.9").first_refusal
    assert th.locked("zhao", "1.1.1.1") is None  # other names are not locked
    clock.now += 299
    assert th.locked("li", "9.9.9.9") is not None
    clock.now += 2
    assert th.locked("li", "9.9.9.9") is None


def test_failures_outside_the_window_do_not_add_up():
    clock = Clock()
    th = LoginThrottle(user_failures=3, window_s=60, lock_s=300, clock=clock)
    for _ in range(10):
        assert th.failure("li", "1.1.1.1") == []
        clock.now += 31  # two failures per window at most
        if th.locked("li", "1.1.1.1"):
            pytest.fail("locked by failures spread beyond the window")


def test_lockout_per_address_across_names_and_success_does_not_reset_it():
    clock = Clock()
    th = LoginThrottle(user_failures=100, address_failures=4, window_s=60, lock_s=60,
                       clock=clock)
    for i in range(3):
        th.failure(f"name{i}", "6.6.6.6")
    th.success("name0")  # one good account must not wash the address clean
    assert th.failure("name3", "6.6.6.6")[0].on == "address"
    assert th.locked("anyone", "6.6.6.6").on == "address"
    assert th.locked("anyone", "7.7.7.7") is None
    assert th.locked(None, "6.6.6.6").on == "address"  # wall-token logins too


def test_the_throttle_cannot_be_grown_without_bound():
    th = LoginThrottle(max_keys=100)
    for i in range(1000):
        th.failure(f"n{i}", f"a{i}")
    assert len(th._keys) <= 100


# ---------------------------------------------------------------------- start-up
@pytest.fixture
def users_file(tmp_path):
    from tests.sources.access_fixtures import make_users

    path = tmp_path / "users.json"
    make_users(path, users=[("wang.admin", "admin", "370000")], wall=None)
    return path


def test_config_reads_secret_from_file_or_environment(users_file, tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("s" * 40 + "\n")
    secret.chmod(0o600)
    assert load_access_config(users_file=users_file, secret_file=secret).secret == "s" * 40
    monkeypatch.setenv("CONSOLE_COOKIE_SECRET", "e" * 40)
    assert load_access_config(users_file=users_file).secret == "e" * 40


@pytest.mark.parametrize("case, message", [
    ("no_users", "no users file"),
    ("bad_users", "not valid JSON"),
    ("no_secret_file", "no cookie secret file"),
    ("short_secret", "at least 32 characters"),
    ("no_secret", "no cookie secret"),
    ("bad_proxy", "is not an address or network"),
    ("no_enabled", "no enabled user"),
    ("bad_public", "is not a regex"),
])
def test_config_refuses_to_start_with_one_clear_line(users_file, tmp_path, monkeypatch, case,
                                                     message):
    monkeypatch.delenv("CONSOLE_COOKIE_SECRET", raising=False)
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    kw = {"users_file": users_file, "secret_file": secret}
    if case == "no_users":
        kw["users_file"] = tmp_path / "missing.json"
    elif case == "bad_users":
        users_file.write_text("{oops")
    elif case == "no_secret_file":
        kw["secret_file"] = tmp_path / "nope"
    elif case == "short_secret":
        secret.write_text("short")
    elif case == "no_secret":
        kw["secret_file"] = None
    elif case == "bad_proxy":
        kw["trusted_proxies"] = ["proxy.example"]
    elif case == "no_enabled":
        from tests.sources.access_fixtures import users_cli

        users_cli(users_file, "disable", "wang.admin")
    elif case == "bad_public":
        kw["public_paths"] = ["/cap/(.*"]
    with pytest.raises(AccessConfigError) as err:
        load_access_config(**kw)
    text = str(err.value)
    assert message in text and "\n" not in text
