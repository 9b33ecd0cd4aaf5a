"""Access tokens (JWT, RFC 9068 profile) and opaque refresh tokens.

Access tokens are short-lived and verified by the Bastion sidecar, not by this app: the sidecar
knows the same HS256 secret, issuer and audience. Refresh tokens are opaque random strings that
only this service understands; the database stores their SHA-256, never the token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

ISSUER = "bastion-demo"
AUDIENCE = "bastion-demo-api"
SCOPE = "tasks:read tasks:write"
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash output


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    jti: str
    expires_at: int


def check_secret(secret: str) -> None:
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes")


def issue_access_token(secret: str, subject: str, roles: Sequence[str], ttl: int, now: int) -> AccessToken:
    jti = secrets.token_urlsafe(16)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "roles": list(roles),
        "scope": SCOPE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti,
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"typ": "at+jwt"})
    return AccessToken(token, jti, now + ttl)


def new_refresh_token() -> tuple[str, str]:
    """A fresh refresh token and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_family_id() -> str:
    return secrets.token_hex(16)


def unverified_claims(token: str) -> dict[str, Any] | None:
    """Claims of a token the sidecar has already verified; None if it cannot even be parsed.

    SECURITY: never use this to decide who a caller is. It only reads `jti`/`exp` to forward a
    revocation for a token that passed the sidecar on its way here.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None
