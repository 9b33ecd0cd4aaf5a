"""A proxied request leaves no reference cycles: its objects are freed by reference counting the
moment it ends, never by the cyclic GC (whose pauses and per-request cost show up as p99 and CPU
in benchmarks/). A closure on the context that captured the context once cost ~17 cyclic objects
and 4–6 µs of GC CPU per request."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

from tests.conftest import Running


async def test_proxied_requests_create_no_garbage_cycles(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

    async def one() -> None:
        writer.write(b"POST /x?a=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)

    for _ in range(20):  # warm-up: pools, caches, lazily built objects
        await one()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(200):
            await one()
        found = gc.collect()
        kinds = Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        writer.close()
    assert found < 20, kinds.most_common(10)  # a per-request cycle would be thousands
