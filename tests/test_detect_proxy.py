"""Attack detection wired into the pipeline: block and detect modes, exclusions, rule-load errors.
The detectors themselves are specified in tests/detect/."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from proxy.policy import PolicyError, compile_files
from tests.conftest import EchoUpstream, Running, StartBastion, make_config

RULES = """
rules:
  - id: comments
    match: {path: /comments, methods: [GET, POST]}
    allow: anonymous
    detect:
      mode: block
      exclude: [{field: body.snippet, classes: [sqli]}]
      url_fields: [body.webhook]
  - id: audit
    match: {path: /audit, methods: [POST]}
    allow: anonymous
    detect: {mode: detect}
  - id: plain
    match: {path: /plain, methods: [POST]}
    allow: anonymous
"""


@pytest.fixture
async def proxy_d(upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path) -> Running:
    (tmp_path / "r.yaml").write_text(RULES)
    return await start_bastion(make_config(upstream.url, rules=[str(tmp_path / "*.yaml")]))


async def _post(proxy: Running, path: str, **kw: object) -> int:
    async with aiohttp.ClientSession() as s, s.post(proxy.url + path, **kw) as r:  # type: ignore[arg-type]
        return r.status


BLOCKED = [
    ("sqli-json", {"json": {"text": "x' OR 1=1 --"}}, "sqli"),
    ("sqli-json-key-nested", {"json": {"a": {"b": ["1 UNION SELECT password FROM users"]}}}, "sqli"),
    ("xss-form", {"data": {"text": "<script>alert(1)</script>"}}, "xss"),
    ("nosql-operator-key", {"json": {"user": {"$ne": None}}}, "nosqli"),
    ("traversal", {"json": {"file": "../../../../etc/passwd"}}, "lfi"),
    ("cmdi", {"json": {"host": "8.8.8.8 && whoami"}}, "cmdi"),
    ("ssrf-url-field", {"json": {"webhook": "http://169.254.169.254/latest/meta-data/"}}, "ssrf"),
]


@pytest.mark.parametrize("kw, cls", [pytest.param(k, c, id=i) for i, k, c in BLOCKED])
async def test_attacks_are_blocked_before_the_upstream(
    proxy_d: Running, upstream: EchoUpstream, kw: dict[str, object], cls: str
) -> None:
    assert await _post(proxy_d, "/comments", **kw) == 403
    assert upstream.seen == []
    [rec] = await proxy_d.access(1)
    assert rec["bastion.reason"] == "injection_suspected"
    assert rec["bastion.detections"][0]["class"] == cls


async def test_attack_in_the_query_is_blocked(proxy_d: Running, upstream: EchoUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        url = URL(proxy_d.url + "/comments?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", encoded=True)
        async with s.get(url) as r:
            assert r.status == 403
    assert upstream.seen == []


BENIGN = [
    ("irish-name", {"json": {"name": "Siobhán O'Brien"}}),
    ("prose-with-sql-words", {"json": {"text": "Please select the union option and drop the table from the plan."}}),
    ("excluded-sql-snippet", {"json": {"snippet": "SELECT * FROM users WHERE id = 1 OR 1=1"}}),
    ("markdown", {"json": {"text": "# Title\n\n* item `code` and a [link](https://example.com)"}}),
    ("public-webhook", {"json": {"webhook": "https://hooks.example.com/x"}}),
]


@pytest.mark.parametrize("kw", [pytest.param(k, id=i) for i, k in BENIGN])
async def test_benign_requests_pass(proxy_d: Running, upstream: EchoUpstream, kw: dict[str, object]) -> None:
    assert await _post(proxy_d, "/comments", **kw) == 200
    assert len(upstream.seen) == 1 and upstream.seen[0].complete


async def test_detect_mode_forwards_and_logs(proxy_d: Running, upstream: EchoUpstream) -> None:
    assert await _post(proxy_d, "/audit", json={"text": "x' OR 1=1 --"}) == 200
    assert len(upstream.seen) == 1
    [rec] = await proxy_d.access(1)
    assert rec["bastion.decision"] == "detected" and rec["bastion.detections"][0]["class"] == "sqli"
    assert 0 < len(rec["bastion.detections"][0]["snippet"]) <= 64  # a capped snippet, never the whole value


async def test_routes_without_detect_stream_untouched(proxy_d: Running, upstream: EchoUpstream) -> None:
    assert await _post(proxy_d, "/plain", json={"text": "x' OR 1=1 --"}) == 200
    assert len(upstream.seen) == 1


def test_bad_detect_blocks_are_load_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: x\n    match: {path: /x}\n    allow: anonymous\n    detect: {mode: loud}\n")
    with pytest.raises(PolicyError) as err:
        compile_files([path])
    assert any(m.startswith(f"{path}:5: rules[0].detect") and "loud" in m for m in err.value.messages)
