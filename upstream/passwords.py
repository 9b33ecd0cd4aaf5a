"""scrypt password hashes, self-describing so cost parameters can be raised later.

Format: `scrypt$<n>$<r>$<p>$<salt b64>$<key b64>`. Verification recomputes with the parameters
stored in the hash and compares in constant time. `dummy_hash()` exists so that a login for an
unknown user costs the same scrypt work as a wrong password: no user enumeration by timing.
These functions are CPU-bound (~50 ms); callers run them via `asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MAXMEM = 64 * 1024 * 1024  # 128 * r * n = 16 MiB at the defaults; leave room for stored higher costs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, key_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(key_b64)
        actual = _derive(password, salt, int(n), int(r), int(p))
    except ValueError:
        return False  # a malformed stored hash never matches; it must not become a 500
    return hmac.compare_digest(actual, expected)


@functools.cache
def dummy_hash() -> str:
    """A hash of a password nobody knows, made once per process with the current parameters."""
    return hash_password(secrets.token_urlsafe(32))
