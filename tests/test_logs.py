"""One JSON schema for the access record and the process's own logs; secrets never logged."""

from __future__ import annotations

import io
import logging

import aiohttp
import orjson
from yarl import URL

from proxy.config import Logging
from proxy.logs import LogOutput, setup_logging
from tests.conftest import Running, parse_head, raw_request

ACCESS_FIELDS = {
    "@timestamp",
    "log.level",
    "event.dataset",
    "http.request.id",
    "client.ip",
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "http.request.body.bytes",
    "http.response.body.bytes",
    "bastion.duration_ms",
    "bastion.upstream_ms",
    "user_agent.original",
    "url.query",
    "event.id",
    "trace.id",
    "span.id",
}


async def test_one_access_record_per_request(proxy: Running) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.url + "/a/./b?x=1", data=b"12345", headers={"User-Agent": "ua/1"}) as r:
            rid = r.headers["X-Request-ID"]
        async with s.get(URL(proxy.url + "/%2e%2e/x", encoded=True)) as r:
            assert r.status == 400
    first, second = await proxy.access(2)
    assert set(first) == ACCESS_FIELDS
    assert first["http.request.id"] == rid and first["url.path"] == "/a/b" and first["http.request.method"] == "POST"
    assert first["http.response.status_code"] == 200 and first["http.request.body.bytes"] == 5
    assert first["http.response.body.bytes"] > 0 and first["user_agent.original"] == "ua/1"
    assert first["bastion.upstream_ms"] <= first["bastion.duration_ms"]
    assert first["@timestamp"].endswith("Z") and first["url.query"] == "x=1"
    assert first["event.id"] != second["event.id"]
    assert second["bastion.reason"] == "bad_path" and second["bastion.upstream_ms"] is None


async def test_credentials_never_appear_in_logs(proxy: Running) -> None:
    secret_headers = {
        "Authorization": "Bearer s3cr3t-token",
        "Cookie": "session=s3cr3t-cookie",
        "Proxy-Authorization": "Basic s3cr3t",
    }
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x", headers=secret_headers) as r:
        assert r.status == 200
    await proxy.access(1)
    proxy.output.close()
    dumped = orjson.dumps(proxy.logs.lines)
    assert b"s3cr3t" not in dumped


async def test_user_controlled_values_cannot_forge_lines(proxy: Running) -> None:
    head = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nUser-Agent: "
    ua = b'a\xe2\x80\xa8b"}\\n{"forged": 1, ' + b"x" * 5000
    assert parse_head(await raw_request(proxy.port, head + ua + b"\r\n\r\n"))[0] == 200
    # raw control characters (ANSI escapes) never get as far as a record: the parser refuses them
    assert parse_head(await raw_request(proxy.port, head + b"\x1b[31mred\r\n\r\n"))[0] == 400
    recs = await proxy.access(2)
    proxy.output.close()
    assert all("forged" not in r for r in recs)
    ua_logged = recs[0]["user_agent.original"]
    assert len(ua_logged) <= 513 + 5  # capped at 512; U+2028 written as visible `\u2028` (6 for 1)
    assert "\u2028" not in ua_logged and ua_logged.startswith("a\\u2028b")
    assert b"\x1b" not in orjson.dumps(proxy.logs.lines)


def test_process_logs_share_the_schema() -> None:
    stream = io.BytesIO()
    out = LogOutput(stream)
    setup_logging(Logging(level="info"), out)
    try:
        logging.getLogger("bastion.test").warning("hello %s", "world", extra={"upstream": "x"})
        logging.getLogger("bastion.test").debug("not at info level")
    finally:
        out.close()
        logging.getLogger().handlers.clear()
    [line] = stream.getvalue().splitlines()
    rec = orjson.loads(line)
    assert rec["log.level"] == "warning" and rec["message"] == "hello world" and rec["upstream"] == "x"
    assert rec["log.logger"] == "bastion.test" and rec["@timestamp"].endswith("Z")


def test_process_logs_written_during_a_request_carry_its_request_and_trace_ids() -> None:
    from proxy.logs import REQUEST_SCOPE

    stream = io.BytesIO()
    out = LogOutput(stream)
    setup_logging(Logging(level="info"), out)
    try:
        logging.getLogger("bastion.test").warning("outside any request")
        token = REQUEST_SCOPE.set(("rid-1", "0af7651916cd43dd8448eb211c80319c"))
        logging.getLogger("bastion.test").warning("during a request")
        REQUEST_SCOPE.reset(token)
    finally:
        out.close()
        logging.getLogger().handlers.clear()
    outside, during = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert "http.request.id" not in outside and "trace.id" not in outside
    assert during["http.request.id"] == "rid-1" and during["trace.id"] == "0af7651916cd43dd8448eb211c80319c"
    assert during["event.dataset"] == "bastion.process" and during["event.id"] != outside["event.id"]


async def test_a_breaker_tripped_during_a_request_probes_without_that_requests_ids() -> None:
    import asyncio

    from proxy.config import Breaker as BreakerConfig
    from proxy.logs import REQUEST_SCOPE
    from proxy.ratelimit.breaker import Breaker

    seen: list[object] = []

    async def probe() -> None:
        seen.append(REQUEST_SCOPE.get())  # what a log line written by the probe would carry
        raise ConnectionError("still down")

    breaker = Breaker(BreakerConfig(retry_every=0.01), probe)

    async def request() -> None:
        REQUEST_SCOPE.set(("rid-A", "0af7651916cd43dd8448eb211c80319c"))
        breaker.trip("redis timed out")

    await asyncio.create_task(request())
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert breaker._task is not None
    breaker._task.cancel()
    assert seen and seen[0] is None
