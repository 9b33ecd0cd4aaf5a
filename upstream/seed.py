"""The two demo users, created on first start only.

Passwords come from the environment (DEMO_ADMIN_PASSWORD, DEMO_ALICE_PASSWORD) so a demo script
can log in; otherwise they are generated and printed once, because there is no other way to learn
them and no well-known default password should ever exist.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping

from upstream.authdb import AuthDB, NewUser
from upstream.passwords import hash_password

DEMO_USERS: dict[str, tuple[str, ...]] = {"admin": ("admin", "user"), "alice": ("user",)}
PASSWORD_ENV = {"admin": "DEMO_ADMIN_PASSWORD", "alice": "DEMO_ALICE_PASSWORD"}


def passwords_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The demo passwords set in `environ`; users without one get a generated password at seeding."""
    return {user: environ[var] for user, var in PASSWORD_ENV.items() if environ.get(var)}


async def seed_demo_users(db: AuthDB, passwords: Mapping[str, str]) -> bool:
    """Create admin and alice if the users table is empty; True if they were created now."""
    if await db.has_users():
        return False
    chosen = {user: passwords.get(user) or secrets.token_urlsafe(12) for user in DEMO_USERS}
    hashes = await asyncio.gather(*(asyncio.to_thread(hash_password, chosen[user]) for user in DEMO_USERS))
    users = [NewUser(user, h, roles) for (user, roles), h in zip(DEMO_USERS.items(), hashes, strict=True)]
    created = await db.seed_if_empty(users, int(time.time()))
    if created:
        for user in DEMO_USERS:
            if not passwords.get(user):
                print(f"demo user {user} password: {chosen[user]}", flush=True)
    return created
