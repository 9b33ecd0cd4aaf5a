"""The attacker's toolbox for the JWT suite: keys, a token forger, a real JWKS server and a gate.

The gate is Bastion in front of the recording echo upstream, configured with five issuers:

    HS_ISS    HS256 with a 40-byte secret, audience "api", requires exp and sub
    AT_ISS    HS256 with its own secret, typ at+jwt (RFC 9068 access tokens only)
    RS_ISS    RS256+ES256 with an RSA public_key_file (so only RS256 can ever verify)
    EC_ISS    ES256 with a P-256 public_key_file
    JWKS_ISS  RS256+ES256 from a JWKS served by a local aiohttp server (kids "rsa-1" and "ec-1")

Tokens are built two ways: `Forger.token` hand-assembles base64url JSON (so a test can send
duplicate keys, odd algorithms and broken signatures), `Forger.legit` uses PyJWT for the real thing.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import get_default_algorithms
from pytest_aiohttp import AiohttpServer

from proxy.checks.authn import Authenticate
from proxy.config import Config
from proxy.decision import PROBLEM_BASE
from proxy.jwt.jwks import JwksKeys
from tests.conftest import EchoUpstream, Running, StartBastion, make_config, parse_head, raw_request

HS_ISS = "https://hs.example"
AT_ISS = "https://at.example"
RS_ISS = "https://rs.example"
EC_ISS = "https://ec.example"
JWKS_ISS = "https://jwks.example"
AUD = "api"
HS_SECRET = b"hs-secret-0123456789-abcdefghijklmnop"  # 37 bytes: over the 32-byte floor
AT_SECRET = b"at-secret-0123456789-abcdefghijklmnop"
ADMIN_TOKEN = "admin-token-0123456789"
COOKIE = "bastion_token"
HOST = "svc.example"
APP_ORIGIN = "https://app.example"

# RFC 6750 §3: the two challenge shapes, and nothing else, on a 401
CHALLENGE_MISSING = "Bearer"
CHALLENGE_INVALID = 'Bearer error="invalid_token", error_description="The access token is invalid"'

SIGNERS = get_default_algorithms()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: str | bytes, payload: str | bytes) -> str:
    """`base64url(header).base64url(payload)`: the JWS signing input, from raw JSON text."""
    h = header.encode() if isinstance(header, str) else header
    p = payload.encode() if isinstance(payload, str) else payload
    return f"{b64url(h)}.{b64url(p)}"


def raw_ec_signature(key: ec.EllipticCurvePrivateKey, data: bytes, hash_alg: hashes.HashAlgorithm) -> bytes:
    """JOSE's r || s, each the size of the key's curve (whatever curve that is)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def to_jwk(key: Any, kid: str | None, alg: str | None = None, **extra: Any) -> dict[str, Any]:
    """The public JWK of a private key, as an IdP would publish it."""
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        doc = dict(SIGNERS["RS256"].to_jwk(pub, as_dict=True))  # type: ignore[attr-defined]
    else:
        doc = dict(SIGNERS["ES256"].to_jwk(pub, as_dict=True))  # type: ignore[attr-defined]
    doc["use"] = "sig"
    if kid is not None:
        doc["kid"] = kid
    if alg is not None:
        doc["alg"] = alg
    doc.update(extra)
    return doc


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey  # RS_ISS's key (public half in a PEM file)
    ec: ec.EllipticCurvePrivateKey  # EC_ISS's P-256 key
    jwks_rsa: rsa.RSAPrivateKey  # JWKS kid "rsa-1"
    jwks_rsa_next: rsa.RSAPrivateKey  # JWKS kid "rsa-2" (rotation)
    jwks_ec: ec.EllipticCurvePrivateKey  # JWKS kid "ec-1"
    p384: ec.EllipticCurvePrivateKey
    attacker_rsa: rsa.RSAPrivateKey
    attacker_ec: ec.EllipticCurvePrivateKey
    small_rsa: rsa.RSAPrivateKey  # 1024 bits: below the floor


@pytest.fixture(scope="session")
def keys() -> Keys:
    def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    return Keys(
        rsa=rsa_key(),
        ec=ec.generate_private_key(ec.SECP256R1()),
        jwks_rsa=rsa_key(),
        jwks_rsa_next=rsa_key(),
        jwks_ec=ec.generate_private_key(ec.SECP256R1()),
        p384=ec.generate_private_key(ec.SECP384R1()),
        attacker_rsa=rsa_key(),
        attacker_ec=ec.generate_private_key(ec.SECP256R1()),
        small_rsa=rsa_key(1024),
    )


@dataclass
class Forger:
    """Builds tokens for the configured issuers, honest or not."""

    keys: Keys

    def claims(self, iss: str = HS_ISS, /, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        doc: dict[str, Any] = {
            "iss": iss,
            "sub": "alice",
            "aud": AUD,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "roles": ["user"],
        }
        doc.update(overrides)
        return doc

    def default_alg(self, iss: str) -> str:
        return {RS_ISS: "RS256", EC_ISS: "ES256", JWKS_ISS: "RS256"}.get(iss, "HS256")

    def key_for(self, iss: str, alg: str) -> Any:
        if alg.startswith("HS"):
            return AT_SECRET if iss == AT_ISS else HS_SECRET
        if alg.startswith(("RS", "PS")):
            return self.keys.jwks_rsa if iss == JWKS_ISS else self.keys.rsa
        if alg == "ES384":
            return self.keys.p384
        return self.keys.jwks_ec if iss == JWKS_ISS else self.keys.ec

    def header(self, iss: str, alg: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"alg": alg, "typ": "at+jwt" if iss == AT_ISS else "JWT"}
        if iss == JWKS_ISS:
            doc["kid"] = "ec-1" if alg.startswith("ES") else "rsa-1"
        return doc

    def token(
        self,
        iss: str = HS_ISS,
        *,
        alg: str | None = None,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        drop_header: Iterable[str] = (),
        drop: Iterable[str] = (),
        raw_header: str | bytes | None = None,
        raw_payload: str | bytes | None = None,
        key: Any = None,
        signature: bytes | None = None,
    ) -> str:
        """A hand-assembled compact JWS. `raw_*` replace the JSON text (for duplicate keys and the like);
        `signature` replaces the signature; otherwise it is computed with `key` (default: the issuer's)."""
        alg = alg or self.default_alg(iss)
        head = {**self.header(iss, alg), **(header or {})}
        for name in drop_header:
            head.pop(name, None)
        body = self.claims(iss, **(claims or {}))
        for name in drop:
            body.pop(name, None)
        signing_input = compact(
            raw_header if raw_header is not None else json.dumps(head),
            raw_payload if raw_payload is not None else json.dumps(body),
        )
        if signature is None:
            signature = self.sign(
                head.get("alg", alg), key if key is not None else self.key_for(iss, alg), signing_input
            )
        return f"{signing_input}.{b64url(signature)}"

    @staticmethod
    def sign(alg: Any, key: Any, signing_input: str) -> bytes:
        if isinstance(alg, str) and alg.upper() in SIGNERS:
            alg = alg.upper()  # "hs256" is signed as HS256, so only the spelling is wrong
        if not isinstance(alg, str) or alg not in SIGNERS:
            return b"\x01" * 32  # nonsense algs ("NONE", "XX999"): a junk signature keeps three parts
        # "none" signs as PyJWT does (b""); HMAC signs with any bytes, a PEM public key included:
        # that is how key confusion is forged
        return SIGNERS[alg].sign(signing_input.encode(), key)

    def legit(self, iss: str = HS_ISS, *, alg: str | None = None, **claims: Any) -> str:
        """A token exactly as the real issuer would mint it, through PyJWT."""
        alg = alg or self.default_alg(iss)
        head = self.header(iss, alg)
        head.pop("alg")
        return jwt.encode(self.claims(iss, **claims), self.key_for(iss, alg), algorithm=alg, headers=head)


@pytest.fixture
def forge(keys: Keys) -> Forger:
    return Forger(keys)


@dataclass
class JwksServer:
    """A local IdP key endpoint: what it publishes, how it fails, and how often it is asked."""

    keys: list[dict[str, Any]]
    server: Any = None
    hits: int = 0
    mode: str = "ok"  # ok | 503 | garbage | drop
    cache_control: str | None = None

    @property
    def url(self) -> str:
        return str(self.server.make_url("/jwks.json"))

    def publish(self, *jwks: dict[str, Any]) -> None:
        self.keys = list(jwks)

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.hits += 1
            if self.mode == "503":
                return web.Response(status=503, text="down")
            if self.mode == "garbage":
                return web.Response(body=b"<html>not a key set</html>", content_type="text/html")
            if self.mode == "drop":  # the IdP (or a load balancer) hangs up without an answer
                assert request.transport is not None
                request.transport.abort()
                return web.Response()
            headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
            return web.Response(
                body=orjson.dumps({"keys": self.keys}), content_type="application/json", headers=headers
            )

        app = web.Application()
        app.router.add_get("/jwks.json", handler)
        return app


def default_jwks(keys: Keys) -> list[dict[str, Any]]:
    return [to_jwk(keys.jwks_rsa, "rsa-1", "RS256"), to_jwk(keys.jwks_ec, "ec-1", "ES256")]


@pytest.fixture
async def jwks_server(aiohttp_server: AiohttpServer, keys: Keys) -> JwksServer:
    srv = JwksServer(default_jwks(keys))
    srv.server = await aiohttp_server(srv.app())
    return srv


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Gate:
    """Bastion with the five issuers, in front of the recording upstream."""

    def __init__(self, running: Running, upstream: EchoUpstream, jwks: JwksServer, forge: Forger, cfg: Config) -> None:
        self.running = running
        self.upstream = upstream
        self.jwks = jwks
        self.forge = forge
        self.cfg = cfg

    def __repr__(self) -> str:  # short: Hypothesis prints fixtures with every falsifying example
        return f"Gate(port={self.running.port})"

    @property
    def bastion(self) -> Any:
        return self.running.bastion

    @property
    def authn(self) -> Authenticate:
        return next(c for c in self.bastion.pipeline.checks if c.name == "authn")

    @property
    def jwks_keys(self) -> JwksKeys:
        [keys] = self.bastion.jwks
        return keys

    async def send(
        self,
        headers: Sequence[tuple[str, str]] = (),
        *,
        method: str = "GET",
        path: str = "/resource",
        body: bytes = b"",
        host: str = HOST,
    ) -> Answer:
        """One request on a fresh connection, header values sent as latin-1 bytes, exactly as given."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers)]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        raw = await raw_request(self.running.port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        status, head, rest = parse_head(raw)
        return Answer(status, head, rest)

    async def bearer(self, token: str, *, headers: Sequence[tuple[str, str]] = (), method: str = "GET") -> Answer:
        return await self.send([("Authorization", f"Bearer {token}"), *headers], method=method)

    async def record(self, request_id: str, timeout: float = 2.0) -> dict[str, Any]:
        """The access record of one request, by its id."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.running.logs.access():
                if rec.get("http.request.id") == request_id:
                    return rec
            if time.monotonic() > deadline:
                raise AssertionError(f"no access record for {request_id}")
            await self.running.access(len(self.running.logs.access()) + 1, timeout=0.05)

    async def admin(self, method: str, path: str, *, json_body: Any = None, token: str | None = ADMIN_TOKEN) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = orjson.dumps(json_body) if json_body is not None else None
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.bastion.admin_url + path, data=data, headers=headers) as r,
        ):
            await r.read()
            return r.status

    async def revoke(self, doc: Any, *, token: str | None = ADMIN_TOKEN) -> int:
        return await self.admin("POST", "/revocations", json_body=doc, token=token)

    async def readyz(self) -> int:
        return await self.admin("GET", "/readyz", token=None)


def gate_config(
    upstream_url: str,
    jwks_url: str,
    tmp_path: Path,
    keys: Keys,
    *,
    jwks_cache: Mapping[str, Any] | None = None,
    auth: Mapping[str, Any] | None = None,
    rules: Sequence[str] = (),
) -> Config:
    rs_pem = tmp_path / "rs.pem"
    rs_pem.write_bytes(public_pem(keys.rsa))
    ec_pem = tmp_path / "ec.pem"
    ec_pem.write_bytes(public_pem(keys.ec))
    doc: dict[str, Any] = {
        "max_token_bytes": 16 * 1024,
        "token_sources": [{"header": "Authorization", "scheme": "Bearer"}, {"cookie": COOKIE}],
        "cookie_origins": [APP_ORIGIN],
        "issuers": [
            {
                "issuer": HS_ISS,
                "algorithms": ["HS256"],
                "secret": HS_SECRET.decode(),
                "audiences": [AUD],
                "required_claims": ["exp", "sub"],
            },
            {"issuer": AT_ISS, "algorithms": ["HS256"], "secret": AT_SECRET.decode(), "typ": "at+jwt"},
            {"issuer": RS_ISS, "algorithms": ["RS256", "ES256"], "public_key_file": str(rs_pem), "audiences": [AUD]},
            {"issuer": EC_ISS, "algorithms": ["ES256"], "public_key_file": str(ec_pem)},
            {
                "issuer": JWKS_ISS,
                "algorithms": ["RS256", "ES256"],
                "jwks_url": jwks_url,
                "jwks_cache": {
                    "min_ttl": 60,
                    "refetch_unknown_kid_after": 60,
                    "fetch_timeout": 2,
                    **(jwks_cache or {}),
                },
            },
        ],
    }
    doc.update(auth or {})
    return make_config(
        upstream_url,
        auth=doc,
        admin={"host": "127.0.0.1", "port": 0, "token": ADMIN_TOKEN},
        limits={"max_header_bytes": 64 * 1024},
        rules=list(rules),  # none by default: every request then needs a token
    )


MakeGate = Callable[..., Awaitable[Gate]]


@pytest.fixture
async def make_gate(
    upstream: EchoUpstream,
    jwks_server: JwksServer,
    start_bastion: StartBastion,
    forge: Forger,
    keys: Keys,
    tmp_path: Path,
) -> MakeGate:
    async def make(
        *,
        jwks_cache: Mapping[str, Any] | None = None,
        auth: Mapping[str, Any] | None = None,
        jwks_url: str | None = None,
        rules: Sequence[str] = (),
    ) -> Gate:
        cfg = gate_config(
            upstream.url, jwks_url or jwks_server.url, tmp_path, keys, jwks_cache=jwks_cache, auth=auth, rules=rules
        )
        running = await start_bastion(cfg)
        return Gate(running, upstream, jwks_server, forge, cfg)

    return make


@pytest.fixture
async def gate(make_gate: MakeGate) -> Gate:
    return await make_gate()


async def assert_refused(
    gate: Gate,
    answer: Answer,
    reason: str,
    *,
    status: int = 401,
    challenge: str | None = CHALLENGE_INVALID,
    hidden: Iterable[str] = (),
) -> dict[str, Any]:
    """The one shape of a refusal: status, challenge, an RFC 9457 body with the request id and
    nothing else, the reason code in the access record, and not one byte sent upstream."""
    assert answer.status == status, (answer.status, answer.body[:300])
    if challenge is None:
        assert "www-authenticate" not in answer.headers
    else:
        assert answer.headers.get("www-authenticate") == challenge
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["cache-control"] == "no-store"
    doc = answer.json()
    assert set(doc) == {"type", "title", "status", "request_id"}, doc
    assert doc["status"] == status
    assert doc["title"] == HTTPStatus(status).phrase
    assert doc["type"].startswith(PROBLEM_BASE)
    assert doc["request_id"] == answer.headers["x-request-id"]
    rec = await gate.record(doc["request_id"])
    assert rec["bastion.reason"] == reason, rec
    assert rec["http.response.status_code"] == status
    text = answer.body.decode()
    detail = rec.get("bastion.detail") or ""
    leaks = [*hidden, "Traceback", "Error", "jwt.", "aiohttp", HS_ISS, AT_ISS, RS_ISS, EC_ISS, JWKS_ISS]
    if len(detail) >= 6:
        leaks.append(detail)
    for leak in leaks:
        assert leak not in text, f"{leak!r} leaked into {text}"
    assert gate.upstream.seen == [], "the upstream saw a request Bastion refused"
    return rec
