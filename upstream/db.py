"""One SQLite file behind a lock, used from worker threads only.

sqlite3 calls block, so every call goes through `Database.run`, which hops to a worker thread via
`asyncio.to_thread`; the event loop never waits on disk. One connection per file (shared across
threads, serialised by a lock) is plenty for a demo and keeps transactions simple. Schema changes
are numbered migrations tracked in `PRAGMA user_version`, applied once at startup.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

Migration = Sequence[str]  # SQL statements applied together, in one transaction


class Database:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    async def open(cls, path: str | Path, migrations: Sequence[Migration]) -> Database:
        return await asyncio.to_thread(cls._open_sync, str(path), migrations)

    @classmethod
    def _open_sync(cls, path: str, migrations: Sequence[Migration]) -> Database:
        # Owner-only from the first byte (SQLite gives its -wal/-shm files the same mode): the auth DB
        # holds password hashes, and a permissive umask or shared data dir must not expose them.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        # isolation_level=None: no implicit transactions; `transaction()` says BEGIN IMMEDIATE itself
        # so that a read-then-write (token rotation) holds the write lock from its first read.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        db = cls(conn)
        db._migrate(migrations)
        return db

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in enumerate(migrations[version:], start=version + 1):
                for sql in statements:
                    conn.execute(sql)
                # PRAGMA takes no bound parameters; `number` is an int we computed, never input.
                conn.execute(f"PRAGMA user_version = {int(number)}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Only for use inside a function passed to `run` (or at open time)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one transaction on a worker thread."""

        def call() -> T:
            with self.transaction() as conn:
                return fn(conn)

        return await asyncio.to_thread(call)

    async def close(self) -> None:
        def close_sync() -> None:
            with self._lock:
                self._conn.close()

        await asyncio.to_thread(close_sync)
