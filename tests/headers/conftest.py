"""Fixtures for response hardening: an upstream that answers with whatever headers a test asks for,
Bastion in front of it with a small rule set, a token minter, and raw-socket helpers that keep
repeated header lines (duplicates are part of what these tests look for)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy
from pytest_aiohttp import AiohttpServer

from proxy.decision import Denial, Reason
from proxy.pipeline import Pipeline
from tests.conftest import Running, StartBastion, make_config

ISSUER = "https://issuer.example"
SECRET = "header-tests-secret-0123456789-abcdefgh"
AUTH = {"issuers": [{"issuer": ISSUER, "audiences": ["api"], "algorithms": ["HS256"], "secret": SECRET}]}

RULES = """
roles: {admin: []}
rules:
  - id: public
    match: {path: "/public/**"}
    allow: anonymous
  - id: private
    match: {path: "/private/**"}
    allow: authenticated
  - id: admin
    match: {path: "/admin/**"}
    allow: {roles_any: [admin]}
"""

# Bastion's API profile (ANCHORS.md §2.5 and the issue), on every response
API_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
HSTS = "max-age=63072000; includeSubDomains"


@dataclass
class HeaderUpstream:
    """Answers `?h=Name:value` (repeatable) as response headers, `?status=N`, `?body=text`, `?sleep=s`."""

    server: Any = None
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


def header_app(rec: HeaderUpstream) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        rec.seen.append((request.method, request.path))
        await request.read()
        q = request.query
        if "sleep" in q:
            await asyncio.sleep(float(q["sleep"]))
        body = q.get("body", '{"ok": true}').encode()
        resp = web.Response(status=int(q.get("status", "200")), body=body, content_type="application/json")
        for item in q.getall("h", ()):
            name, _, value = item.partition(":")
            resp.headers.add(name, value)
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def hup(aiohttp_server: AiohttpServer) -> HeaderUpstream:
    rec = HeaderUpstream()
    rec.server = await aiohttp_server(header_app(rec))
    return rec


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str = RULES) -> str:
        path = tmp_path / f"rules-{len(list(tmp_path.glob('rules-*')))}.yaml"
        path.write_text(text)
        return str(path)

    return write


Gate = Callable[..., Awaitable[Running]]


@pytest.fixture
def gate(hup: HeaderUpstream, start_bastion: StartBastion, rules_file: Callable[[str], str]) -> Gate:
    """Bastion in front of `hup` with RULES (or `rules=` text) and an HS256 issuer; overrides go to make_config."""

    async def start(rules: str = RULES, **overrides: Any) -> Running:
        overrides.setdefault("auth", AUTH)
        upstream_url = overrides.pop("upstream_url", hup.url)
        return await start_bastion(make_config(upstream_url, rules=[rules_file(rules)], **overrides))

    return start


def token(sub: str = "alice", roles: tuple[str, ...] = ()) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "api", "sub": sub, "iat": now, "exp": now + 300, "roles": list(roles)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Awaitable[Answer]]]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None, **kw: Any) -> Answer:
            async with session.request(method, url, headers=headers, allow_redirects=False, **kw) as resp:
                return Answer(resp.status, resp.headers, await resp.read())

        yield fetch


def head_lines(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, every header line in order (names lower-cased, repeats kept) and the body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        pairs.append((name.strip().lower(), value.strip()))
    return int(lines[0].split(" ", 2)[1]), pairs, body


class Raise:
    """A check that refuses every request with one status: renders any Denial the real checks may raise."""

    def __init__(self, status: int, reason: Reason, headers: dict[str, str] | None = None) -> None:
        self.name = f"raise_{status}"
        self.denial = Denial(status, reason, headers=headers, detail="test")

    async def __call__(self, ctx: object) -> None:
        raise self.denial


class Crash:
    name = "crash"

    async def __call__(self, ctx: object) -> None:
        raise RuntimeError("boom in /srv/app/secret_module.py line 42 (aiohttp 3.14, Python 3.11)")


def add_check(running: Running, check: Any) -> None:
    """Append a check to the live pipeline, keeping the real checks and their response hooks."""
    handler = running.bastion.handler
    handler.pipeline = Pipeline([*handler.pipeline.checks, check])
