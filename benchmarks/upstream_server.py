#!/usr/bin/env python3
"""A deliberately fast upstream for Bastion's benchmarks.

Why it exists: a benchmark of a proxy should spend its CPU in the proxy, not in the upstream. This
server uses aiohttp's low-level `web.Server` (no router, no middleware), uvloop and no access log,
and precomputes its one static body, so that it costs as little per request as an aiohttp server
can. It runs as a single process on purpose: the same upstream, with the same cost, sits behind
every target (direct, yardstick, Bastion), so whatever it costs is common to all of them.

Endpoints:

- `GET /small`: a ~1 KB JSON document (the typical small API answer).
- `POST /echo-len`: reads the whole request body (streamed, never buffered) and answers a small
  JSON document with its length, so that a proxy that truncates or loses a body shows up.
- anything else: 404.

Usage: python benchmarks/upstream_server.py --port 19001 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import orjson
import uvloop
from aiohttp import web
from aiohttp.web_request import BaseRequest


def small_body(size: int = 1024) -> bytes:
    """A JSON document of about `size` bytes that looks like a list of API records."""
    items = []
    i = 0
    while True:
        items.append({"id": i, "name": f"item-{i:04d}", "active": i % 2 == 0, "score": i * 7})
        i += 1
        if len(orjson.dumps({"items": items})) >= size - 80:
            break
    doc = {"items": items, "pad": ""}
    pad = size - len(orjson.dumps(doc))
    doc["pad"] = "x" * max(pad, 0)
    return orjson.dumps(doc)


SMALL = small_body()
JSON = "application/json"


async def handle(request: BaseRequest) -> web.StreamResponse:
    """The only handler: a two-way dispatch is cheaper than aiohttp's router and enough here."""
    path = request.path
    if path == "/small" and request.method == "GET":
        return web.Response(body=SMALL, content_type=JSON)
    if path == "/echo-len" and request.method == "POST":
        n = 0
        async for chunk in request.content.iter_any():
            n += len(chunk)
        return web.Response(body=orjson.dumps({"length": n}), content_type=JSON)
    return web.Response(status=404, body=b'{"error":"not found"}', content_type=JSON)


async def serve(host: str, port: int) -> None:
    server = web.Server(handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=19001)
    args = p.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
