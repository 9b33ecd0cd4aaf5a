"""A rule that allows anonymous access: a missing or bad token is ignored (the request goes on as
anonymous), and the reason is logged; the same tokens on a protected rule are denied.

Unit level: `Authenticate` is called directly with a `RequestContext` whose `rule` allows anonymous
access, as the access-rule engine will set it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.checks.authn import Authenticate
from proxy.config import Auth
from proxy.context import RequestContext
from proxy.decision import Denial
from proxy.jwt.cache import TokenCache
from proxy.jwt.setup import build_verifier
from proxy.revocation import MemoryRevocations
from tests.jwt.conftest import AUD, COOKIE, HS_ISS, HS_SECRET, Forger

Headers = Sequence[tuple[str, str]]


def authenticate(revocations: MemoryRevocations | None = None) -> Authenticate:
    cfg = Auth.model_validate(
        {
            "token_sources": [{"header": "Authorization", "scheme": "Bearer"}, {"cookie": COOKIE}],
            "issuers": [{"issuer": HS_ISS, "algorithms": ["HS256"], "secret": HS_SECRET.decode(), "audiences": [AUD]}],
        }
    )
    verifier, jwks = build_verifier(cfg, fetch=None)  # type: ignore[arg-type]
    assert jwks == []
    return Authenticate(cfg, verifier, TokenCache(100, 300), revocations or MemoryRevocations())


def context(headers: Headers, *, anonymous: bool, method: str = "GET") -> RequestContext:
    return RequestContext(
        request_id="req-1",
        method=method,
        raw_target="/auth/refresh",
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        peer_ip="127.0.0.1",
        client_ip="127.0.0.1",
        scheme="http",
        host="svc.example",
        started=time.monotonic(),
        path="/auth/refresh",
        rule=SimpleNamespace(allows_anonymous=anonymous),
    )


def bearer(build: Callable[[Forger], str]) -> Callable[[Forger], Headers]:
    return lambda f: [("Authorization", f"Bearer {build(f)}")]


BAD_TOKENS = [
    pytest.param(bearer(lambda f: "junk"), "jwt_malformed", id="invalid-junk"),
    pytest.param(bearer(lambda f: f.legit(exp=int(time.time()) - 3600)), "expired", id="expired"),
    pytest.param(bearer(lambda f: f.token(header={"alg": "none"}, signature=b"x")), "alg_none", id="alg-none"),
    pytest.param(bearer(lambda f: f.token(key=b"x" * 40)), "bad_signature", id="bad-signature"),
    pytest.param(bearer(lambda f: f.legit(aud="other")), "wrong_audience", id="wrong-audience"),
    pytest.param(lambda f: [("Authorization", "Basic YTpi")], "jwt_wrong_scheme", id="basic-credentials"),
    pytest.param(
        lambda f: [("Authorization", f"Bearer {f.legit()}"), ("Authorization", f"Bearer {f.legit()}")],
        "jwt_multiple",
        id="two-tokens",
    ),
    pytest.param(bearer(lambda f: "e" * 9000), "jwt_too_large", id="too-large"),
]


@pytest.mark.parametrize(("build", "reason"), BAD_TOKENS)
async def test_anonymous_rule_ignores_a_bad_token_and_logs_why(
    forge: Forger, build: Callable[[Forger], Headers], reason: str
) -> None:
    ctx = context([*build(forge), ("X-User-Id", "admin")], anonymous=True)
    await authenticate()(ctx)  # no Denial
    assert ctx.principal is None
    assert ctx.log["bastion.auth_ignored"] == reason
    assert "user.id" not in ctx.log
    assert not ctx.upstream_headers


@pytest.mark.parametrize(("build", "reason"), BAD_TOKENS)
async def test_protected_rule_denies_the_same_tokens(
    forge: Forger, build: Callable[[Forger], Headers], reason: str
) -> None:
    ctx = context(build(forge), anonymous=False)
    with pytest.raises(Denial) as caught:
        await authenticate()(ctx)
    assert (caught.value.status, caught.value.reason.value) == (401, reason)
    assert ctx.principal is None


async def test_anonymous_rule_without_any_token_is_plain_anonymous(forge: Forger) -> None:
    ctx = context([], anonymous=True)
    await authenticate()(ctx)
    assert ctx.principal is None
    assert "bastion.auth_ignored" not in ctx.log  # nothing was presented, so nothing was ignored
    assert not ctx.upstream_headers


async def test_protected_rule_without_any_token_is_jwt_missing(forge: Forger) -> None:
    with pytest.raises(Denial) as caught:
        await authenticate()(context([], anonymous=False))
    assert (caught.value.status, caught.value.reason.value) == (401, "jwt_missing")
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}


async def test_anonymous_rule_ignores_a_revoked_token(forge: Forger) -> None:
    revocations = MemoryRevocations()
    authn = authenticate(revocations)
    token = forge.legit(jti="gone-1")
    await authn(ok := context([("Authorization", f"Bearer {token}")], anonymous=True))
    assert ok.principal is not None and ok.principal.subject == "alice"
    await revocations.revoke_token("gone-1", time.time() + 600)
    ctx = context([("Authorization", f"Bearer {token}")], anonymous=True)
    await authn(ctx)
    assert ctx.principal is None
    assert ctx.log["bastion.auth_ignored"] == "revoked"


async def test_anonymous_rule_ignores_a_cross_site_cookie_token(forge: Forger) -> None:
    ctx = context([("Cookie", f"{COOKIE}={forge.legit()}")], anonymous=True, method="POST")
    await authenticate()(ctx)
    assert ctx.principal is None
    assert ctx.log["bastion.auth_ignored"] == "csrf_origin_mismatch"


async def test_anonymous_rule_still_identifies_a_valid_token(forge: Forger) -> None:
    ctx = context([("Authorization", f"Bearer {forge.legit(roles=['user', 'admin'])}")], anonymous=True)
    await authenticate()(ctx)
    assert ctx.principal is not None
    assert ctx.principal.subject == "alice" and ctx.principal.roles == {"user", "admin"}
    assert dict(ctx.upstream_headers) == {"X-User-Id": "alice", "X-User-Roles": "user,admin"}
    assert "bastion.auth_ignored" not in ctx.log
