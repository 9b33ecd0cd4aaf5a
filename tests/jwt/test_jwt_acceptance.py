"""What gets through: a valid token of each issuer reaches the upstream with Bastion's identity
headers, and the identity headers a client sends never do."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import pytest

from proxy.cli import main as bastion_cli
from proxy.config import load_config
from tests.conftest import EchoUpstream, StartBastion
from tests.jwt.conftest import (
    AT_ISS,
    AUD,
    CHALLENGE_INVALID,
    CHALLENGE_MISSING,
    COOKIE,
    EC_ISS,
    HS_ISS,
    JWKS_ISS,
    RS_ISS,
    Forger,
    Gate,
    MakeGate,
    assert_refused,
)

Headers = Sequence[tuple[str, str]]


def bearer(build: Callable[[Forger], str]) -> Callable[[Forger], Headers]:
    return lambda f: [("Authorization", f"Bearer {build(f)}")]


def now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("build", "user", "roles"),
    [
        pytest.param(bearer(lambda f: f.legit(HS_ISS, roles=["user", "admin"])), "alice", "user,admin", id="hs256"),
        pytest.param(bearer(lambda f: f.legit(RS_ISS, sub="bob")), "bob", "user", id="rs256-public-key-file"),
        pytest.param(bearer(lambda f: f.legit(EC_ISS, sub="carol")), "carol", "user", id="es256-public-key-file"),
        pytest.param(bearer(lambda f: f.legit(JWKS_ISS, alg="RS256")), "alice", "user", id="jwks-rs256"),
        pytest.param(bearer(lambda f: f.legit(JWKS_ISS, alg="ES256")), "alice", "user", id="jwks-es256"),
        pytest.param(bearer(lambda f: f.token(HS_ISS)), "alice", "user", id="hs256-hand-assembled"),
        pytest.param(bearer(lambda f: f.legit(AT_ISS)), "alice", "user", id="typ-at+jwt"),
        pytest.param(
            bearer(lambda f: f.token(AT_ISS, header={"typ": "application/at+jwt"})),
            "alice",
            "user",
            id="typ-application/at+jwt",
        ),
        pytest.param(
            bearer(lambda f: f.token(AT_ISS, header={"typ": "AT+JWT"})), "alice", "user", id="typ-case-insensitive"
        ),
        pytest.param(bearer(lambda f: f.token(HS_ISS, drop_header=["typ"])), "alice", "user", id="typ-not-required"),
        pytest.param(bearer(lambda f: f.legit(exp=now() - 10)), "alice", "user", id="exp-within-leeway"),
        pytest.param(bearer(lambda f: f.legit(nbf=now() + 10)), "alice", "user", id="nbf-within-leeway"),
        pytest.param(bearer(lambda f: f.legit(iat=now() + 10)), "alice", "user", id="iat-within-leeway"),
        pytest.param(bearer(lambda f: f.legit(aud=["other", AUD])), "alice", "user", id="aud-list-with-ours"),
        pytest.param(bearer(lambda f: f.legit(scope="read write", scp=["a"])), "alice", "user", id="scopes"),
        pytest.param(bearer(lambda f: f.legit(sub="алиса")), "алиса", "user", id="sub-non-ascii"),
        pytest.param(
            lambda f: [("Authorization", f"bearer {f.legit()}")], "alice", "user", id="scheme-case-insensitive"
        ),
        pytest.param(lambda f: [("Cookie", f"a=1; {COOKIE}={f.legit()}; b=2")], "alice", "user", id="cookie"),
    ],
)
async def test_valid_token_reaches_upstream_with_identity_headers(
    gate: Gate, build: Callable[[Forger], Headers], user: str, roles: str
) -> None:
    answer = await gate.send(build(gate.forge))
    assert answer.status == 200, answer.body
    [seen] = gate.upstream.seen
    assert seen.all("X-User-Id") == [user]
    assert seen.all("X-User-Roles") == [roles]
    rec = await gate.record(answer.headers["x-request-id"])
    assert rec["user.id"] == user
    assert "bastion.reason" not in rec


async def test_token_without_roles_forwards_no_roles_header(gate: Gate) -> None:
    answer = await gate.bearer(gate.forge.token(drop=["roles"]))
    assert answer.status == 200
    [seen] = gate.upstream.seen
    assert seen.all("X-User-Id") == ["alice"]
    assert seen.all("X-User-Roles") == []


SPOOFED = [
    ("X-User-Id", "admin"),
    ("x-user-id", "root"),
    ("X_User_Id", "admin"),
    ("x_user_id", "admin"),
    ("X-User-Roles", "admin"),
    ("X_User_Roles", "admin"),
    ("X-USER-ROLES", "superuser"),
]


@pytest.mark.parametrize(
    ("build", "roles"),
    [
        pytest.param(lambda f: f.legit(), ["user"], id="token-with-roles"),
        pytest.param(lambda f: f.token(drop=["roles"]), [], id="token-without-roles"),
        pytest.param(lambda f: f.legit(JWKS_ISS), ["user"], id="jwks-token"),
    ],
)
async def test_client_identity_headers_never_reach_upstream(
    gate: Gate, build: Callable[[Forger], str], roles: list[str]
) -> None:
    answer = await gate.bearer(build(gate.forge), headers=SPOOFED)
    assert answer.status == 200
    [seen] = gate.upstream.seen
    assert seen.all("X-User-Id") == ["alice"]
    assert seen.all("X-User-Roles") == roles
    names = {k.lower() for k, _ in seen.headers}
    assert not names & {"x_user_id", "x_user_roles"}
    assert "admin" not in [v for k, v in seen.headers if k.lower().startswith(("x-user", "x_user"))]


RULES = """\
roles:
  user: []
rules:
  - id: public
    match: {path: "/public/**"}
    allow: anonymous
  - id: private
    match: {path: "/private/**"}
    allow: authenticated
"""


@pytest.fixture
async def ruled_gate(make_gate: MakeGate, tmp_path: Path) -> Gate:
    """The gate with access rules: /public/** allows anonymous access, /private/** needs a principal."""
    path = tmp_path / "rules" / "jwt.yaml"
    path.parent.mkdir()
    path.write_text(RULES)
    return await make_gate(rules=[str(path)])


@pytest.mark.parametrize(
    ("build", "ignored"),
    [
        pytest.param(lambda f: [], None, id="no-token"),
        pytest.param(lambda f: [("Authorization", "Bearer junk")], "jwt_malformed", id="junk-token"),
        pytest.param(lambda f: [("Authorization", f"Bearer {f.legit(exp=1)}")], "expired", id="expired-token"),
        pytest.param(
            lambda f: [("Authorization", f"Bearer {f.token(header={'alg': 'none'}, signature=b'x')}")],
            "alg_none",
            id="alg-none",
        ),
        pytest.param(lambda f: [("Authorization", "Basic YTpi")], "jwt_wrong_scheme", id="basic-credentials"),
    ],
)
async def test_anonymous_rule_lets_a_bad_token_through_as_nobody(
    ruled_gate: Gate, build: Callable[[Forger], Headers], ignored: str | None
) -> None:
    gate = ruled_gate
    answer = await gate.send([*build(gate.forge), *SPOOFED], path="/public/page")
    assert answer.status == 200, answer.body
    [seen] = gate.upstream.seen
    names = {k.lower() for k, _ in seen.headers}
    assert not names & {"x-user-id", "x-user-roles", "x_user_id", "x_user_roles"}
    rec = await gate.record(answer.headers["x-request-id"])
    assert rec.get("bastion.auth_ignored") == ignored
    assert rec["bastion.rule"] == "public"
    assert "user.id" not in rec


async def test_anonymous_rule_still_identifies_a_valid_token(ruled_gate: Gate) -> None:
    gate = ruled_gate
    answer = await gate.send([("Authorization", f"Bearer {gate.forge.legit(sub='dave')}"), *SPOOFED], path="/public/x")
    assert answer.status == 200
    [seen] = gate.upstream.seen
    assert seen.all("X-User-Id") == ["dave"]
    assert seen.all("X-User-Roles") == ["user"]


@pytest.mark.parametrize(
    ("build", "reason", "challenge"),
    [
        pytest.param(lambda f: [], "jwt_missing", CHALLENGE_MISSING, id="no-token"),
        pytest.param(lambda f: [("Authorization", "Bearer junk")], "jwt_malformed", CHALLENGE_INVALID, id="junk"),
        pytest.param(
            lambda f: [("Authorization", f"Bearer {f.legit(exp=1)}")], "expired", CHALLENGE_INVALID, id="expired"
        ),
    ],
)
async def test_authenticated_rule_refuses_the_same_tokens(
    ruled_gate: Gate, build: Callable[[Forger], Headers], reason: str, challenge: str
) -> None:
    answer = await ruled_gate.send([*build(ruled_gate.forge), *SPOOFED], path="/private/x")
    await assert_refused(ruled_gate, answer, reason, challenge=challenge)


CLI_CONFIG = """\
rules: []
listen: {{host: 127.0.0.1, port: 0}}
admin: {{host: 127.0.0.1, port: 0}}
upstream: {{url: "{upstream}"}}
auth:
  issuers:
    - issuer: https://rs.example
      algorithms: [RS256]
      jwks_url: "http://127.0.0.1:1/jwks.json"
    - issuer: bastion-demo
      audiences: [bastion-demo-api]
      algorithms: [HS256]
      secret: "demo-secret-0123456789-0123456789-abc"
      typ: at+jwt
      required_claims: [exp, sub, iat]
    - issuer: second
      algorithms: [HS512]
      secret: "second-secret-0123456789-0123456789-0123456789-0123456789-abcdefg"
"""


@pytest.mark.parametrize(
    ("args", "user", "roles"),
    [
        pytest.param(["--sub", "alice", "--roles", "user"], "alice", "user", id="first-hmac-issuer"),
        pytest.param(["--sub", "bob", "--roles", "user,admin"], "bob", "user,admin", id="two-roles"),
        pytest.param(["--sub", "eve", "--issuer", "second", "--ttl", "1m"], "eve", None, id="named-issuer-hs512"),
    ],
)
async def test_bastion_token_mints_a_token_the_proxy_accepts(
    upstream: EchoUpstream,
    start_bastion: StartBastion,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    user: str,
    roles: str | None,
) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(CLI_CONFIG.format(upstream=upstream.url))
    assert bastion_cli(["token", "-c", str(path), *args]) == 0
    token = capsys.readouterr().out.strip()
    running = await start_bastion(load_config(path))
    async with (
        aiohttp.ClientSession() as s,
        s.get(running.url + "/tasks", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200, await r.text()
    [seen] = upstream.seen
    assert seen.all("X-User-Id") == [user]
    assert seen.all("X-User-Roles") == ([roles] if roles else [])
