"""Password hashing (scrypt, from the standard library) and wall-token fingerprints.

Passwords are stored as PHC-style strings ``$scrypt$ln=15,r=8,p=1$<salt>$<hash>`` (base64
without padding): scrypt with N = 2**15, r = 8, p = 1, a 16-byte random salt and a 32-byte
key — 32 MiB of memory and ~0.1 s of one core per check, the interactive-login parameters
of RFC 7914 §2 / OWASP. The parameters are read back from each string, so raising them
later keeps old hashes valid (:func:`needs_rehash` says which to renew on the next reset).

Wall tokens are 256-bit random strings; only their SHA-256 is stored (a KDF adds nothing to
a secret with that much entropy, and a wall's token is checked on every login).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

LOG2_N, R, P, KEY_LEN, SALT_LEN = 15, 8, 1, 32, 16
MAX_PASSWORD = 1024  # characters: longer input is refused before it reaches the KDF
_MAXMEM = 256 * 2**20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**log2_n, r=r, p=p,
                          dklen=dklen, maxmem=_MAXMEM)


def hash_password(password: str, *, log2_n: int = LOG2_N, r: int = R, p: int = P) -> str:
    """The PHC string of ``password`` with a fresh salt."""
    check_password_text(password)
    salt = secrets.token_bytes(SALT_LEN)
    key = _scrypt(password, salt, log2_n, r, p, KEY_LEN)
    return f"$scrypt$ln={log2_n},r={r},p={p}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "scrypt":
        raise ValueError("not a $scrypt$ password hash")
    params = dict(kv.split("=", 1) for kv in parts[2].split(","))
    log2_n, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
    if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    return log2_n, r, p, _unb64(parts[3]), _unb64(parts[4])


def is_password_hash(encoded: object) -> bool:
    """Whether ``encoded`` is a well-formed hash this module can check."""
    if not isinstance(encoded, str):
        return False
    try:
        _parse(encoded)
    except (ValueError, KeyError):
        return False
    return True


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (constant-time comparison)."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        log2_n, r, p, salt, key = _parse(encoded)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p, len(key)), key)


_DUMMY: list[str] = []


def burn_time(password: str) -> None:
    """Spend the time of one check when the user does not exist, so that the answer's
    delay does not tell an attacker which names are accounts."""
    if not _DUMMY:
        _DUMMY.append(hash_password("not a password"))
    verify_password(password[:MAX_PASSWORD] if isinstance(password, str) else "", _DUMMY[0])


def needs_rehash(encoded: str) -> bool:
    """Whether ``encoded`` was made with weaker parameters than today's."""
    try:
        log2_n, r, p, _, key = _parse(encoded)
    except (ValueError, KeyError):
        return True
    return (log2_n, r, p, len(key)) < (LOG2_N, R, P, KEY_LEN)


def check_password_text(password: str) -> None:
    """Refuse passwords an operator should not use (too short, too long, control chars)."""
    if not isinstance(password, str):
        raise ValueError("the password must be text")
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password must have at most {MAX_PASSWORD} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ValueError("the password must not contain control characters")


def new_token() -> str:
    """A fresh wall token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_fingerprint(token: str) -> str:
    """What is stored of a token: ``sha256$<hex>``."""
    return "sha256$" + hashlib.sha256(token.encode("utf-8")).hexdigest()
