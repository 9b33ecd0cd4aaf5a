"""Secrets never reach a log line; a request can never forge or colour one.

Table-driven over the redactor, then end to end: requests carrying secrets in every place a log
record takes from them, through a real Bastion, and the serialised lines searched for the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp
import orjson
import pytest

from proxy.logs import LogOutput, serialise
from proxy.redact import Redactor
from tests.conftest import EchoUpstream, RecordingStream, make_config, parse_head, raw_request

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbInVzZXIiXX0"
    ".c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
)


def tag(secret: str) -> str:
    return "[redacted:" + hashlib.sha256(secret.encode()).hexdigest()[:12] + "]"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", f"Bearer {JWT}", f"Bearer {tag(JWT)}"),
        ("authorization", "Basic YWxpY2U6aHVudGVyMg==", f"Basic {tag('YWxpY2U6aHVudGVyMg==')}"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg==", f"Basic {tag('Zm9vOmJhcg==')}"),
        ("Cookie", "session=abc; theme=dark", tag("session=abc; theme=dark")),
        ("Set-Cookie", "sid=xyz; HttpOnly", tag("sid=xyz; HttpOnly")),
        ("X-API-Key", "k-123456", tag("k-123456")),
        ("X-Auth-Token", "t0k3n", tag("t0k3n")),
        ("Referer", f"https://a.example/cb?token={JWT}", f"https://a.example/cb?token={tag(JWT)}"),
        ("User-Agent", "curl/8.0", "curl/8.0"),
        ("X-Custom-Secret", "s", tag("s")),  # added by config below
        ("Authorization", "Bearer\tsk9fa8b7c6d5e4f3", f"Bearer {tag('sk9fa8b7c6d5e4f3')}"),  # a tab, not a space
        ("Referer", "https://a.example/cb?access_token=sk9f&q=1", f"https://a.example/cb?access_token={tag('sk9f')}&q=1"),
        ("X-Note", "token\tabcdefgh12345678", f"token {tag('abcdefgh12345678')}"),
    ],
)
def test_headers_by_name_and_by_shape(name: str, value: str, expected: str) -> None:
    assert Redactor(headers=["x-custom-secret"]).header(name, value) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=shoes&page=2", "q=shoes&page=2"),
        ("password=hunter2", "password=[redacted]"),
        ("user[password]=hunter2&x=1", "user[password]=[redacted]&x=1"),
        ("access_token=abc123", f"access_token={tag('abc123')}"),
        ("api_key=k1&apiKey=k2&API-KEY=k3", f"api_key={tag('k1')}&apiKey={tag('k2')}&API-KEY={tag('k3')}"),
        ("client_secret=s3", f"client_secret={tag('s3')}"),
        ("Passwd=x", "Passwd=[redacted]"),
        (f"next=/home&id_hint={JWT}", f"next=/home&id_hint={tag(JWT)}"),  # a JWT under any name
        ("card=4111111111111111", "card=[redacted]"),  # a Luhn-valid card number under any name
        ("order=4111111111111112", "order=4111111111111112"),  # not Luhn-valid: an id, kept
        ("password=", "password="),  # nothing to hide
        ("author=bob&token", "author=bob&token"),  # `author` is no `auth`; a bare name has no value
        ("pass%2577ord=hunter2", "pass%2577ord=[redacted]"),  # double-encoded name
        ("h=Bearer%20abcdefgh12345678", f"h=Bearer {tag('abcdefgh12345678')}"),  # encoded credential
        ("key=AIzaSyA-1234567890", f"key={tag('AIzaSyA-1234567890')}"),  # Google's API-key parameter
        ("code=4%2F0Adeu5", f"code={tag('4/0Adeu5')}"),  # an OAuth authorization code
    ],
)
def test_query_parameters(query: str, expected: str) -> None:
    assert Redactor().query(query) == expected


def test_json_keys_recursively_and_token_values_anywhere() -> None:
    doc = {
        "user": "alice",
        "Password": "hunter2",
        "profile": {"refresh_token": "r-1", "nested": [{"apiKey": "k"}, {"note": f"see Bearer {JWT}"}]},
        "author": "bob",
    }
    out = Redactor().tree(doc)
    assert out == {
        "user": "alice",
        "Password": "[redacted]",
        "profile": {"refresh_token": tag("r-1"), "nested": [{"apiKey": tag("k")}, {"note": f"see Bearer {tag(JWT)}"}]},
        "author": "bob",
    }


def test_custom_key_names_add_to_the_built_in_ones() -> None:
    r = Redactor(keys=["ssn_last4", "x-tenant-key"])
    got = r.query("ssn_last4=1234&x_tenant_key=t&password=p")
    assert got == f"ssn_last4=[redacted]&x_tenant_key={tag('t')}&password=[redacted]"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\u2028b", "a\\u2028b"),  # JSON leaves U+2028 raw; JavaScript log viewers break the line there
        ("x\u009b31mred", "x\\u009b31mred"),  # 8-bit CSI: some terminals start an escape sequence
        ("\x7f", "\\u007f"),
        ("rtl\u202eevil", "rtl\\u202eevil"),  # bidi override (Trojan Source)
        ("plain ascii", "plain ascii"),
    ],
)
def test_characters_that_viewers_act_on_are_made_visible(raw: str, expected: str) -> None:
    assert Redactor().text(raw) == expected


def test_c0_controls_are_escaped_by_the_serialiser_so_no_line_can_be_forged() -> None:
    line = serialise({"@timestamp": 1.0, "url.path": '/a\r\n{"forged":1}\x1b[31m\x00'})
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert b"\x1b" not in line and b"\r" not in line and b"\x00" not in line
    assert orjson.loads(line)["url.path"] == '/a\r\n{"forged":1}\x1b[31m\x00'


def test_huge_values_are_capped() -> None:
    out = LogOutput(RecordingStream(), redactor=Redactor(max_field=100))  # type: ignore[arg-type]
    try:
        rec = out.prepare({"@timestamp": 1.0, "url.path": "/" + "a" * 100_000, "message": "m" * 5000})
    finally:
        out.close()
    assert len(rec["url.path"]) == 101 and rec["url.path"].endswith("…")
    assert len(rec["message"]) == 101


def test_user_ids_are_escaped_like_any_user_controlled_string() -> None:
    out = LogOutput(RecordingStream())  # type: ignore[arg-type]
    try:
        rec = out.prepare({"@timestamp": 1.0, "user.id": "alice\u202eevil"})
    finally:
        out.close()
    assert rec["user.id"] == "alice\\u202eevil"  # some identity providers let users choose `sub`


def test_process_log_fields_are_redacted_by_name_too() -> None:
    out = LogOutput(RecordingStream())  # type: ignore[arg-type]
    try:
        rec = out.prepare({"@timestamp": 1.0, "message": f"got {JWT}", "client_secret": "s", "error": "x"})
    finally:
        out.close()
    assert rec["message"] == f"got {tag(JWT)}" and rec["client_secret"] == tag("s") and rec["error"] == "x"


@pytest.mark.parametrize(
    ("field", "snippet", "expected"),
    [  # field names as proxy/detect/fields.py produces them
        ("body.user.password", "' or 1=1--", "[redacted]"),
        ("body.tokens[0]", "' or 1=1--", tag("' or 1=1--")),  # the leaf is `tokens`, not `0`
        ("cookie.sid", "<script>x</script>", tag("<script>x</script>")),  # any cookie: a session, likely
        ("cookie.connect.sid", "' or 1=1", tag("' or 1=1")),
        ("header.authorization", "' or 1=1", tag("' or 1=1")),
        ("header.referer", "/cb?access_token=sk9f&q=<script>", f"/cb?access_token={tag('sk9f')}&q=<script>"),
        ("query.q", "' or 1=1--", "' or 1=1--"),  # the evidence stays readable where it is no secret
        ("body.comments[3].text", "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ],
)
def test_detection_snippets(field: str, snippet: str, expected: str) -> None:
    d = Redactor().detection({"class": "sqli", "detector": "sqli-001", "field": field, "snippet": snippet})
    assert d["snippet"] == expected and d["class"] == "sqli" and d["field"] == field


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"pin": 4821}, {"pin": "[redacted]"}),
        ({"password": 12345678}, {"password": "[redacted]"}),
        ({"token": b"sk-bytes"}, {"token": tag("b'sk-bytes'")}),
        ({"session": {"id": "s3cr3t"}}, {"session": "[redacted]"}),
        ({"api_key": ["a", "b"]}, {"api_key": "[redacted]"}),
        ({"note": b"plain"}, {"note": "plain"}),
        ({"count": 3, "token": None}, {"count": 3, "token": None}),
    ],
)
def test_values_under_credential_names_go_whatever_their_type(record: dict, expected: dict) -> None:
    assert Redactor().tree(record) == expected


async def test_end_to_end_no_secret_reaches_a_line(upstream: EchoUpstream) -> None:
    from proxy.app import Bastion

    cfg = make_config(upstream.url, logging={"headers": ["authorization", "cookie", "x-api-key", "user-agent"]})
    stream = RecordingStream()
    output = LogOutput(stream)  # type: ignore[arg-type]
    bastion = Bastion(cfg, output)
    await bastion.start()
    secrets = ["hunter2", JWT, "c00kie-value", "k-abcdef", "4111111111111111"]
    try:
        async with aiohttp.ClientSession() as s:
            url = f"{bastion.url}/login?password=hunter2&access_token={JWT}&card=4111111111111111&q=ok"
            headers = {"Authorization": f"Bearer {JWT}", "Cookie": "sid=c00kie-value", "X-API-Key": "k-abcdef"}
            async with s.get(url, headers={**headers, "User-Agent": f"ua {JWT}"}) as r:
                assert r.status == 200
        # a request line an attacker shapes to forge a record: CR/LF never reach a line raw
        head = b"GET /x?a=%0d%0a%7b%22forged%22%3a1%7d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        assert parse_head(await raw_request(bastion.port, head))[0] == 200
        deadline = time.monotonic() + 2
        while len(stream.access()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await bastion.shutdown(drain=False)
        output.close()
    blob = orjson.dumps(stream.lines)
    for secret in secrets:
        assert secret.encode() not in blob, secret
    first = stream.access()[0]
    assert first["http.request.header.authorization"] == f"Bearer {tag(JWT)}"
    assert first["url.query"].endswith("&q=ok") and "password=[redacted]" in first["url.query"]
    assert first["user_agent.original"] == f"ua {tag(JWT)}"
    # a forged record would be a line of its own, parsed into a dict with a `forged` key
    assert all("forged" not in rec for rec in stream.lines)
    assert any(rec.get("url.query", "").startswith("a=%0d%0a") for rec in stream.lines)


def test_repeated_strings_are_redacted_every_time_and_only_clean_ones_are_remembered() -> None:
    r = Redactor()
    ua = f"curl/8.5 (Bearer {JWT})"
    clean = "Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0"
    for _ in range(3):  # the second and third answers come from the cache for the clean one only
        assert JWT not in r.text(ua) and tag(JWT) in r.text(ua)
        assert r.text(clean) == clean
    assert clean in r._text_cache and ua not in r._text_cache  # no token kept in memory past its record
