"""The whole system: Bastion in front of the demo upstream, with JWTs from its auth service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.config import Config
from tests.conftest import ROOT, Running, StartBastion, free_port
from upstream import create_app
from upstream.revoke import sidecar_notifier

SECRET = "e2e-demo-secret-0123456789-abcdefghijklmnop"
ADMIN_TOKEN = "e2e-admin-token"
PASSWORDS = {"alice": "alice-pass-123", "admin": "admin-pass-456"}


class Demo:
    def __init__(self, proxy: Running, seen: list[tuple[str, str]]) -> None:
        self.proxy = proxy
        self.seen = seen  # (method, path) of every request that reached the demo upstream

    async def login(self, s: aiohttp.ClientSession, user: str) -> dict[str, str]:
        async with s.post(self.proxy.url + "/auth/login", json={"username": user, "password": PASSWORDS[user]}) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


@pytest.fixture
async def demo(aiohttp_server: AiohttpServer, start_bastion: StartBastion, tmp_path: Path) -> Demo:
    admin_port = free_port()
    seen: list[tuple[str, str]] = []

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        seen.append((request.method, request.path))
        return await handler(request)

    app = create_app(
        auth_db_path=tmp_path / "auth.db", data_db_path=tmp_path / "tasks.db", secret=SECRET,
        seed_passwords=PASSWORDS,
        on_revoke=sidecar_notifier(f"http://127.0.0.1:{admin_port}/revocations", ADMIN_TOKEN),
    )
    app.middlewares.insert(0, record)
    server = await aiohttp_server(app)
    cfg = Config.model_validate({
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN},
        "upstream": {"url": str(server.make_url("")).rstrip("/")},
        "shutdown": {"drain_delay": 0},
        "rules": [str(ROOT / "rules" / "*.yaml")],
        "auth": {"issuers": [{"issuer": "bastion-demo", "audiences": ["bastion-demo-api"], "algorithms": ["HS256"],
                              "secret": SECRET, "typ": "at+jwt", "required_claims": ["exp", "sub", "iat"]}]},
    })
    return Demo(await start_bastion(cfg), seen)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_then_tasks_crud(demo: Demo) -> None:
    url = demo.proxy.url
    async with aiohttp.ClientSession() as s:
        tokens = await demo.login(s, "alice")
        auth = bearer(tokens["access_token"])
        async with s.post(url + "/tasks", json={"title": "write tests"}, headers=auth) as r:
            assert r.status == 201
            task = await r.json()
        assert task["createdBy"] == "alice"
        async with s.get(url + f"/tasks/{task['id']}", headers=auth) as r:
            assert r.status == 200 and (await r.json())["title"] == "write tests"
        async with s.patch(url + f"/tasks/{task['id']}", json={"done": True}, headers=auth) as r:
            assert r.status == 200 and (await r.json())["done"] is True
        async with s.get(url + "/tasks", headers=auth) as r:
            assert [t["id"] for t in await r.json()] == [task["id"]]
        async with s.delete(url + f"/tasks/{task['id']}", headers=auth) as r:
            assert r.status == 204


async def test_spoofed_identity_without_a_token_never_reaches_the_upstream(demo: Demo) -> None:
    async with aiohttp.ClientSession() as s:
        for headers in ({"X-User-Id": "admin", "X-User-Roles": "admin"}, {"X_User_Id": "admin"}):
            async with s.get(demo.proxy.url + "/tasks", headers=headers) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert ("GET", "/tasks") not in demo.seen


async def test_identity_comes_from_the_token_not_the_client(demo: Demo) -> None:
    async with aiohttp.ClientSession() as s:
        tokens = await demo.login(s, "alice")
        headers = {**bearer(tokens["access_token"]), "X-User-Id": "admin", "X-User-Roles": "admin,user"}
        async with s.post(demo.proxy.url + "/tasks", json={"title": "mine"}, headers=headers) as r:
            assert (await r.json())["createdBy"] == "alice"


async def test_user_is_denied_admin_routes_and_upstream_never_sees_them(demo: Demo) -> None:
    async with aiohttp.ClientSession() as s:
        alice = await demo.login(s, "alice")
        async with s.get(demo.proxy.url + "/admin/users", headers=bearer(alice["access_token"])) as r:
            assert r.status == 403
        async with s.get(demo.proxy.url + "/not/a/route", headers=bearer(alice["access_token"])) as r:
            assert r.status == 404
    assert not any(path.startswith(("/admin", "/not")) for _, path in demo.seen)


async def test_refresh_token_reuse_revokes_the_subject_at_the_sidecar(demo: Demo) -> None:
    url = demo.proxy.url
    async with aiohttp.ClientSession() as s:
        first = await demo.login(s, "alice")
        async with s.post(url + "/auth/refresh", json={"refresh_token": first["refresh_token"]}) as r:
            assert r.status == 200
        async with s.get(url + "/tasks", headers=bearer(first["access_token"])) as r:
            assert r.status == 200  # still valid before any reuse
        async with s.post(url + "/auth/refresh", json={"refresh_token": first["refresh_token"]}) as r:
            assert r.status == 401  # reuse detected: the family is revoked and the sidecar is told
        async with s.get(url + "/tasks", headers=bearer(first["access_token"])) as r:
            assert r.status == 401
    records = await demo.proxy.access(6)
    assert records[-1]["bastion.reason"] == "revoked"


async def test_logout_revokes_the_access_token(demo: Demo) -> None:
    url = demo.proxy.url
    async with aiohttp.ClientSession() as s:
        tokens = await demo.login(s, "alice")
        auth = bearer(tokens["access_token"])
        async with s.post(url + "/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=auth) as r:
            assert r.status == 204
        before = len(demo.seen)
        async with s.get(url + "/tasks", headers=auth) as r:
            assert r.status == 401
        assert len(demo.seen) == before


async def test_task_bodies_are_validated_by_the_sidecar(demo: Demo) -> None:
    async with aiohttp.ClientSession() as s:
        tokens = await demo.login(s, "alice")
        auth = bearer(tokens["access_token"])
        before = len(demo.seen)
        async with s.post(demo.proxy.url + "/tasks", json={"title": "x", "createdBy": "admin"}, headers=auth) as r:
            assert r.status == 422
            assert (await r.json(content_type=None))["errors"][0]["field"] == "body"
        async with s.post(demo.proxy.url + "/tasks", data="title=x", headers=auth) as r:
            assert r.status == 415
        assert len(demo.seen) == before  # neither reached the upstream


@pytest.mark.parametrize(
    "method, path, body, cls",
    [
        ("POST", "/tasks", {"title": ";echo MPCSBG$((54+42))$(echo MPCSBG)MPCSBG"}, "cmdi"),  # commix's probe
        ("POST", "/tasks", {"title": "x", "notes": "' OR 1=1 UNION SELECT password FROM users--"}, "sqli"),
        ("POST", "/tasks", {"title": "<img src=x onerror=alert(document.cookie)>"}, "xss"),
        ("GET", "/tasks?q=..%2F..%2F..%2Fetc%2Fpasswd", None, "lfi"),
    ],
)
async def test_the_demo_routes_block_attacks_before_the_upstream(
    demo: Demo, method: str, path: str, body: dict[str, str] | None, cls: str
) -> None:
    async with aiohttp.ClientSession() as s:
        auth = bearer((await demo.login(s, "alice"))["access_token"])
        before = len(demo.seen)
        async with s.request(method, demo.proxy.url + path, json=body, headers=auth) as r:
            assert r.status == 403
            doc = await r.json(content_type="application/problem+json")
        assert doc["attack-class"] == cls  # the class is named, the payload is not
        assert "MPCSBG" not in orjson.dumps(doc).decode() and "passwd" not in orjson.dumps(doc).decode()
        assert len(demo.seen) == before  # the upstream never saw it
        # prose that talks about SQL and shells is no attack
        text = {"title": "select the union of drop-table tennis fans", "notes": "run `ls -la` then echo the plan"}
        async with s.post(demo.proxy.url + "/tasks", json=text, headers=auth) as r:
            assert r.status == 201
