"""Per-route body and query validation (`body:` / `query:` in rule files), through a running Bastion."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from proxy.policy import PolicyError, compile_files
from tests.conftest import EchoUpstream, Running, StartBastion, make_config

RULES = """
rules:
  - id: create
    match: {path: /items, methods: [POST]}
    allow: anonymous
    body:
      content_types: [application/json, application/x-www-form-urlencoded, multipart/form-data]
      required: true
      schema: item.schema.json
      json_limits: {max_depth: 4, max_keys: 10, max_array: 5, max_string: 100}
      max_fields: 5
  - id: upload
    match: {path: /upload, methods: [POST]}
    allow: anonymous
    body: {max_size: 4KiB}
  - id: search
    match: {path: /search, methods: [GET]}
    allow: anonymous
    query:
      max_params: 3
      schema:
        type: object
        properties: {q: {type: string, maxLength: 20}, page: {type: string, pattern: "^[0-9]{1,3}$"}}
        additionalProperties: false
"""
SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string", "minLength": 1}, "qty": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}


@pytest.fixture
async def proxy_v(upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path) -> Running:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "item.schema.json").write_text(json.dumps(SCHEMA))
    return await start_bastion(make_config(upstream.url, rules=[str(tmp_path / "*.yaml")], limits={"max_body": 1000}))


async def _send(proxy: Running, method: str, path: str, **kw: object) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.request(method, proxy.url + path, **kw) as r:  # type: ignore[arg-type]
        body = await r.json(content_type=None) if r.status >= 400 else {}
        return r.status, body


REJECTED = [
    (
        "wrong-media-type",
        "POST",
        "/items",
        {"data": b"<x/>", "headers": {"Content-Type": "application/xml"}},
        415,
        None,
    ),
    ("not-json", "POST", "/items", {"data": b"{nope", "headers": {"Content-Type": "application/json"}}, 400, None),
    ("missing-required", "POST", "/items", {"json": {"qty": 2}}, 422, "body"),
    ("wrong-type", "POST", "/items", {"json": {"title": "a", "qty": "two"}}, 422, "body.qty"),
    ("below-minimum", "POST", "/items", {"json": {"title": "a", "qty": 0}}, 422, "body.qty"),
    ("extra-field", "POST", "/items", {"json": {"title": "a", "admin": True}}, 422, "body"),
    ("too-deep", "POST", "/items", {"json": {"title": "a", "x": [[[[["deep"]]]]]}}, 400, None),
    ("long-array", "POST", "/items", {"json": {"title": "a", "x": [1, 2, 3, 4, 5, 6]}}, 400, None),
    ("long-string", "POST", "/items", {"json": {"title": "a" * 101}}, 400, None),
    ("no-body", "POST", "/items", {}, 422, "body"),
    ("form-invalid", "POST", "/items", {"data": {"qty": "3"}}, 422, "body"),
    ("form-too-many-fields", "POST", "/items", {"data": {f"f{i}": "x" for i in range(8)}}, 400, None),
    ("over-route-size", "POST", "/upload", {"data": b"x" * 5000}, 413, None),
    ("query-unknown-param", "GET", "/search?q=a&debug=1", {}, 422, "query"),
    ("query-pattern", "GET", "/search?page=abc", {}, 422, "query.page"),
    ("query-too-long", "GET", "/search?q=" + "a" * 30, {}, 422, "query.q"),
    ("query-too-many", "GET", "/search?q=1&q=2&q=3&q=4", {}, 400, None),
]


@pytest.mark.parametrize("method, path, kw, status, field", [pytest.param(*r[1:], id=r[0]) for r in REJECTED])
async def test_invalid_requests_never_reach_the_upstream(
    proxy_v: Running,
    upstream: EchoUpstream,
    method: str,
    path: str,
    kw: dict[str, object],
    status: int,
    field: str | None,
) -> None:
    got, body = await _send(proxy_v, method, path, **kw)
    assert got == status
    assert upstream.seen == []
    if field is not None:
        assert body["errors"] == [{"field": field, "rule": body["errors"][0]["rule"]}]  # type: ignore[index]
    text = json.dumps(body)
    assert "two" not in text and "abc" not in text and "debug" not in text  # never the offending values


ACCEPTED = [
    ("json", "POST", "/items", {"json": {"title": "a", "qty": 2}}),
    ("form", "POST", "/items", {"data": {"title": "from a form"}}),
    ("route-allows-more-than-global", "POST", "/upload", {"data": b"x" * 3000}),
    ("query-ok", "GET", "/search?q=shoes&page=2", {}),
]


@pytest.mark.parametrize("method, path, kw", [pytest.param(*r[1:], id=r[0]) for r in ACCEPTED])
async def test_valid_requests_pass_with_the_body_intact(
    proxy_v: Running, upstream: EchoUpstream, method: str, path: str, kw: dict[str, object]
) -> None:
    got, _ = await _send(proxy_v, method, path, **kw)
    assert got == 200
    [seen] = upstream.seen
    assert seen.complete and seen.path == path


async def test_multipart_fields_are_validated(proxy_v: Running, upstream: EchoUpstream) -> None:
    form = aiohttp.FormData()
    form.add_field("title", "with a file")
    form.add_field("file", b"\x00binary", filename="a.bin", content_type="application/octet-stream")
    assert (await _send(proxy_v, "POST", "/items", data=form))[0] == 200
    bad = aiohttp.FormData()
    bad.add_field("qty", "1")
    bad.add_field("file", b"x", filename="a.bin")
    assert (await _send(proxy_v, "POST", "/items", data=bad))[0] == 422
    assert len(upstream.seen) == 1


@pytest.mark.parametrize(
    "body_spec, message",
    [
        pytest.param("schema: {type: nonsense}", "invalid JSON Schema", id="bad-schema"),
        pytest.param("schema: missing.json", "cannot load schema", id="missing-file"),
        pytest.param("schema: {$ref: 'https://evil.example/s.json'}", "remote $ref", id="remote-ref"),
        pytest.param("content_types: ['Application/JSON; charset=utf-8']", "invalid media type", id="media-type"),
        pytest.param("max_size: lots", "invalid size", id="size"),
    ],
)
def test_bad_validation_specs_are_load_errors_with_lines(tmp_path: Path, body_spec: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"rules:\n  - id: x\n    match: {{path: /x}}\n    allow: anonymous\n    body:\n      {body_spec}\n")
    with pytest.raises(PolicyError) as err:
        compile_files([path])
    [msg] = err.value.messages
    assert msg.startswith(f"{path}:6: rules[0].body.") and message in msg
