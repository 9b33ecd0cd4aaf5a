"""Hot reload of the access rules, and shadow mode, on a running Bastion."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import EchoUpstream, Process, StartBastion, free_port, make_config, wait_http, write_config

BASE = """
rules:
  - id: open
    match: {path: /open, methods: [GET]}
    allow: anonymous
  - id: private
    match: {path: /private, methods: [GET]}
    allow: authenticated
"""
EXTRA = """
  - id: later
    match: {path: /later, methods: [GET]}
    allow: anonymous
"""


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as r:
        return r.status


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_file_change_reloads_and_bad_file_keeps_old_rules(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "app.yaml").write_text(BASE)
    proxy = await start_bastion(make_config(upstream.url, rules=[str(rules / "*.yaml")]))
    reloader = proxy.bastion.reloader
    assert reloader is not None
    async with aiohttp.ClientSession() as s:
        assert await _status(s, proxy.url + "/open") == 200
        assert await _status(s, proxy.url + "/later") == 404
        await asyncio.sleep(0.3)  # let the watcher start before the first change
        (rules / "app.yaml").write_text(BASE + EXTRA)
        await _until(lambda: reloader.reloads >= 1)
        assert await _status(s, proxy.url + "/later") == 200

        (rules / "app.yaml").write_text(BASE + "  - id: broken\n    match: {path: 'no-slash'}\n    allow: anonymous\n")
        await _until(lambda: reloader.failures >= 1)
        assert await _status(s, proxy.url + "/later") == 200  # the previous set is still in force
        assert any("app.yaml" in m for m in reloader.last_error or [])
        async with s.get(proxy.bastion.admin_url + "/readyz") as r:
            assert r.status == 200
        async with s.get(proxy.bastion.admin_url + "/status") as r:
            status = (await r.json())["rules"]
        assert status["reloads"] == 1 and status["failures"] >= 1 and status["last_error"]
    assert [p.split("?")[0] for p in upstream.paths()] == ["/open", "/later", "/later"]


async def test_requests_during_reloads_see_one_rule_set(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "app.yaml").write_text(BASE)
    proxy = await start_bastion(make_config(upstream.url, rules=[str(rules / "*.yaml")], rules_watch=False))
    reloader = proxy.bastion.reloader
    assert reloader is not None

    async def flip() -> None:
        for i in range(10):
            (rules / "app.yaml").write_text(BASE + (EXTRA if i % 2 == 0 else ""))
            assert await reloader.reload("test")

    async with aiohttp.ClientSession() as s:
        flipping = asyncio.create_task(flip())
        results = await asyncio.gather(*(_status(s, proxy.url + p) for p in ["/open", "/private", "/later"] * 40))
        await flipping
    assert reloader.reloads == 10
    for path, status in zip(["/open", "/private", "/later"] * 40, results, strict=True):
        expected = {"/open": {200}, "/private": {401}, "/later": {200, 404}}[path]
        assert status in expected, (path, status)


async def test_sighup_reloads_rules(upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "app.yaml").write_text(BASE)
    port, admin = free_port(), free_port()
    cfg = write_config(tmp_path / "c.yaml", upstream.url, port, admin, extra="rules_watch: false\n")
    cfg.write_text(cfg.read_text().replace("rules: []", "rules: [rules/*.yaml]"))
    proc = spawn("proxy", "run", "-c", str(cfg))
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    async with aiohttp.ClientSession() as s:
        assert await _status(s, f"http://127.0.0.1:{port}/later") == 404
        (rules / "app.yaml").write_text(BASE + EXTRA)
        await asyncio.sleep(0.5)
        assert await _status(s, f"http://127.0.0.1:{port}/later") == 404  # no watcher: nothing yet
        proc.proc.send_signal(signal.SIGHUP)
        await _until(lambda: any(r.get("message") == "rules reloaded" for r in proc.records()))
        assert await _status(s, f"http://127.0.0.1:{port}/later") == 200


async def test_invalid_rules_at_start_refuse_to_start(
    upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "app.yaml").write_text("rules:\n  - id: x\n    match: {path: /a}\n    allow: {roles_any: [ghost]}\n")
    cfg = write_config(tmp_path / "c.yaml", upstream.url, free_port(), free_port())
    cfg.write_text(cfg.read_text().replace("rules: []", "rules: [rules/*.yaml]"))
    proc = spawn("proxy", "run", "-c", str(cfg))
    assert proc.proc.wait(timeout=30) == 1
    assert "app.yaml:4" in proc.log_path.read_text()


async def test_shadow_mode_forwards_and_logs_would_deny(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "app.yaml").write_text(BASE)
    proxy = await start_bastion(make_config(upstream.url, rules=[str(rules / "*.yaml")], rules_mode="shadow"))
    async with aiohttp.ClientSession() as s:
        assert await _status(s, proxy.url + "/private") == 200  # would be 401 under enforce
        assert await _status(s, proxy.url + "/nowhere") == 200  # would be 404
    records = await proxy.access(2)
    assert [r["bastion.decision"] for r in records] == ["would_deny", "would_deny"]
    assert [r.get("bastion.reason") for r in records] == ["auth_required", "no_rule"]
    assert len(upstream.seen) == 2
