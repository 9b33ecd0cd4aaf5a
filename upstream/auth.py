"""The auth service: login, refresh-token rotation, logout, and revocation notifications.

This is the only place that issues tokens. The sidecar verifies the access tokens and turns them
into `X-User-Id`/`X-User-Roles` for the rest of the app. Because an access token stays valid until
it expires, revoking a refresh family alone does not stop a thief holding a fresh access token: the
optional `on_revoke` hook tells the sidecar to reject those too ("sub": everything issued to that
subject before now; "jti": one token). The hook is best-effort: a sidecar that is down must not
turn a logout into an error, since the refresh family is revoked here regardless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, Field

from upstream.authdb import AuthDB, Rotation, User
from upstream.passwords import dummy_hash, verify_password
from upstream.responses import Problem, json_response
from upstream.seed import seed_demo_users
from upstream.tokens import (
    hash_refresh_token,
    issue_access_token,
    new_family_id,
    new_refresh_token,
    unverified_claims,
)
from upstream.validation import read_model

log = logging.getLogger("upstream.auth")

OnRevoke = Callable[[str, str, int], Awaitable[None]]
REFRESH_TTL = 14 * 24 * 3600
HOOK_TIMEOUT = 5.0  # seconds; a hung sidecar admin endpoint must not hang a logout
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


class LoginRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]  # bounds the scrypt input


class RefreshRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    secret: str
    access_ttl: int
    refresh_ttl: int
    on_revoke: OnRevoke | None


class AuthService:
    def __init__(self, db: AuthDB, settings: AuthSettings) -> None:
        self.db = db
        self.settings = settings

    def _token_body(self, user: User, refresh_token: str, now: int) -> dict[str, object]:
        s = self.settings
        access = issue_access_token(s.secret, user.username, user.roles, s.access_ttl, now)
        return {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": s.access_ttl,
            "refresh_token": refresh_token,
        }

    async def login(self, username: str, password: str) -> dict[str, object] | None:
        user = await self.db.user_by_name(username)
        # Unknown users are checked against a dummy hash: same scrypt cost, same answer.
        encoded = user.password_hash if user else dummy_hash()
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if user is None or not ok:
            return None
        now = int(time.time())
        token, token_hash = new_refresh_token()
        await self.db.start_family(user.id, new_family_id(), token_hash, now, now + self.settings.refresh_ttl)
        return self._token_body(user, token, now)

    async def refresh(self, refresh_token: str) -> dict[str, object] | None:
        now = int(time.time())
        token, token_hash = new_refresh_token()
        result = await self.db.rotate_refresh(
            hash_refresh_token(refresh_token), token_hash, now, now + self.settings.refresh_ttl
        )
        if result.outcome is Rotation.REUSED and result.user is not None:
            log.warning("refresh token reuse for %s: family revoked", result.user.username)
            # Any access token minted from the stolen family was issued before now and expires
            # within access_ttl, so the sidecar may forget this entry after that.
            await self._notify("sub", result.user.username, now + self.settings.access_ttl)
        if result.outcome is not Rotation.OK or result.user is None:
            return None
        return self._token_body(result.user, token, now)

    async def logout(self, refresh_token: str, bearer: str | None) -> None:
        now = int(time.time())
        owner = await self.db.revoke_family_of(hash_refresh_token(refresh_token), now)
        if owner is None or bearer is None:
            return
        claims = unverified_claims(bearer) or {}
        jti, exp = claims.get("jti"), claims.get("exp")
        # Only the caller's own access token: a refresh token must not be a lever on someone else's.
        if (
            claims.get("sub") == owner.username
            and isinstance(jti, str)
            and isinstance(exp, int)
            and exp > now
        ):
            await self._notify("jti", jti, exp)

    async def _notify(self, kind: str, value: str, expires_at: int) -> None:
        hook = self.settings.on_revoke
        if hook is None:
            return
        try:
            async with asyncio.timeout(HOOK_TIMEOUT):
                await hook(kind, value, expires_at)
        except Exception:
            log.warning("revocation hook failed (kind=%s); continuing", kind, exc_info=True)


AUTH = web.AppKey("auth", AuthService)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def login(request: web.Request) -> web.Response:
    body = await read_model(request, LoginRequest)
    tokens = await request.app[AUTH].login(body.username, body.password)
    if tokens is None:
        raise Problem(401, "invalid username or password")
    return json_response(tokens, headers=NO_STORE)


async def refresh(request: web.Request) -> web.Response:
    body = await read_model(request, RefreshRequest)
    tokens = await request.app[AUTH].refresh(body.refresh_token)
    if tokens is None:
        raise Problem(401, "invalid refresh token")
    return json_response(tokens, headers=NO_STORE)


async def logout(request: web.Request) -> web.Response:
    body = await read_model(request, RefreshRequest)
    await request.app[AUTH].logout(body.refresh_token, _bearer(request))
    return web.Response(status=204)  # also for an unknown token: logout is idempotent


def setup(
    app: web.Application,
    *,
    db_path: str | Path,
    settings: AuthSettings,
    seed_passwords: Mapping[str, str],
) -> None:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db = await AuthDB.open(db_path)
        try:
            await seed_demo_users(db, seed_passwords)
            await asyncio.to_thread(dummy_hash)  # pay for it now, not on the first unknown-user login
            app[AUTH] = AuthService(db, settings)
            yield
        finally:
            await db.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/auth/login", login)
    app.router.add_post("/auth/refresh", refresh)
    app.router.add_post("/auth/logout", logout)
