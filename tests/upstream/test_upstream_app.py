"""create_app: its guards, first-start seeding, and the split between the two databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from upstream import create_app

ALICE = {"X-User-Id": "alice"}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def indexes(path: Path, table: str) -> dict[str, list[str]]:
    with sqlite3.connect(path) as conn:
        names = [row[1] for row in conn.execute(f"PRAGMA index_list({table})")]
        return {name: [row[2] for row in conn.execute(f"PRAGMA index_info({name})")] for name in names}


async def test_the_two_databases_are_separate_files(client: Any, env: Any, login: Any) -> None:
    await login("alice")
    resp = await client.post("/tasks", json={"title": "t"}, headers=ALICE)
    assert resp.status == 201
    assert env.auth_db != env.data_db and env.auth_db.exists() and env.data_db.exists()

    auth_tables, data_tables = tables(env.auth_db), tables(env.data_db)
    assert {"users", "user_roles", "refresh_tokens"} <= auth_tables
    assert "tasks" not in auth_tables
    assert "tasks" in data_tables
    assert not {"users", "user_roles", "refresh_tokens"} & data_tables
    assert ["created_by"] in indexes(env.data_db, "tasks").values()


async def test_tasks_survive_a_restart(aiohttp_client: Any, env: Any) -> None:
    client = await aiohttp_client(env.app())
    task = await (await client.post("/tasks", json={"title": "keep me"}, headers=ALICE)).json()
    await client.close()

    client = await aiohttp_client(env.app())
    assert await (await client.get(f"/tasks/{task['id']}", headers=ALICE)).json() == task


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"secret": "too-short"}, "at least 32 bytes", id="short-secret"),
        pytest.param({"access_ttl": 0}, "at least 1 second", id="zero-ttl"),
        pytest.param({"data_db_path": None}, "separate files", id="same-file"),
    ],
)
def test_create_app_refuses_unsafe_settings(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {
        "auth_db_path": tmp_path / "auth.sqlite3",
        "data_db_path": tmp_path / "tasks.sqlite3",
        "secret": "s" * 32,
    }
    kwargs.update(overrides)
    if kwargs["data_db_path"] is None:
        kwargs["data_db_path"] = tmp_path / "." / "auth.sqlite3"
    with pytest.raises(ValueError, match=message):
        create_app(**kwargs)


async def test_first_start_seeds_users_and_prints_only_generated_passwords(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("DEMO_ALICE_PASSWORD", "alice-from-env-123")
    paths = {"auth_db_path": tmp_path / "auth.sqlite3", "data_db_path": tmp_path / "tasks.sqlite3"}

    client = await aiohttp_client(create_app(secret="s" * 32, **paths))  # passwords from the environment
    out = capsys.readouterr().out
    assert "alice-from-env-123" not in out
    printed = [line for line in out.splitlines() if line.startswith("demo user ")]
    assert len(printed) == 1 and printed[0].startswith("demo user admin password: ")
    admin_password = printed[0].split(": ", 1)[1]
    assert len(admin_password) >= 12

    for username, password in [("alice", "alice-from-env-123"), ("admin", admin_password)]:
        resp = await client.post("/auth/login", json={"username": username, "password": password})
        assert resp.status == 200, username
    await client.close()

    monkeypatch.setenv("DEMO_ALICE_PASSWORD", "changed-later-456")
    client = await aiohttp_client(create_app(secret="s" * 32, **paths))
    assert "demo user" not in capsys.readouterr().out, "seeding happens only once"
    resp = await client.post("/auth/login", json={"username": "alice", "password": "alice-from-env-123"})
    assert resp.status == 200, "an existing user table is never re-seeded"
