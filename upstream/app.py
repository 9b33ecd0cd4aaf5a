"""Assembles the demo upstream: auth service, tasks API and a health check.

Both databases are opened (and migrated) on startup and closed on cleanup, through aiohttp's
`cleanup_ctx`, so an app object can be built cheaply in tests and only touches disk when served.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from upstream import auth, tasks
from upstream.auth import REFRESH_TTL, AuthSettings, OnRevoke
from upstream.responses import json_response, problem_middleware
from upstream.seed import passwords_from_env
from upstream.tokens import check_secret

MAX_BODY_BYTES = 64 * 1024  # the largest valid body (a task) is ~10 KiB of JSON


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


def create_app(
    *,
    auth_db_path: str | Path,
    data_db_path: str | Path,
    secret: str,
    access_ttl: int = 900,
    on_revoke: OnRevoke | None = None,
    refresh_ttl: int = REFRESH_TTL,
    seed_passwords: Mapping[str, str] | None = None,
) -> web.Application:
    """The demo app. `seed_passwords` (user → password) defaults to DEMO_*_PASSWORD from the env.

    Raises ValueError for a secret shorter than 32 bytes, TTLs below 1 s, or one file for both DBs.
    """
    check_secret(secret)
    if access_ttl < 1 or refresh_ttl < 1:
        raise ValueError("token lifetimes must be at least 1 second")
    if Path(auth_db_path).resolve() == Path(data_db_path).resolve():
        raise ValueError("the auth and app-data databases must be separate files")
    if seed_passwords is None:
        seed_passwords = passwords_from_env(os.environ)

    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(_security_headers)
    auth.setup(
        app,
        db_path=auth_db_path,
        settings=AuthSettings(secret, access_ttl, refresh_ttl, on_revoke),
        seed_passwords=seed_passwords,
    )
    tasks.setup(app, db_path=data_db_path)
    app.router.add_get("/healthz", healthz)
    return app
