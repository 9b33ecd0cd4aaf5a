"""The auth database: users, their roles and refresh tokens. Separate file from the task data.

Kept apart from the app data so that a bug or injection in the tasks API can never reach password
hashes or refresh tokens, and so the two can have different backup and access policies.

Refresh tokens are stored only as SHA-256 hashes (they are 256-bit random, so a fast hash is enough;
a stolen DB file yields no usable token). Each login starts a *family*; every refresh marks the
presented token used and issues the next one in the same family. Presenting a used token again means
two parties hold it, so the whole family is revoked (OAuth 2.0 Security BCP, refresh token rotation).
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from upstream.db import Database, Migration

MIGRATIONS: Sequence[Migration] = (
    (
        """CREATE TABLE users (
            id            INTEGER PRIMARY KEY,
            username      TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at    INTEGER NOT NULL
        )""",
        """CREATE TABLE user_roles (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            role    TEXT NOT NULL,
            PRIMARY KEY (user_id, role)
        )""",
        """CREATE TABLE refresh_tokens (
            token_hash TEXT PRIMARY KEY,
            family_id  TEXT NOT NULL,
            user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            issued_at  INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at    INTEGER,
            revoked_at INTEGER
        )""",
        "CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id)",
    ),
)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewUser:
    username: str
    password_hash: str
    roles: tuple[str, ...]


class Rotation(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # unknown, expired or revoked
    REUSED = "reused"  # already used: the family has now been revoked


@dataclass(frozen=True, slots=True)
class RotationResult:
    outcome: Rotation
    user: User | None = None


def _user_from_row(conn: sqlite3.Connection, row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    roles = conn.execute(
        "SELECT role FROM user_roles WHERE user_id = ? ORDER BY role", (row["id"],)
    ).fetchall()
    return User(row["id"], row["username"], row["password_hash"], tuple(r["role"] for r in roles))


def _user_by_id(conn: sqlite3.Connection, user_id: int) -> User | None:
    row = conn.execute("SELECT id, username, password_hash FROM users WHERE id = ?", (user_id,)).fetchone()
    return _user_from_row(conn, row)


def _revoke_family(conn: sqlite3.Connection, family_id: str, now: int) -> None:
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        (now, family_id),
    )


def _insert_refresh(
    conn: sqlite3.Connection, token_hash: str, family_id: str, user_id: int, now: int, expires_at: int
) -> None:
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (token_hash, family_id, user_id, now, expires_at),
    )


class AuthDB:
    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str | Path) -> AuthDB:
        return cls(await Database.open(path, MIGRATIONS))

    async def close(self) -> None:
        await self._db.close()

    async def has_users(self) -> bool:
        return await self._db.run(lambda c: c.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None)

    async def seed_if_empty(self, users: Sequence[NewUser], now: int) -> bool:
        """Insert `users` only if there are none yet (checked inside the write transaction)."""

        def seed(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None:
                return False
            for user in users:
                cur = conn.execute(
                    "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                    (user.username, user.password_hash, now),
                )
                conn.executemany(
                    "INSERT INTO user_roles (user_id, role) VALUES (?, ?)",
                    [(cur.lastrowid, role) for role in user.roles],
                )
            return True

        return await self._db.run(seed)

    async def user_by_name(self, username: str) -> User | None:
        def get(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                "SELECT id, username, password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
            return _user_from_row(conn, row)

        return await self._db.run(get)

    async def start_family(
        self, user_id: int, family_id: str, token_hash: str, now: int, expires_at: int
    ) -> None:
        await self._db.run(lambda c: _insert_refresh(c, token_hash, family_id, user_id, now, expires_at))

    async def rotate_refresh(
        self, token_hash: str, next_hash: str, now: int, expires_at: int
    ) -> RotationResult:
        """Spend `token_hash` and store `next_hash` in its family, atomically (one write transaction)."""

        def rotate(conn: sqlite3.Connection) -> RotationResult:
            row = conn.execute(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens"
                " WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            if row is None:
                return RotationResult(Rotation.INVALID)
            if row["used_at"] is not None:
                _revoke_family(conn, row["family_id"], now)
                return RotationResult(Rotation.REUSED, _user_by_id(conn, row["user_id"]))
            if row["revoked_at"] is not None or row["expires_at"] <= now:
                return RotationResult(Rotation.INVALID)
            user = _user_by_id(conn, row["user_id"])
            if user is None:
                return RotationResult(Rotation.INVALID)
            conn.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, token_hash))
            _insert_refresh(conn, next_hash, row["family_id"], user.id, now, expires_at)
            return RotationResult(Rotation.OK, user)

        return await self._db.run(rotate)

    async def revoke_family_of(self, token_hash: str, now: int) -> User | None:
        """Revoke the family `token_hash` belongs to; the owner, or None for an unknown token."""

        def revoke(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                "SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                return None
            _revoke_family(conn, row["family_id"], now)
            return _user_by_id(conn, row["user_id"])

        return await self._db.run(revoke)
