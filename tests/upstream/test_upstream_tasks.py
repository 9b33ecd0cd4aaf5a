"""The tasks API: CRUD, per-user isolation, validation and the trusted identity headers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

ALICE = {"X-User-Id": "alice", "X-User-Roles": "user"}
BOB = {"X-User-Id": "bob", "X-User-Roles": "user"}
ADMIN = {"X-User-Id": "admin", "X-User-Roles": "admin,user"}


async def create(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    resp = await client.post("/tasks", json={"title": "a task", **fields}, headers=headers)
    assert resp.status == 201, await resp.text()
    task: dict[str, Any] = await resp.json()
    return task


async def test_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_crud_round_trip(client: TestClient) -> None:
    resp = await client.post("/tasks", json={"title": "buy milk", "notes": "2 litres"}, headers=ALICE)
    assert resp.status == 201
    task = await resp.json()
    assert task.keys() == {"id", "title", "done", "notes", "createdBy", "createdAt"}
    assert isinstance(task["id"], int)
    assert (task["title"], task["done"], task["notes"], task["createdBy"]) == (
        "buy milk",
        False,
        "2 litres",
        "alice",
    )
    assert datetime.fromisoformat(task["createdAt"]).tzinfo is not None
    assert resp.headers["Location"] == f"/tasks/{task['id']}"

    url = f"/tasks/{task['id']}"
    resp = await client.get(url, headers=ALICE)
    assert resp.status == 200 and await resp.json() == task

    resp = await client.get("/tasks", headers=ALICE)
    assert await resp.json() == [task]

    resp = await client.patch(url, json={"done": True}, headers=ALICE)
    assert resp.status == 200
    assert await resp.json() == {**task, "done": True}, "fields not sent are left alone"

    resp = await client.patch(url, json={"notes": None, "title": "buy oat milk"}, headers=ALICE)
    assert await resp.json() == {**task, "done": True, "notes": None, "title": "buy oat milk"}

    resp = await client.delete(url, headers=ALICE)
    assert resp.status == 204
    resp = await client.get(url, headers=ALICE)
    assert resp.status == 404
    resp = await client.delete(url, headers=ALICE)
    assert resp.status == 404


async def test_defaults_and_empty_patch(client: TestClient) -> None:
    task = await create(client, ALICE)
    assert (task["done"], task["notes"]) == (False, None)
    resp = await client.patch(f"/tasks/{task['id']}", json={}, headers=ALICE)
    assert resp.status == 200 and await resp.json() == task


async def test_created_by_comes_from_the_header_not_the_body(client: TestClient) -> None:
    resp = await client.post("/tasks", json={"title": "t", "createdBy": "admin"}, headers=ALICE)
    assert resp.status == 422, "createdBy is not a writable field"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        pytest.param("GET", None, id="get"),
        pytest.param("PATCH", {"done": True}, id="patch"),
        pytest.param("DELETE", None, id="delete"),
    ],
)
@pytest.mark.parametrize("owner", [pytest.param(ADMIN, id="admins-task"), pytest.param(BOB, id="bobs-task")])
async def test_other_users_tasks_are_404_for_alice(
    client: TestClient, method: str, body: dict[str, Any] | None, owner: dict[str, str]
) -> None:
    task = await create(client, owner, title="private")
    resp = await client.request(method, f"/tasks/{task['id']}", json=body, headers=ALICE)
    assert resp.status == 404
    missing = await client.request(method, "/tasks/999999", json=body, headers=ALICE)
    assert await resp.json() == await missing.json(), "indistinguishable from a task that does not exist"

    resp = await client.get(f"/tasks/{task['id']}", headers=owner)
    assert await resp.json() == task, "unchanged"


async def test_list_shows_own_tasks_and_admin_sees_all(client: TestClient) -> None:
    mine = await create(client, ALICE, title="alice's")
    bobs = await create(client, BOB, title="bob's")
    admins = await create(client, ADMIN, title="admin's")

    assert await (await client.get("/tasks", headers=ALICE)).json() == [mine]
    assert await (await client.get("/tasks", headers=BOB)).json() == [bobs]
    assert await (await client.get("/tasks", headers=ADMIN)).json() == [mine, bobs, admins]


async def test_admin_can_change_and_delete_any_task(client: TestClient) -> None:
    task = await create(client, ALICE)
    resp = await client.patch(f"/tasks/{task['id']}", json={"done": True}, headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["createdBy"] == "alice", "the owner does not change"
    resp = await client.delete(f"/tasks/{task['id']}", headers=ADMIN)
    assert resp.status == 204


@pytest.mark.parametrize(
    ("roles", "is_admin"),
    [
        pytest.param("admin", True, id="admin"),
        pytest.param("user, admin", True, id="list-with-spaces"),
        pytest.param("administrator", False, id="prefix-is-not-admin"),
        pytest.param("Admin", False, id="case-sensitive"),
        pytest.param("", False, id="empty"),
    ],
)
async def test_admin_role_parsing(client: TestClient, roles: str, is_admin: bool) -> None:
    await create(client, BOB)
    resp = await client.get("/tasks", headers={"X-User-Id": "carol", "X-User-Roles": roles})
    assert len(await resp.json()) == (1 if is_admin else 0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/tasks", id="list"),
        pytest.param("POST", "/tasks", id="create"),
        pytest.param("GET", "/tasks/1", id="get"),
        pytest.param("PATCH", "/tasks/1", id="patch"),
        pytest.param("DELETE", "/tasks/1", id="delete"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-User-Id": "  "}, id="blank"),
        pytest.param({"X-User-Roles": "admin"}, id="roles-without-user"),
    ],
)
async def test_no_user_header_is_401(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    resp = await client.request(method, path, json={"title": "t"}, headers=headers)
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 401


async def test_two_user_headers_are_401(client: TestClient) -> None:
    resp = await client.get("/tasks", headers=[("X-User-Id", "alice"), ("X-User-Id", "admin")])
    assert resp.status == 401


SENTINEL = "SENTINEL-VALUE-7f3a"


@pytest.mark.parametrize(
    ("method", "body", "fields"),
    [
        pytest.param("POST", {}, {"title"}, id="title-missing"),
        pytest.param("POST", {"title": ""}, {"title"}, id="title-empty"),
        pytest.param("POST", {"title": SENTINEL * 20}, {"title"}, id="title-201-plus"),
        pytest.param("POST", {"title": 42}, {"title"}, id="title-not-string"),
        pytest.param("POST", {"title": "t", "done": SENTINEL}, {"done"}, id="done-string"),
        pytest.param("POST", {"title": "t", "done": 1}, {"done"}, id="done-int"),
        pytest.param("POST", {"title": "t", "notes": SENTINEL * 200}, {"notes"}, id="notes-too-long"),
        pytest.param("POST", {"title": "t", "owner": SENTINEL}, {"owner"}, id="extra-field"),
        pytest.param("POST", {"title": "", "done": "no", "x": 1}, {"title", "done", "x"}, id="several"),
        pytest.param("PATCH", {"title": None}, {"title"}, id="patch-title-null"),
        pytest.param("PATCH", {"done": None}, {"done"}, id="patch-done-null"),
        pytest.param("PATCH", {"title": "x" * 201}, {"title"}, id="patch-title-too-long"),
        pytest.param("PATCH", {"id": 7}, {"id"}, id="patch-id"),
        pytest.param("PATCH", [SENTINEL], {"(body)"}, id="patch-not-object"),
    ],
)
async def test_validation_errors_are_422_naming_fields_only(
    client: TestClient, method: str, body: Any, fields: set[str]
) -> None:
    task = await create(client, ALICE)
    path = "/tasks" if method == "POST" else f"/tasks/{task['id']}"
    resp = await client.request(method, path, json=body, headers=ALICE)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    assert {e["field"] for e in problem["errors"]} == fields
    assert SENTINEL not in await resp.text()
    assert await (await client.get(f"/tasks/{task['id']}", headers=ALICE)).json() == task


async def test_limits_are_inclusive(client: TestClient) -> None:
    task = await create(client, ALICE, title="t" * 200, notes="n" * 2000)
    assert len(task["title"]) == 200 and len(task["notes"]) == 2000


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize(
    "raw", [pytest.param(b'{"title": "t"', id="truncated"), pytest.param(b"\xff\xfe", id="not-utf8")]
)
async def test_invalid_json_is_400(client: TestClient, method: str, raw: bytes) -> None:
    task = await create(client, ALICE)
    path = "/tasks" if method == "POST" else f"/tasks/{task['id']}"
    headers = {**ALICE, "Content-Type": "application/json"}
    resp = await client.request(method, path, data=raw, headers=headers)
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param("abc", id="letters"),
        pytest.param("1.5", id="decimal"),
        pytest.param("-1", id="negative"),
        pytest.param("1e3", id="exponent"),
        pytest.param("99999999999999999999", id="beyond-int64"),
        pytest.param("%D9%A1", id="arabic-digit-one"),
        pytest.param("1%20OR%201=1", id="sql"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_non_integer_id_is_404(client: TestClient, task_id: str, method: str) -> None:
    await create(client, ALICE)
    resp = await client.request(method, f"/tasks/{task_id}", json={"done": True}, headers=ADMIN)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


async def test_sql_injection_in_title_is_stored_literally(client: TestClient) -> None:
    evil = "x'); DROP TABLE tasks; --"
    task = await create(client, ALICE, title=evil, notes="' OR '1'='1")
    assert (task["title"], task["notes"]) == (evil, "' OR '1'='1")
    resp = await client.get(f"/tasks/{task['id']}", headers=ALICE)
    assert (await resp.json())["title"] == evil
    assert len(await (await client.get("/tasks", headers=ADMIN)).json()) == 1, "the table survived"


async def test_sql_injection_in_user_header_matches_nothing(client: TestClient) -> None:
    await create(client, BOB)
    resp = await client.get("/tasks", headers={"X-User-Id": "x' OR '1'='1"})
    assert await resp.json() == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/nope", 404, id="unknown-route"),
        pytest.param("PUT", "/tasks", 405, id="wrong-method"),
    ],
)
async def test_router_errors_are_problems(client: TestClient, method: str, path: str, status: int) -> None:
    resp = await client.request(method, path, headers=ALICE)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == status


async def test_oversized_body_is_413_problem(client: TestClient) -> None:
    resp = await client.post("/tasks", data=b"x" * (65 * 1024), headers=ALICE)
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"
