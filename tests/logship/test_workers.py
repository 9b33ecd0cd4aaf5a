"""With `--workers N` every process keeps its own log file (two processes rotating one file would
corrupt it), and together they hold exactly one access record per request."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

from tests.conftest import EchoUpstream, Process, free_port, wait_http, write_config
from tests.test_metrics import _listening, _workers


async def test_each_worker_and_the_supervisor_write_their_own_file(
    upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    logs = tmp_path / "logs" / "access.ndjson"
    extra = (
        "shutdown: {drain_delay: 0s, grace_period: 5s}\n"
        f"logging: {{sinks: [{{type: file, path: '{logs}'}}]}}\n"
    )
    proc = spawn("proxy", "run", "-c", str(write_config(tmp_path / "c.yaml", upstream.url, port, admin, extra)),
                 "--workers", "2")  # fmt: skip
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    await _listening(await _workers(admin, 2), port)  # a worker shows in /status before it listens
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for i in range(60):  # fresh connections: SO_REUSEPORT spreads connections over the workers
            async with s.get(f"http://127.0.0.1:{port}/r/{i}") as r:
                assert r.status == 200
    proc.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.proc.wait, 20)
    names = sorted(p.name for p in logs.parent.iterdir())
    assert names == ["access.ndjson.sup", "access.ndjson.w0", "access.ndjson.w1"], names
    access = {
        name: [r for r in map(orjson.loads, (logs.parent / name).read_bytes().splitlines())
               if r.get("event.dataset") == "bastion.access" and r["url.path"].startswith("/r/")]
        for name in names
    }  # fmt: skip
    assert access["access.ndjson.sup"] == []  # the supervisor serves no requests, only its own records
    paths = sorted(r["url.path"] for name in ("access.ndjson.w0", "access.ndjson.w1") for r in access[name])
    assert paths == sorted(f"/r/{i}" for i in range(60))  # every request once, none lost at shutdown
    assert access["access.ndjson.w0"] and access["access.ndjson.w1"]  # both workers served
    ids = [r["event.id"] for name in names for r in map(orjson.loads, (logs.parent / name).read_bytes().splitlines())]
    assert len(ids) == len(set(ids))  # event ids are unique across processes
