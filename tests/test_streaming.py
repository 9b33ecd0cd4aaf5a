"""Bodies stream both ways: a large upload and download pass with the proxy's memory flat.

Bastion runs as its own process so that its RSS is measured alone.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.conftest import EchoUpstream, Process, free_port, wait_http, write_config

SIZE = int(os.environ.get("BASTION_STREAM_TEST_BYTES", str(1024**3)))  # 1 GiB by default
RSS_GROWTH_LIMIT = 64 * 1024**2


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            await asyncio.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.fixture
async def bastion_process(upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path) -> str:
    port, admin = free_port(), free_port()
    cfg = write_config(tmp_path / "c.yaml", upstream.url, port, admin, extra="limits: {max_body: 4GiB}\n")
    proc = spawn("proxy", "run", "-c", str(cfg))
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    # warm up so the baseline includes imports, pools and buffers of a normal request
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.post(f"http://127.0.0.1:{port}/warm", data=b"x" * 1_000_000) as r:
                await r.read()
    return f"http://127.0.0.1:{port}|{proc.proc.pid}"


async def _blocks(total: int, block: int = 256 * 1024) -> AsyncIterator[bytes]:
    chunk = b"u" * block
    sent = 0
    while sent < total:
        n = min(block, total - sent)
        yield chunk[:n]
        sent += n


async def test_large_upload_streams_with_flat_memory(bastion_process: str, upstream: EchoUpstream) -> None:
    url, pid = bastion_process.split("|")
    t0 = time.monotonic()
    with RssSampler(int(pid)) as rss:
        async with (
            aiohttp.ClientSession() as s,
            s.post(url + "/upload", data=_blocks(SIZE), headers={"Content-Length": str(SIZE)}) as r,
        ):
            assert r.status == 200
            assert (await r.json())["len"] == SIZE
    print(f"upload {SIZE / 2**20:.0f} MiB in {time.monotonic() - t0:.1f}s, RSS growth {rss.growth / 2**20:.1f} MiB")
    assert upstream.seen[-1].body_len == SIZE and upstream.seen[-1].complete
    assert rss.growth < RSS_GROWTH_LIMIT


async def test_large_download_streams_with_flat_memory(bastion_process: str) -> None:
    url, pid = bastion_process.split("|")
    t0 = time.monotonic()
    received = 0
    with RssSampler(int(pid)) as rss:
        async with aiohttp.ClientSession() as s, s.get(url + f"/download?n={SIZE}") as r:
            assert r.status == 200
            async for chunk in r.content.iter_any():
                received += len(chunk)
    print(f"download {SIZE / 2**20:.0f} MiB in {time.monotonic() - t0:.1f}s, RSS growth {rss.growth / 2**20:.1f} MiB")
    assert received == SIZE
    assert rss.growth < RSS_GROWTH_LIMIT
