"""Login, access-token claims, refresh rotation with reuse detection, logout, revocation hook."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

import upstream.auth
from upstream.passwords import verify_password

Login = Callable[[str], Awaitable[dict[str, Any]]]


def decode(token: str, secret: str) -> dict[str, Any]:
    return jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience="bastion-demo-api",
        issuer="bastion-demo",
        options={"require": ["iss", "aud", "sub", "exp", "iat", "nbf", "jti"]},
    )


@pytest.mark.parametrize(
    ("username", "roles"),
    [pytest.param("alice", ["user"], id="alice"), pytest.param("admin", ["admin", "user"], id="admin")],
)
async def test_login_issues_a_verifiable_access_token(
    client: TestClient, env: Any, username: str, roles: list[str]
) -> None:
    before = int(time.time())
    resp = await client.post("/auth/login", json={"username": username, "password": env.passwords[username]})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["refresh_token"], str) and len(body["refresh_token"]) >= 40

    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    claims = decode(body["access_token"], env.secret)
    assert claims["sub"] == username
    assert sorted(claims["roles"]) == roles
    assert claims["scope"] == "tasks:read tasks:write"
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 900
    assert len(claims["jti"]) >= 16


async def test_access_ttl_is_configurable(aiohttp_client: Any, env: Any) -> None:
    client = await aiohttp_client(env.app(access_ttl=60))
    resp = await client.post("/auth/login", json={"username": "alice", "password": env.passwords["alice"]})
    body = await resp.json()
    claims = decode(body["access_token"], env.secret)
    assert body["expires_in"] == 60
    assert claims["exp"] - claims["iat"] == 60


async def test_token_signed_with_another_secret_does_not_verify(login: Login) -> None:
    body = await login("alice")
    with pytest.raises(jwt.InvalidSignatureError):
        decode(body["access_token"], "x" * 32)


async def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient) -> None:
    answers = []
    for username, password in [("alice", "not-her-password"), ("mallory", "whatever-password")]:
        resp = await client.post("/auth/login", json={"username": username, "password": password})
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        answers.append(await resp.json())
    assert answers[0] == answers[1]
    assert answers[0]["status"] == 401
    assert {"type", "title", "status"} <= answers[0].keys()


async def test_unknown_user_still_costs_one_scrypt_verification(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting_verify(password: str, encoded: str) -> bool:
        calls.append(encoded)
        return verify_password(password, encoded)

    monkeypatch.setattr(upstream.auth, "verify_password", counting_verify)
    resp = await client.post("/auth/login", json={"username": "nobody", "password": "x"})
    assert resp.status == 401
    assert len(calls) == 1 and calls[0].startswith("scrypt$16384$8$1$")


@pytest.mark.parametrize(
    ("payload", "status", "fields"),
    [
        pytest.param({"username": "alice"}, 422, {"password"}, id="missing-password"),
        pytest.param({"username": "alice", "password": 12345}, 422, {"password"}, id="password-not-string"),
        pytest.param({"username": "", "password": "SENTINEL-pw"}, 422, {"username"}, id="empty-username"),
        pytest.param(
            {"username": "alice", "password": "SENTINEL-pw", "admin": True}, 422, {"admin"}, id="extra-field"
        ),
        pytest.param(["alice", "SENTINEL-pw"], 422, {"(body)"}, id="not-an-object"),
    ],
)
async def test_login_rejects_malformed_bodies_without_echoing_them(
    client: TestClient, payload: Any, status: int, fields: set[str]
) -> None:
    resp = await client.post("/auth/login", json=payload)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert {e["field"] for e in body["errors"]} == fields
    assert "SENTINEL" not in await resp.text()


async def test_login_with_invalid_json_is_400(client: TestClient) -> None:
    resp = await client.post(
        "/auth/login", data=b'{"username": "alice",', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"


async def test_refresh_rotates_within_the_family(client: TestClient, env: Any, login: Login) -> None:
    first = await login("alice")
    resp = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 200
    second = await resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    claims = decode(second["access_token"], env.secret)
    assert claims["sub"] == "alice" and claims["roles"] == ["user"]
    assert claims["jti"] != decode(first["access_token"], env.secret)["jti"]

    resp = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert resp.status == 200
    third = await resp.json()
    with sqlite3.connect(env.auth_db) as conn:
        families = conn.execute("SELECT COUNT(DISTINCT family_id), COUNT(*) FROM refresh_tokens").fetchone()
    assert families == (1, 3)
    assert third["refresh_token"] not in {first["refresh_token"], second["refresh_token"]}
    assert env.revocations == []


async def test_refresh_reuse_revokes_the_whole_family(client: TestClient, env: Any, login: Login) -> None:
    stolen = await login("alice")
    other_session = await login("alice")
    resp = await client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
    newest = await resp.json()

    before = int(time.time())
    resp = await client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})  # replay
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    resp = await client.post("/auth/refresh", json={"refresh_token": newest["refresh_token"]})
    assert resp.status == 401, "the newest token of a revoked family must stop working too"

    assert len(env.revocations) == 1
    kind, value, expires_at = env.revocations[0]
    assert (kind, value) == ("sub", "alice")
    assert before + 900 <= expires_at <= int(time.time()) + 900

    resp = await client.post("/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    assert resp.status == 200, "other families (other devices) are not affected"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-token-we-issued", id="unknown"),
        pytest.param("' OR '1'='1", id="sql-injection"),
    ],
)
async def test_refresh_with_unknown_token_is_401(client: TestClient, env: Any, token: str) -> None:
    resp = await client.post("/auth/refresh", json={"refresh_token": token})
    assert resp.status == 401
    assert env.revocations == []


async def test_expired_refresh_token_is_401(client: TestClient, env: Any, login: Login) -> None:
    tokens = await login("alice")
    with sqlite3.connect(env.auth_db) as conn:
        conn.execute("UPDATE refresh_tokens SET expires_at = ?", (int(time.time()) - 1,))
    resp = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401


async def test_refresh_tokens_expire_after_14_days(client: TestClient, env: Any, login: Login) -> None:
    await login("alice")
    with sqlite3.connect(env.auth_db) as conn:
        issued, expires = conn.execute("SELECT issued_at, expires_at FROM refresh_tokens").fetchone()
    assert expires - issued == 14 * 24 * 3600


async def test_logout_revokes_the_family(client: TestClient, env: Any, login: Login) -> None:
    first = await login("alice")
    resp = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    second = await resp.json()

    resp = await client.post("/auth/logout", json={"refresh_token": second["refresh_token"]})
    assert resp.status == 204
    resp = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert resp.status == 401
    assert env.revocations == [], "no bearer token was presented, so there is nothing to revoke by jti"


async def test_logout_with_bearer_reports_its_jti(client: TestClient, env: Any, login: Login) -> None:
    tokens = await login("alice")
    claims = decode(tokens["access_token"], env.secret)
    resp = await client.post(
        "/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert resp.status == 204
    assert env.revocations == [("jti", claims["jti"], claims["exp"])]


async def test_logout_ignores_a_bearer_token_of_another_user(
    client: TestClient, env: Any, login: Login
) -> None:
    alice, admin = await login("alice"), await login("admin")
    resp = await client.post(
        "/auth/logout",
        json={"refresh_token": alice["refresh_token"]},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert resp.status == 204
    assert env.revocations == []


async def test_logout_with_unknown_token_is_idempotent(client: TestClient, env: Any) -> None:
    resp = await client.post("/auth/logout", json={"refresh_token": "never-issued"})
    assert resp.status == 204
    assert env.revocations == []


async def test_a_failing_revocation_hook_is_logged_not_fatal(
    aiohttp_client: Any, env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    async def broken_hook(kind: str, value: str, expires_at: int) -> None:
        calls.append(kind)
        raise ConnectionError("sidecar admin endpoint down")

    client = await aiohttp_client(env.app(on_revoke=broken_hook))
    login_body = {"username": "alice", "password": env.passwords["alice"]}
    tokens = await (await client.post("/auth/login", json=login_body)).json()
    await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    resp = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401

    fresh = await (await client.post("/auth/login", json=login_body)).json()
    resp = await client.post(
        "/auth/logout",
        json={"refresh_token": fresh["refresh_token"]},
        headers={"Authorization": f"Bearer {fresh['access_token']}"},
    )
    assert resp.status == 204
    assert calls == ["sub", "jti"]
    assert "revocation hook failed" in caplog.text
    resp = await client.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert resp.status == 401, "the family is revoked even though the hook failed"


async def test_stored_secrets_are_hashed(client: TestClient, env: Any, login: Login) -> None:
    tokens = await login("alice")
    with sqlite3.connect(env.auth_db) as conn:
        (password_hash,) = conn.execute("SELECT password_hash FROM users WHERE username = 'alice'").fetchone()
        (token_hash,) = conn.execute("SELECT token_hash FROM refresh_tokens").fetchone()
    assert password_hash.startswith("scrypt$16384$8$1$")
    assert env.passwords["alice"] not in password_hash
    assert token_hash != tokens["refresh_token"]
    assert len(token_hash) == 64  # hex SHA-256
    files = [env.auth_db, env.auth_db.with_name(env.auth_db.name + "-wal")]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    assert tokens["refresh_token"].encode() not in raw
    assert env.passwords["alice"].encode() not in raw
