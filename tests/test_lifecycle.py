"""Process lifetime, on real processes: graceful drain on SIGTERM, and worker supervision."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil

from tests.conftest import EchoUpstream, Process, Running, free_port, wait_http, write_config


async def _wait_exit(proc: Process, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while proc.proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    code = proc.proc.poll()
    assert code is not None, "process did not exit"
    return code


async def test_sigterm_drains_then_finishes_inflight(
    upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    cfg = write_config(
        tmp_path / "c.yaml", upstream.url, port, admin, extra="shutdown: {drain_delay: 700ms, grace_period: 10s}\n"
    )
    proc = spawn("proxy", "run", "-c", str(cfg))
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    async with aiohttp.ClientSession() as s:
        slow = asyncio.create_task(s.get(f"http://127.0.0.1:{port}/slow?s=2"))
        while not upstream.seen:  # the slow request is in flight
            await asyncio.sleep(0.02)
        proc.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        async with s.get(f"http://127.0.0.1:{admin}/readyz") as r:
            assert r.status == 503  # readiness turns first, while the listener still serves
            assert (await r.json())["checks"]["draining"] is True
        async with s.get(f"http://127.0.0.1:{port}/during-drain") as r:
            assert r.status == 200
        resp = await slow
        assert resp.status == 200  # the in-flight request completed after SIGTERM
        resp.release()
    assert await _wait_exit(proc) == 0
    messages = [r.get("message") for r in proc.records()]
    assert messages.index("draining") < messages.index("stopped")
    statuses = [r["http.response.status_code"] for r in proc.records() if r.get("event.dataset") == "bastion.access"]
    assert sorted(statuses) == [200, 200]


async def test_sigint_stops_cleanly(upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    cfg = write_config(tmp_path / "c.yaml", upstream.url, port, admin, extra="shutdown: {drain_delay: 0s}\n")
    proc = spawn("proxy", "run", "-c", str(cfg))
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    proc.proc.send_signal(signal.SIGINT)
    assert await _wait_exit(proc) == 0


async def _status(admin: int) -> dict[str, object]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin}/status") as r:
        return dict(await r.json())


async def test_workers_share_the_port_and_a_killed_worker_is_replaced(
    upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    cfg = write_config(
        tmp_path / "c.yaml", upstream.url, port, admin, extra="shutdown: {drain_delay: 0s, grace_period: 5s}\n"
    )
    proc = spawn("proxy", "run", "-c", str(cfg), "--workers", "2")
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    deadline = time.monotonic() + 15
    while len((await _status(admin))["workers"]) < 2 and time.monotonic() < deadline:  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
    before = list((await _status(admin))["workers"])  # type: ignore[call-overload]
    assert len(before) == 2
    await wait_http(f"http://127.0.0.1:{port}/ping")

    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 15
    after: list[int] = before
    while time.monotonic() < deadline:
        after = list((await _status(admin))["workers"])  # type: ignore[call-overload]
        if len(after) == 2 and before[0] not in after:
            break
        await asyncio.sleep(0.1)
    assert len(after) == 2 and before[0] not in after and before[1] in after
    assert (await _status(admin))["restarts"] == 1
    # the replacement serves: enough fresh connections that both workers take some
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(20):
            async with s.get(f"http://127.0.0.1:{port}/after") as r:
                assert r.status == 200
    proc.proc.send_signal(signal.SIGTERM)
    assert await _wait_exit(proc, 20) == 0
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in after)


async def test_admin_listener_never_announces_a_server(proxy: Running) -> None:
    async with aiohttp.ClientSession() as s:
        for path, status in (("/healthz", 200), ("/nope", 404), ("/revocations", 405)):
            async with s.get(proxy.bastion.admin_url + path) as r:
                assert r.status == status and "Server" not in r.headers
                if status >= 400:
                    assert r.headers["Content-Type"] == "application/problem+json"
