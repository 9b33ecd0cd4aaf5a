"""Rate-limit fixtures: policies, a controllable clock, both stores on one contract, Bastion with rules.

`store` is parametrized over `memory` and `redis` (a real redis-server, the session one, each test
under its own key prefix), so every contract test runs against both backends.
"""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from proxy.config import Config, LimitSpec, LoginLimits, Store
from proxy.ratelimit.base import Policy, RateStore, compile_limits
from proxy.ratelimit.memory import MemoryStore
from proxy.ratelimit.redis_store import RedisStore
from tests.conftest import RedisServer, make_config

ISSUER = "https://issuer.test"
SECRET = "ratelimit-test-secret-0123456789-abcdef"


def policy(
    key: str | list[str], rate: str, burst: int | None = None, name: str | None = None, scope: str = ""
) -> Policy:
    spec = LimitSpec.model_validate({"key": key, "rate": rate, "burst": burst, "name": name})
    return compile_limits([spec], scope or None)[0]


class Clock:
    """Microseconds that move only when a test says so."""

    def __init__(self, start: int = 1_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, us: int) -> None:
        self.now += us


def redis_store_config(url: str, **store: Any) -> Store:
    # a generous timeout: these tests are about behaviour, not about a loaded CI machine's latency
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    data: dict[str, Any] = {"backend": "redis", "redis": {"url": url, "key_prefix": prefix, "timeout": "1s"}}
    for key, value in store.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return Store.model_validate(data)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RateStore]:
    """Each backend with short lockouts (200 ms, doubling to at most 800 ms) for the login contract."""
    login = LoginLimits(max_failures=3, ip_max_failures=5, window="10s", lockout="200ms", max_lockout="800ms")
    if request.param == "memory":
        yield MemoryStore(login)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis = RedisStore(redis_store_config(server.url), login)
    await redis.start()
    yield redis
    await redis.close()


def token(sub: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": sub, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


AUTH = {"issuers": [{"issuer": ISSUER, "algorithms": ["HS256"], "secret": SECRET}]}

RULES = """
rules:
  - id: items
    match: {path: "/items/{id}", methods: [GET]}
    allow: anonymous
    rate_limit: [{key: ip, rate: 3/hour}]
  - id: open
    match: {path: "/open/**"}
    allow: anonymous
  - id: keyed
    match: {path: "/keyed"}
    allow: anonymous
    rate_limit: [{key: "header:X-Api-Key", rate: 2/hour, name: api-key}]
  - id: me
    match: {path: "/me"}
    allow: authenticated
    rate_limit: [{key: sub, rate: 2/hour, name: user}]
  - id: login
    description: the echo upstream answers POST /status/<code> with that code
    match: {path: "/status/{code}", methods: [POST]}
    allow: anonymous
    login: true
  - id: sudo
    match: {path: /sudo, methods: [POST]}
    allow: authenticated
    login: {username_field: user}
"""


WriteRules = Callable[..., Config]


@pytest.fixture
def rules_config(tmp_path: Path) -> Callable[..., Config]:
    """A config whose rules are `RULES` (or the given YAML), written next to it."""

    def build(upstream_url: str, rules: str = RULES, **overrides: Any) -> Config:
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(rules).lstrip("\n"), encoding="utf-8")
        return make_config(upstream_url, rules=[str(path)], rules_watch=False, **overrides)

    return build
