"""The app-data database: tasks only. It holds no credentials (see authdb.py for why).

Every query that reads or changes one task takes an `owner`: None means "any owner" (admins),
otherwise the row must have been created by that user. Scoping lives in the SQL, not in a check
after the fetch, so a forgotten check cannot leak another user's task.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from upstream.db import Database, Migration

MIGRATIONS: Sequence[Migration] = (
    (
        """CREATE TABLE tasks (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            title      TEXT NOT NULL,
            done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
            notes      TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX tasks_created_by ON tasks(created_by)",
    ),
)

_COLUMNS = "id, title, done, notes, created_by, created_at"
# The only column names ever put into SQL text; values are always bound parameters.
_UPDATABLE = ("title", "done", "notes")

Task = dict[str, Any]


def _task(row: sqlite3.Row | None) -> Task | None:
    if row is None:
        return None
    return {
        "id": row["id"],
        "title": row["title"],
        "done": bool(row["done"]),
        "notes": row["notes"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
    }


def _get(conn: sqlite3.Connection, task_id: int, owner: str | None) -> Task | None:
    if owner is None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM tasks WHERE id = ? AND created_by = ?", (task_id, owner)
        ).fetchone()
    return _task(row)


class TasksDB:
    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str | Path) -> TasksDB:
        return cls(await Database.open(path, MIGRATIONS))

    async def close(self) -> None:
        await self._db.close()

    async def list_tasks(self, owner: str | None) -> list[Task]:
        def select(conn: sqlite3.Connection) -> list[Task]:
            if owner is None:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM tasks ORDER BY id").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM tasks WHERE created_by = ? ORDER BY id", (owner,)
                ).fetchall()
            return [t for t in map(_task, rows) if t is not None]

        return await self._db.run(select)

    async def create(
        self, title: str, done: bool, notes: str | None, created_by: str, created_at: str
    ) -> Task:
        def insert(conn: sqlite3.Connection) -> Task:
            cur = conn.execute(
                "INSERT INTO tasks (title, done, notes, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                (title, int(done), notes, created_by, created_at),
            )
            task = _get(conn, int(cur.lastrowid or 0), None)
            assert task is not None
            return task

        return await self._db.run(insert)

    async def get(self, task_id: int, owner: str | None) -> Task | None:
        return await self._db.run(lambda c: _get(c, task_id, owner))

    async def update(self, task_id: int, owner: str | None, changes: Mapping[str, Any]) -> Task | None:
        """Apply `changes` (keys from _UPDATABLE) to a task the owner may see; None if there is none."""
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        columns = [c for c in _UPDATABLE if c in changes]
        values = [int(changes[c]) if c == "done" else changes[c] for c in columns]

        def update(conn: sqlite3.Connection) -> Task | None:
            if _get(conn, task_id, owner) is None:
                return None
            if columns:
                assignments = ", ".join(f"{c} = ?" for c in columns)  # names from _UPDATABLE only
                conn.execute(f"UPDATE tasks SET {assignments} WHERE id = ?", (*values, task_id))
            return _get(conn, task_id, owner)

        return await self._db.run(update)

    async def delete(self, task_id: int, owner: str | None) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            if owner is None:
                cur = conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
            else:
                cur = conn.execute("DELETE FROM tasks WHERE id = ? AND created_by = ?", (task_id, owner))
            return cur.rowcount > 0

        return await self._db.run(delete)
