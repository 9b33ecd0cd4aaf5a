"""Nothing leaks: the OWASP remove list is stripped from upstream answers, no response ever carries
`Server`, and no error body Bastion generates names a library, a version, a file, an exception, the
upstream, or echoes what the client sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from proxy.security_headers import EXTRA_REMOVE, OWASP_REMOVE
from tests.conftest import raw_request
from tests.headers.conftest import RULES, Answer, Gate, HeaderUpstream, head_lines, token

Fetch = Callable[..., Awaitable[Answer]]


LEAKY = (*OWASP_REMOVE, *EXTRA_REMOVE)


def _leaky_query() -> str:
    return "&".join(f"h={name}:leak-{i}" for i, name in enumerate(LEAKY))


async def test_the_owasp_remove_list_is_stripped(gate: Gate, hup: HeaderUpstream) -> None:
    proxy = await gate()
    raw = await raw_request(
        proxy.port,
        f"GET /public/x?{_leaky_query()}&h=X-Kept:yes HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode(),
    )
    status, pairs, _ = head_lines(raw)
    assert status == 200 and ("x-kept", "yes") in pairs  # what is not on the list passes
    leaked = {k for k, _ in pairs} & {n.lower() for n in LEAKY}
    assert leaked == set()
    assert b"leak-" not in raw


@pytest.mark.parametrize(
    "headers_cfg, passes, blocked",
    [
        pytest.param({"keep": ["X-B3-TraceId"]}, ["X-B3-TraceId"], ["X-Powered-By", "Server"], id="keep-one"),
        pytest.param({"remove_leaky": False}, ["X-Powered-By", "X-AspNet-Version"], ["Server"], id="list-off"),
        pytest.param({"remove": ["X-Internal-Host"]}, [], ["X-Internal-Host", "X-Powered-By"], id="extra-remove"),
    ],
)
async def test_leak_list_settings(
    gate: Gate, client: Fetch, headers_cfg: dict[str, Any], passes: list[str], blocked: list[str]
) -> None:
    proxy = await gate(headers=headers_cfg)
    names = ["X-B3-TraceId", "X-Powered-By", "X-AspNet-Version", "Server", "X-Internal-Host"]
    got = await client(proxy.url + "/public/x", params=[("h", f"{n}:v") for n in names])
    for name in passes:
        assert got.headers.getall(name) == ["v"], name
    for name in blocked:
        assert name not in got.headers, name


# Every kind of response, over raw sockets: not one carries a Server line (neither the upstream's
# `Server: Python/3.x aiohttp/3.x`, nor aiohttp's own default, nor an empty one).
NO_SERVER = [
    pytest.param(b"GET /public/x HTTP/1.1\r\n", 200, id="proxied-200"),
    pytest.param(b"GET /public/x?status=500 HTTP/1.1\r\n", 500, id="proxied-500"),
    pytest.param(b"GET /public/x?status=304 HTTP/1.1\r\n", 304, id="proxied-304"),
    pytest.param(b"HEAD /public/x HTTP/1.1\r\n", 200, id="head"),
    pytest.param(b"GET /nowhere HTTP/1.1\r\n", 404, id="no-rule"),
    pytest.param(b"GET /private/x HTTP/1.1\r\n", 401, id="401"),
    pytest.param(
        b"OPTIONS /public/x HTTP/1.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n",
        204,
        id="preflight",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n", 400, id="parser-400"),
]


@pytest.mark.parametrize("head, status", NO_SERVER)
async def test_no_server_header_anywhere(gate: Gate, head: bytes, status: int) -> None:
    proxy = await gate(cors={"allow_origins": ["https://app.example"]})
    raw = await raw_request(proxy.port, head + b"Host: a\r\nConnection: close\r\n\r\n")
    got, pairs, _ = head_lines(raw)
    assert got == status
    assert "server" not in [k for k, _ in pairs]
    assert b"aiohttp" not in raw.lower() and b"python" not in raw.lower()


MARK = b"ZQXJ<script>"
SCAN_RULES = RULES + """
  - id: items
    match: {path: "/items", methods: [POST]}
    allow: anonymous
    body:
      content_types: [application/json]
      schema: {type: object, properties: {qty: {type: integer, minimum: 1}}, required: [qty]}
"""


def _req(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return line + b"\r\nHost: a\r\n" + b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n" + body


# Every error a client can provoke, each request carrying the marker where the attacker would put it.
SCAN = [
    pytest.param(_req(b"GET /%2e%2e/" + MARK + b" HTTP/1.1"), 400, id="path-above-root"),
    pytest.param(_req(b"GET http://" + MARK + b".example/ HTTP/1.1"), 400, id="absolute-form"),
    pytest.param(_req(b"GET / HTTP/1.1", b"Bad " + MARK + b": 1"), 400, id="parser-header-name"),
    pytest.param(_req(b"GET / HTTP/1.1", b"Content-Length: 1", b"Transfer-Encoding: " + MARK), 400, id="parser-te"),
    pytest.param(
        _req(b"POST /items HTTP/1.1", b"Content-Type: application/json", b"Content-Length: 13", body=b'{"qty": ZQXJ<'),
        400,
        id="bad-json",
    ),
    pytest.param(_req(b"GET /private/" + MARK + b" HTTP/1.1"), 401, id="no-token"),
    pytest.param(_req(b"GET /private/x HTTP/1.1", b"Authorization: Bearer " + MARK), 401, id="bad-token"),
    pytest.param(_req(b"GET /admin/x HTTP/1.1", b"Authorization: Bearer " + token().encode()), 403, id="role-missing"),
    pytest.param(
        _req(b"OPTIONS /public/x HTTP/1.1", b"Origin: https://" + MARK, b"Access-Control-Request-Method: GET"),
        403,
        id="cors-refused",
    ),
    pytest.param(_req(b"GET /" + MARK + b" HTTP/1.1"), 404, id="no-rule"),
    pytest.param(_req(b"PROPFIND /public/" + MARK + b" HTTP/1.1"), 405, id="method-not-allowed"),
    pytest.param(_req(b"POST /public/x HTTP/1.1", b"Content-Length: 5000"), 413, id="content-length"),
    pytest.param(_req(b"GET /public/" + MARK * 30 + b" HTTP/1.1"), 414, id="uri"),
    pytest.param(
        _req(b"POST /items HTTP/1.1", b"Content-Type: text/" + MARK, b"Content-Length: 2", body=b"{}"), 415, id="media"
    ),
    pytest.param(
        _req(b"POST /items HTTP/1.1", b"Content-Type: application/json", b"Content-Length: 10", body=b'{"qty": 0}'),
        422,
        id="schema",
    ),
    pytest.param(_req(b"GET / HTTP/1.1", *(b"X-%d: " % i + MARK for i in range(30))), 431, id="header-count"),
]
LEAKS = (
    b"zqxj", b"<script", b"aiohttp", b"python", b"traceback", b"exception", b".py", b"yarl", b"multidict",
    b"llhttp", b"orjson", b"fastjsonschema", b"pydantic", b"jwt", b"/tmp", b"/work", b"127.0.0.1",
)


@pytest.mark.parametrize("request_bytes, status", SCAN)
async def test_generated_error_bodies_leak_nothing(
    gate: Gate, hup: HeaderUpstream, request_bytes: bytes, status: int
) -> None:
    proxy = await gate(
        SCAN_RULES,
        limits={"max_body": 1000, "max_uri": 200, "max_headers": 20, "max_header_bytes": 1500},
        cors={"allow_origins": ["https://app.example"]},
    )
    raw = await raw_request(proxy.port, request_bytes)
    got, pairs, body = head_lines(raw)
    assert got == status, raw[:300]
    lowered = raw.lower()
    for leak in (*LEAKS, str(hup.server.port).encode()):
        assert leak not in lowered, leak
    doc = orjson.loads(body)
    assert {"type", "title", "status", "request_id"} <= set(doc) <= {"type", "title", "status", "request_id", "errors"}
    assert dict(pairs)["content-type"] == "application/problem+json"
    assert hup.seen == []
