"""CORS owned by Bastion on the catch-all route: origins allowed and refused, preflights answered
without the upstream, never two CORS headers, credentials never with a wildcard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import ConfigError, load_config
from proxy.policy import PolicyError, compile_files
from tests.conftest import Running, make_config
from tests.headers.conftest import API_HEADERS, RULES, Answer, Gate, HeaderUpstream

Fetch = Callable[..., Awaitable[Answer]]

APP = "https://app.example"
CORS: dict[str, Any] = {
    "allow_origins": [APP],
    "allow_origin_patterns": [r"https://[a-z0-9-]+\.tenant\.example"],
    "allow_methods": ["GET", "POST", "PUT"],
    "allow_headers": ["Authorization", "Content-Type"],
    "expose_headers": ["X-Request-ID"],
    "allow_credentials": True,
    "max_age": "5m",
}
ROUTED = RULES + """
  - id: tasks
    match: {path: "/tasks", methods: [GET, POST]}
    allow: anonymous
"""
UPSTREAM_CORS = [
    "Access-Control-Allow-Origin:*",
    "Access-Control-Allow-Credentials:true",
    "Access-Control-Allow-Methods:DELETE",
    "Access-Control-Expose-Headers:X-Secret",
]


def preflight(origin: str, method: str = "PUT", headers: str | None = "content-type") -> dict[str, str]:
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return h


@pytest.mark.parametrize(
    "origin, allowed",
    [
        pytest.param(APP, True, id="exact"),
        pytest.param("https://acme.tenant.example", True, id="pattern"),
        pytest.param("https://app.example:8443", False, id="other-port"),
        pytest.param("http://app.example", False, id="other-scheme"),
        pytest.param("https://app.example.evil.example", False, id="exact-is-not-prefix"),
        pytest.param("https://acme.tenant.example.evil.example", False, id="pattern-is-anchored-at-end"),
        pytest.param("https://evil.example/https://x.tenant.example", False, id="pattern-is-anchored-at-start"),
        pytest.param("null", False, id="null"),
    ],
)
async def test_actual_request_origins(
    gate: Gate, client: Fetch, hup: HeaderUpstream, origin: str, allowed: bool
) -> None:
    proxy = await gate(ROUTED, cors=CORS)
    got = await client(proxy.url + "/public/x", headers={"Origin": origin}, params=[("h", h) for h in UPSTREAM_CORS])
    assert got.status == 200  # a refused origin is the browser's to enforce; the request goes on
    assert got.headers.getall("Vary") == ["Origin"]
    assert "access-control-allow-methods" not in got.headers  # the upstream's, dropped
    if allowed:
        assert got.headers.getall("Access-Control-Allow-Origin") == [origin]
        assert got.headers.getall("Access-Control-Allow-Credentials") == ["true"]
        assert got.headers.getall("Access-Control-Expose-Headers") == ["X-Request-ID"]
    else:
        for name in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"):
            assert name not in got.headers
        assert "access-control-expose-headers" not in got.headers


@pytest.mark.parametrize(
    "path", [pytest.param("/public/x", id="any-method-rule"), pytest.param("/tasks", id="rule-without-options")]
)
async def test_preflight_is_answered_without_the_upstream(
    gate: Gate, client: Fetch, hup: HeaderUpstream, path: str
) -> None:
    proxy = await gate(ROUTED, cors=CORS)
    got = await client(proxy.url + path, "OPTIONS", headers=preflight(APP, "POST"))
    assert got.status == 204 and got.body == b""
    assert got.headers["Access-Control-Allow-Origin"] == APP
    assert got.headers["Access-Control-Allow-Credentials"] == "true"
    assert got.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT"
    assert got.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert got.headers["Access-Control-Max-Age"] == "300"
    assert got.headers.getall("Vary") == ["Origin"]
    assert {k: got.headers.get(k) for k in API_HEADERS} == API_HEADERS
    assert hup.seen == []
    [rec] = await proxy.access(1)
    assert rec["bastion.cors"] == "preflight" and rec["http.response.status_code"] == 204


async def test_preflight_comes_before_authentication(gate: Gate, client: Fetch, hup: HeaderUpstream) -> None:
    proxy = await gate(ROUTED, cors=CORS)
    got = await client(proxy.url + "/private/x", "OPTIONS", headers=preflight(APP, "GET", "authorization"))
    assert got.status == 204 and hup.seen == []
    # and the real request's 401 carries the CORS fields, so the page can read it
    denied = await client(proxy.url + "/private/x", headers={"Origin": APP})
    assert denied.status == 401 and denied.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize(
    "path, headers, status",
    [
        pytest.param("/public/x", preflight("https://evil.example"), 403, id="origin"),
        pytest.param("/public/x", preflight(APP, "DELETE"), 403, id="method"),
        pytest.param("/public/x", preflight(APP, "PUT", "content-type, x-admin"), 403, id="header"),
        pytest.param("/tasks", preflight(APP, "PUT"), 404, id="no-rule-for-the-method"),
        pytest.param("/nowhere", preflight(APP, "GET"), 404, id="no-rule"),
    ],
)
async def test_refused_preflights_never_reach_the_upstream(
    gate: Gate, client: Fetch, hup: HeaderUpstream, path: str, headers: dict[str, str], status: int
) -> None:
    proxy = await gate(ROUTED, cors=CORS)
    got = await client(proxy.url + path, "OPTIONS", headers=headers)
    assert got.status == status
    assert got.headers["Content-Type"] == "application/problem+json"
    assert orjson.loads(got.body)["status"] == status
    assert "access-control-allow-methods" not in got.headers
    if headers["Origin"] != APP:
        assert "access-control-allow-origin" not in got.headers
    assert hup.seen == []


async def test_never_two_cors_headers(gate: Gate, client: Fetch) -> None:
    """The upstream's own CORS fields are replaced, never merged (traefik#5567, #6014)."""
    proxy = await gate(cors=CORS)
    params = [("h", h) for h in [*UPSTREAM_CORS, "Vary:Accept-Encoding", "Access-Control-Allow-Origin:https://x"]]
    got = await client(proxy.url + "/public/x", headers={"Origin": APP}, params=params)
    assert got.headers.getall("Access-Control-Allow-Origin") == [APP]
    assert got.headers.getall("Access-Control-Allow-Credentials") == ["true"]
    assert got.headers.getall("Access-Control-Expose-Headers") == ["X-Request-ID"]
    assert got.headers.getall("Vary") == ["Accept-Encoding", "Origin"]
    again = await client(proxy.url + "/public/x", headers={"Origin": APP}, params={"h": "Vary:origin"})
    assert again.headers.getall("Vary") == ["origin"]


async def test_wildcard_without_credentials(gate: Gate, client: Fetch) -> None:
    proxy = await gate(cors={"allow_origins": ["*"], "allow_methods": ["*"], "allow_headers": ["*"]})
    got = await client(proxy.url + "/public/x", headers={"Origin": "https://anyone.example"})
    assert got.headers.getall("Access-Control-Allow-Origin") == ["*"]
    assert "vary" not in got.headers  # the answer does not depend on the origin
    assert "access-control-allow-credentials" not in got.headers
    pre = await client(proxy.url + "/public/x", "OPTIONS", headers=preflight("https://a.example", "PATCH", "x-any"))
    assert pre.status == 204 and pre.headers["Access-Control-Allow-Headers"] == "*"


async def test_per_rule_cors_owns_only_its_routes(gate: Gate, client: Fetch, hup: HeaderUpstream) -> None:
    rules = RULES + """
  - id: widget
    match: {path: "/widget/**"}
    allow: anonymous
    cors: {allow_origins: ["https://partner.example"]}
"""
    proxy = await gate(rules)  # no global cors
    params = [("h", h) for h in UPSTREAM_CORS]
    widget = await client(proxy.url + "/widget/x", headers={"Origin": "https://partner.example"}, params=params)
    assert widget.headers.getall("Access-Control-Allow-Origin") == ["https://partner.example"]
    assert "access-control-allow-credentials" not in widget.headers
    assert "access-control-allow-methods" not in widget.headers
    other = await client(proxy.url + "/public/x", headers={"Origin": "https://partner.example"}, params=params)
    assert other.headers.getall("Access-Control-Allow-Origin") == ["*"]  # not Bastion's: the upstream's
    pre = await client(proxy.url + "/public/x", "OPTIONS", headers=preflight("https://partner.example", "GET"))
    assert pre.status == 200 and hup.seen[-1] == ("OPTIONS", "/public/x")  # forwarded like any OPTIONS


CREDENTIAL_WILDCARDS = [
    pytest.param({"allow_origins": ["*"]}, "allow_origins", id="origin"),
    pytest.param({"allow_origins": ["https://a.example"], "allow_headers": ["*"]}, "allow_headers", id="headers"),
    pytest.param({"allow_origins": ["https://a.example"], "allow_methods": ["*"]}, "allow_methods", id="methods"),
    pytest.param({"allow_origins": ["https://a.example"], "expose_headers": ["*"]}, "expose_headers", id="expose"),
]


@pytest.mark.parametrize("cors, key", CREDENTIAL_WILDCARDS)
def test_credentials_with_a_wildcard_is_a_config_error(tmp_path: Path, cors: dict[str, Any], key: str) -> None:
    path = tmp_path / "config.yaml"
    body = orjson.dumps({**cors, "allow_credentials": True}).decode()
    path.write_text(f"upstream: {{url: 'http://127.0.0.1:1'}}\nrules: []\ncors: {body}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = f"cannot be combined with {key}: ['*'] (list the values)"
    assert err.value.messages == [f"{path}:3: cors.allow_credentials: {message}"]


@pytest.mark.parametrize(
    "cors, message",
    [
        *(
            pytest.param({**p.values[0], "allow_credentials": True}, "cannot be combined", id=p.id)
            for p in CREDENTIAL_WILDCARDS
        ),
        pytest.param({"allow_origins": ["null"]}, "never allow it", id="null-origin"),
        pytest.param({"allow_origin_patterns": ["null|https://a"]}, "never allow it", id="null-pattern"),
        pytest.param({"allow_origins": ["https://a.example/"]}, "invalid origin", id="trailing-slash"),
        pytest.param({"allow_origin_patterns": ["(https://"]}, "invalid regex", id="bad-regex"),
        pytest.param({"allow_origins": ["*", "https://a.example"]}, "list no others", id="star-and-more"),
    ],
)
def test_bad_rule_cors_is_a_load_error(tmp_path: Path, cors: dict[str, Any], message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES + f"""
  - id: widget
    match: {{path: "/widget/**"}}
    allow: anonymous
    cors: {orjson.dumps(cors).decode()}
""")
    with pytest.raises(PolicyError) as err:
        compile_files([path])
    [line] = err.value.messages
    assert line.startswith(f"{path}:17: rules[3].cors") and message in line


async def test_global_cors_without_access_rules(
    hup: HeaderUpstream, start_bastion: Callable[..., Awaitable[Running]], client: Fetch
) -> None:
    proxy = await start_bastion(make_config(hup.url, cors=CORS))  # rules: []: the global policy decides alone
    pre = await client(proxy.url + "/anything", "OPTIONS", headers=preflight(APP, "PUT"))
    assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == APP
    plain = await client(proxy.url + "/anything", "OPTIONS")  # not a preflight: forwarded as usual
    assert plain.status == 200 and hup.seen == [("OPTIONS", "/anything")]
