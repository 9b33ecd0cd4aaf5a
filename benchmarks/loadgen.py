#!/usr/bin/env python3
"""A small bundled aiohttp load generator, for two jobs wrk cannot do here.

1. **Closed loop** (`--concurrency N`, the default mode): N connections each send a request as soon
   as the previous answer arrived, for `--duration` seconds. This is what wrk does; `run.py` uses
   it only when wrk is not installed. Being Python, it saturates itself far below wrk (tens of µs
   of client CPU per request), so its req/s are only comparable with other loadgen figures.
2. **Open loop / fixed rate** (`--rate R`): requests are *scheduled* at R per second (request i at
   t0 + i/R), like wrk2, whatever the server does. A request that cannot start on time because
   every connection is busy is timed from its scheduled start, so queueing caused by a slow server
   is counted (no "coordinated omission"). A request that starts on time is timed from when it
   really started, so the loadgen's own timer granularity is not charged to the server. Debian's
   wrk has no fixed-rate mode, hence this.

Two clients: `--client aiohttp` (default) and `--client raw`, a ~100-line asyncio HTTP/1.1 client
(keep-alive, Content-Length and chunked answers) that costs a fraction of aiohttp's ~60 µs of CPU
per request. `run.py` uses `raw` for the fixed-rate runs: on a 2-core machine the load generator
shares the CPU with the proxy and the upstream, and the less it takes, the less it disturbs the
latency it measures.

Every run is bounded: no new request is started after `--duration`, and requests still in flight
`--grace` seconds later are cancelled and counted as errors.

Output: one JSON object on stdout (requests, errors, rps, p50/p90/p99/p99.9/max in ms, and for
fixed rate the target rate and the share of requests that started late).

Usage:
    python benchmarks/loadgen.py http://127.0.0.1:19013/small -c 64 -d 5
    python benchmarks/loadgen.py http://127.0.0.1:19013/echo-len -m POST --body-size 65536 --rate 2000 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

import aiohttp
import orjson
from yarl import URL

try:
    import uvloop
except ImportError:  # pragma: no cover - the benchmarks venv has it; plain asyncio still works
    uvloop = None  # type: ignore[assignment]


@dataclass
class Result:
    mode: str
    client: str
    url: str
    method: str
    body_bytes: int
    concurrency: int
    duration_s: float
    target_rate: float | None = None
    requests: int = 0
    errors: int = 0
    status_errors: int = 0
    late_fraction: float | None = None
    rps: float = 0.0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    error_kinds: dict[str, int] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list, like wrk's histogram reading."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Recorder:
    """Latencies in seconds and error counts, shared by all workers of one run."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.status_errors = 0
        self.late = 0
        self.kinds: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


class RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a prebuilt request, parse just enough of the answer
    (status, Content-Length or chunked, Connection: close) to know where it ends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.body_start = -1  # index of the first body byte once the head is parsed
        self.length = -1  # Content-Length, or -1
        self.chunked = False
        self.chunk_pos = 0  # chunked: where the next chunk-size line starts
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed before the answer ended"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._parse()
            except ValueError as exc:
                self.waiter.set_exception(exc)
                self.close()

    def _parse(self) -> None:
        buf = self.buf
        if self.body_start < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).split(b"\r\n")
            parts = head[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError(f"bad status line {head[0][:80]!r}")
            self.status = int(parts[1])
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunked = True
                elif name == b"connection" and b"close" in value.lower():
                    self.close_after = True
            self.body_start = self.chunk_pos = end + 4
            if self.status in (204, 304) or 100 <= self.status < 200:
                self.length = 0
        if self.chunked:
            while True:
                eol = buf.find(b"\r\n", self.chunk_pos)
                if eol < 0:
                    return
                size = int(bytes(buf[self.chunk_pos : eol]).split(b";", 1)[0], 16)
                if size == 0:
                    done = buf.find(b"\r\n\r\n", eol)  # last-chunk, no trailers expected
                    if done < 0:
                        return
                    return self._complete(done + 4)
                nxt = eol + 2 + size + 2
                if len(buf) < nxt:
                    return
                self.chunk_pos = nxt
        if self.length < 0:
            raise ValueError("answer without Content-Length or chunked encoding")
        if len(buf) >= self.body_start + self.length:
            self._complete(self.body_start + self.length)

    def _complete(self, consumed: int) -> None:
        status, close = self.status, self.close_after
        del self.buf[:consumed]
        self._reset()
        assert self.waiter is not None
        self.waiter.set_result(status)
        if close:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, payload: bytes, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        assert self.transport is not None
        self.transport.write(payload)

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(TimeoutError())

        timer = loop.call_later(timeout, expire)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None


class RawClient:
    """Stands in for a ClientSession: each worker owns one RawConnection, reopened when closed."""

    def __init__(self, method: str, url: str, body: bytes | None, timeout: float) -> None:
        u = URL(url)
        if u.scheme != "http" or not u.host:
            raise SystemExit("--client raw supports http:// URLs only")
        self.host, self.port = u.host, u.port or 80
        target = u.raw_path_qs or "/"
        head = f"{method} {target} HTTP/1.1\r\nHost: {u.raw_authority}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n"
        self.payload = head.encode() + b"\r\n" + (body or b"")
        self.timeout = timeout

    async def one(self, conn: list[RawConnection | None], rec: Recorder) -> bool:
        try:
            c = conn[0]
            if c is None or c.closed:
                loop = asyncio.get_running_loop()
                _, fresh = await asyncio.wait_for(
                    loop.create_connection(RawConnection, self.host, self.port), self.timeout
                )
                conn[0] = c = fresh
            status = await c.request(self.payload, self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            if conn[0] is not None:
                conn[0].close()
                conn[0] = None
            rec.error(type(exc).__name__)
            return False
        if status >= 300:
            rec.status_errors += 1
            rec.error(f"status {status}")
            return False
        return True


Sender = Callable[[list[RawConnection | None], Recorder], Awaitable[bool]]


def make_session(concurrency: int, timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def one(session: aiohttp.ClientSession, method: str, url: str, body: bytes | None, rec: Recorder) -> bool:
    """Send one request and read the whole answer; True if it was a 2xx."""
    try:
        async with session.request(method, url, data=body) as resp:
            await resp.read()
            if resp.status >= 300:
                rec.status_errors += 1
                rec.error(f"status {resp.status}")
                return False
            return True
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        rec.error(type(exc).__name__)
        return False


async def closed_loop(send: Sender, rec: Recorder, concurrency: int, duration: float) -> Recorder:
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        conn: list[RawConnection | None] = [None]
        while True:
            start = time.perf_counter()
            if start >= deadline:
                return
            if await send(conn, rec):
                rec.latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rec


async def fixed_rate(send: Sender, rec: Recorder, concurrency: int, duration: float, rate: float) -> Recorder:
    total = max(1, int(rate * duration))
    interval = 1.0 / rate
    t0 = time.perf_counter() + 0.05
    counter = [0]

    async def worker() -> None:
        conn: list[RawConnection | None] = [None]
        while True:
            i = counter[0]
            if i >= total:
                return
            counter[0] = i + 1
            scheduled = t0 + i * interval
            now = time.perf_counter()
            if now < scheduled:
                await asyncio.sleep(scheduled - now)
                start = time.perf_counter()
            else:
                # every connection was busy past the scheduled start: the wait is the server's doing
                start = scheduled
                if now - scheduled > 0.001:
                    rec.late += 1
            if await send(conn, rec):
                rec.latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rec


async def run(args: argparse.Namespace) -> Result:
    body = b"x" * args.body_size if args.body_size else None
    method = args.method.upper()
    mode = "fixed-rate" if args.rate else "closed-loop"
    res = Result(
        mode, args.client, args.url, method, args.body_size, args.concurrency, args.duration, args.rate or None
    )
    rec = Recorder()
    async with make_session(args.concurrency, args.timeout) as session:
        send: Sender
        if args.client == "raw":
            send = RawClient(method, args.url, body, args.timeout).one
        else:

            async def send(_conn: list[RawConnection | None], r: Recorder) -> bool:
                return await one(session, method, args.url, body, r)

        started = time.perf_counter()
        if args.rate:
            coro = fixed_rate(send, rec, args.concurrency, args.duration, args.rate)
        else:
            coro = closed_loop(send, rec, args.concurrency, args.duration)
        task = asyncio.ensure_future(coro)
        try:
            await asyncio.wait_for(asyncio.shield(task), args.duration + args.grace)
        except TimeoutError:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            rec.error("cancelled: still in flight after duration + grace")
        elapsed = time.perf_counter() - started
    lat = sorted(rec.latencies)
    res.requests = len(lat)
    res.errors = rec.errors
    res.status_errors = rec.status_errors
    res.error_kinds = rec.kinds
    # closed loop: the real elapsed time; fixed rate: the scheduled window (the rate is what was asked)
    window = elapsed if not args.rate else max(args.duration, 1e-9)
    res.rps = round(res.requests / window, 1)
    if args.rate:
        res.late_fraction = round(rec.late / max(1, res.requests + rec.errors), 4)
    for name, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9), ("max_ms", 100)):
        v = percentile(lat, q)
        setattr(res, name, None if v is None else round(v * 1000, 3))
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Bundled aiohttp load generator (closed loop or fixed rate).")
    p.add_argument("url", help="an http://127.0.0.1:PORT/... URL")
    p.add_argument("-m", "--method", default="GET")
    p.add_argument("--body-size", type=int, default=0, help="bytes of request body (0: none)")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="connections (closed loop: also in flight)")
    p.add_argument("-d", "--duration", type=float, default=5.0, help="seconds during which requests are started")
    p.add_argument("--rate", type=float, default=0.0, help="requests per second, open loop (0: closed loop)")
    p.add_argument("--client", choices=("aiohttp", "raw"), default="aiohttp", help="HTTP client (see module doc)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    p.add_argument("--grace", type=float, default=5.0, help="seconds after --duration before in-flight is cancelled")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 3600:
        p.error("--duration must be in (0, 3600]")
    if args.concurrency < 1:
        p.error("--concurrency must be at least 1")
    if args.rate < 0:
        p.error("--rate must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = uvloop.run if uvloop is not None else asyncio.run
    res = runner(run(args))
    sys.stdout.write(orjson.dumps(asdict(res)).decode() + "\n")
    return 0 if res.requests else 1


if __name__ == "__main__":
    sys.exit(main())
