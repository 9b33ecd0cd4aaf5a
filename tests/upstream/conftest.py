"""Fixtures for the demo upstream: a served app on a real socket, with throwaway databases.

Seeding the demo users costs two scrypt hashes, so it happens once per session into a template
auth DB; each test gets its own copy (the app sees a non-empty users table and skips seeding).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from upstream import create_app
from upstream.authdb import AuthDB
from upstream.seed import seed_demo_users

PASSWORDS = {"admin": "admin-test-password-0", "alice": "alice-test-password-0"}

AiohttpClient = Callable[[web.Application], Awaitable[TestClient]]


@dataclass
class Env:
    """Everything a test may want to look at besides the HTTP client."""

    secret: str
    auth_db: Path
    data_db: Path
    revocations: list[tuple[str, str, int]] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    async def on_revoke(self, kind: str, value: str, expires_at: int) -> None:
        self.revocations.append((kind, value, expires_at))

    def app(self, **overrides: Any) -> web.Application:
        kwargs: dict[str, Any] = {
            "auth_db_path": self.auth_db,
            "data_db_path": self.data_db,
            "secret": self.secret,
            "on_revoke": self.on_revoke,
            "seed_passwords": PASSWORDS,
        }
        kwargs.update(overrides)
        return create_app(**kwargs)


@pytest.fixture(scope="session")
def seeded_auth_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "auth.sqlite3"

    async def seed() -> None:
        db = await AuthDB.open(path)
        try:
            assert await seed_demo_users(db, PASSWORDS)
        finally:
            await db.close()

    asyncio.run(seed())
    return path


@pytest.fixture
def env(tmp_path: Path, seeded_auth_db: Path) -> Env:
    auth_db = tmp_path / "auth.sqlite3"
    shutil.copyfile(seeded_auth_db, auth_db)
    return Env(secret=secrets.token_urlsafe(32), auth_db=auth_db, data_db=tmp_path / "tasks.sqlite3")


@pytest_asyncio.fixture
async def client(aiohttp_client: AiohttpClient, env: Env) -> TestClient:
    return await aiohttp_client(env.app())


@pytest_asyncio.fixture
async def login(client: TestClient) -> Callable[[str], Awaitable[dict[str, Any]]]:
    """Log a demo user in; returns the token response body."""

    async def do_login(username: str) -> dict[str, Any]:
        resp = await client.post("/auth/login", json={"username": username, "password": PASSWORDS[username]})
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    return do_login
