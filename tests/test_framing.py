"""Request framing, attacked over raw sockets. Every ambiguous message is refused before
forwarding, whether aiohttp's parser (llhttp) or Bastion's ingress check catches it, and the
upstream sees nothing. README "Framing" documents which layer refuses what.
"""

from __future__ import annotations

import pytest

from tests.conftest import EchoUpstream, Running, StartBastion, make_config, raw_request

H = b"Host: a\r\n"

REFUSED = [
    # (id, request, status)
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("two-cl-differ", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("two-cl-same", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl-plus-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    (
        "te-twice",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("te-list", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te-upper-case", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", 400),
    ("te-on-http10", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "chunk-size-not-hex",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-negative",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    ("chunk-size-0x", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-bare-lf", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400),
    ("name-with-space", b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("name-control-char", b"GET / HTTP/1.1\r\n" + H + b"X-\x01A: b\r\n\r\n", 400),
    ("value-bare-cr", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n", 400),
    ("value-nul", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400),
    ("value-del", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x7fc\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400),
    ("bare-lf-head", b"GET / HTTP/1.1\nHost: a\nX-A: b\n\n", 400),
    ("bare-lf-mixed", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400),
    (
        "get-body-hides-request",
        b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 34\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    ("head-with-chunked-body", b"HEAD / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("connect-tunnel", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405),
    ("absolute-form-other-host", b"GET http://evil.example/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk-form", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("no-host-http11", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("fragment-in-target", b"GET /a#x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("raw-8bit-in-target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("raw-backslash-in-target", b"GET /a\\b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space-in-target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("lower-case-method", b"get / HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("garbage-method", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 501),
]


@pytest.mark.parametrize("request_bytes, status", [pytest.param(r, s, id=i) for i, r, s in REFUSED])
async def test_ambiguous_framing_is_refused(
    proxy: Running, upstream: EchoUpstream, request_bytes: bytes, status: int
) -> None:
    raw = await raw_request(proxy.port, request_bytes)
    assert raw.split(b" ", 2)[1] == str(status).encode(), raw[:200]
    assert b"application/problem+json" in raw
    assert upstream.seen == []


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        pytest.param(b"GET / HTTP/2.0\r\n" + H + b"\r\n", b"505", id="http2-request-line"),
        pytest.param(b"GET /\r\n\r\n", b"505", id="http09"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"400", id="h2-preface"),
    ],
)
async def test_other_protocol_versions_never_reach_the_upstream(
    proxy: Running, upstream: EchoUpstream, request_bytes: bytes, status: bytes
) -> None:
    raw = await raw_request(proxy.port, request_bytes, timeout=2)
    assert raw.split(b" ", 2)[1] == status and b"application/problem+json" in raw
    assert upstream.seen == []


ACCEPTED = [
    # llhttp trims optional whitespace around values (RFC 9110 §5.5); Bastion re-frames every body it
    # forwards, so the upstream can never read these differently from Bastion.
    ("te-trailing-ows", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n", 5),
    (
        "chunk-extension",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
        5,
    ),
    ("obs-text-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: caf\xc3\xa9\r\n\r\n", 0),
    ("absolute-form-own-host", b"GET http://a/x HTTP/1.1\r\n" + H + b"\r\n", 0),
    ("http10-with-length", b"POST / HTTP/1.0\r\n" + H + b"Content-Length: 5\r\n\r\nhello", 5),
]


@pytest.mark.parametrize("request_bytes, body", [pytest.param(r, b, id=i) for i, r, b in ACCEPTED])
async def test_unambiguous_variants_pass_reframed(
    proxy: Running, upstream: EchoUpstream, request_bytes: bytes, body: int
) -> None:
    raw = await raw_request(proxy.port, request_bytes.replace(H, H + b"Connection: close\r\n", 1))
    assert raw.split(b" ", 2)[1] == b"200", raw[:200]
    [seen] = upstream.seen
    assert seen.body_len == body and seen.complete
    assert seen.all("Transfer-Encoding") in ([], ["chunked"])  # Bastion's own framing, never the client's


ROUTE_HEADERS = [
    b"X-Original-URL: /admin",
    b"X-Rewrite-URL: /admin",
    b"X-Forwarded-Prefix: /admin",
    b"X-Forwarded-Uri: /admin",
    b"X-HTTP-Method-Override: DELETE",
    b"X-Method-Override: DELETE",
    b"X-HTTP-Method: DELETE",
    b"X_Original_URL: /admin",
]


@pytest.mark.parametrize("header", ROUTE_HEADERS, ids=[h.split(b":")[0].decode() for h in ROUTE_HEADERS])
async def test_route_and_method_rewrite_headers_are_removed(
    proxy: Running, upstream: EchoUpstream, header: bytes
) -> None:
    raw = await raw_request(proxy.port, b"GET /x HTTP/1.1\r\n" + H + b"Connection: close\r\n" + header + b"\r\n\r\n")
    assert raw.split(b" ", 2)[1] == b"200"
    name = header.split(b":")[0].decode().replace("_", "-")
    assert upstream.seen[0].header(name) is None and upstream.seen[0].header(name.replace("-", "_")) is None


async def test_route_headers_from_a_trusted_proxy_pass(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url, trusted_proxies=["127.0.0.1/32"]))
    raw = await raw_request(
        proxy.port, b"GET /x HTTP/1.1\r\n" + H + b"Connection: close\r\nX-Forwarded-Prefix: /api\r\n\r\n"
    )
    assert raw.split(b" ", 2)[1] == b"200"
    assert upstream.seen[0].all("X-Forwarded-Prefix") == ["/api"]
