"""The tasks API. It has no authentication of its own: who is calling comes from headers.

SECURITY: `X-User-Id` and `X-User-Roles` are trusted blindly. That is only safe because the Bastion
sidecar verifies the access token, strips any client-sent copies of these headers and sets them
itself, and because this app is reachable only through the sidecar (loopback or a unix socket).

A task owned by someone else answers 404, exactly like a missing one, so ids cannot be probed
for existence. Admins (role `admin`) see and change every task.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from upstream.responses import Problem, json_response
from upstream.tasksdb import TasksDB
from upstream.validation import read_model

USER_HEADER = "X-User-Id"
ROLES_HEADER = "X-User-Roles"
ADMIN_ROLE = "admin"
MAX_USER_ID_CHARS = 256
_TASK_ID = re.compile(r"[0-9]{1,18}")  # fits SQLite's signed 64-bit INTEGER

Title = Annotated[str, Field(min_length=1, max_length=200)]
Notes = Annotated[str, Field(max_length=2000)]


class TaskCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    title: Title
    done: bool = False
    notes: Notes | None = None


class TaskPatch(BaseModel):
    """Only the fields present are changed; `notes: null` clears the notes."""

    model_config = ConfigDict(strict=True, extra="forbid")
    title: Title | None = None
    done: bool | None = None
    notes: Notes | None = None

    @field_validator("title", "done")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:  # only reached for an explicit null; an absent field keeps its default
            raise ValueError(f"{info.field_name} may not be null")
        return value


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    is_admin: bool

    @property
    def scope(self) -> str | None:
        """The owner filter for queries: None lets an admin reach every task."""
        return None if self.is_admin else self.user_id


def caller(request: web.Request) -> Caller:
    ids = request.headers.getall(USER_HEADER, [])
    # Exactly one, non-empty: an ambiguous identity is no identity.
    if len(ids) != 1 or not ids[0].strip() or len(ids[0]) > MAX_USER_ID_CHARS:
        raise Problem(
            401, "no authenticated user", headers={"WWW-Authenticate": 'Bearer realm="bastion-demo"'}
        )
    roles = {r.strip() for value in request.headers.getall(ROLES_HEADER, []) for r in value.split(",")}
    return Caller(ids[0].strip(), ADMIN_ROLE in roles)


def task_id(request: web.Request) -> int:
    raw = request.match_info["task_id"]
    if not _TASK_ID.fullmatch(raw):
        raise Problem(404, "task not found")
    return int(raw)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


TASKS = web.AppKey("tasks", TasksDB)


async def list_tasks(request: web.Request) -> web.Response:
    who = caller(request)
    return json_response(await request.app[TASKS].list_tasks(who.scope))


async def create_task(request: web.Request) -> web.Response:
    who = caller(request)
    body = await read_model(request, TaskCreate)
    task = await request.app[TASKS].create(body.title, body.done, body.notes, who.user_id, now_iso())
    return json_response(task, status=201, headers={"Location": f"/tasks/{task['id']}"})


async def get_task(request: web.Request) -> web.Response:
    who = caller(request)
    task = await request.app[TASKS].get(task_id(request), who.scope)
    if task is None:
        raise Problem(404, "task not found")
    return json_response(task)


async def patch_task(request: web.Request) -> web.Response:
    who = caller(request)
    tid = task_id(request)
    body = await read_model(request, TaskPatch)
    changes = body.model_dump(include=body.model_fields_set)
    task = await request.app[TASKS].update(tid, who.scope, changes)
    if task is None:
        raise Problem(404, "task not found")
    return json_response(task)


async def delete_task(request: web.Request) -> web.Response:
    who = caller(request)
    if not await request.app[TASKS].delete(task_id(request), who.scope):
        raise Problem(404, "task not found")
    return web.Response(status=204)


def setup(app: web.Application, *, db_path: str | Path) -> None:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db = await TasksDB.open(db_path)
        try:
            app[TASKS] = db
            yield
        finally:
            await db.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/tasks", list_tasks)
    app.router.add_post("/tasks", create_task)
    app.router.add_get("/tasks/{task_id}", get_task)
    app.router.add_patch("/tasks/{task_id}", patch_task)
    app.router.add_delete("/tasks/{task_id}", delete_task)
