#!/usr/bin/env python3
"""What does shipping the logs cost? req/s and CPU through Bastion with each log sink.

Standalone: starts the 1 KB upstream of ratelimit_bench.py, syslog-ng (Debian's `syslog-ng-core`)
as the tcp and syslog collector, a small NDJSON HTTP collector (in this file), and one Bastion per
mode (`python -m proxy run`, access log on: the logs are what differs), then loads each with wrk in
interleaved rounds and reports medians (the harness and its reasons are in ratelimit_bench.py).

Modes: `off` (no access log), `stdout` (the default: one record per request, written to a file by
the benchmark's redirect), `file`, `tcp`, `syslog`, `http` (each of these *plus* stdout, so the
cost shown is the sink's own), and `tcp-dead` (stdout plus a tcp sink whose collector does not
exist: it reconnects with backoff and drops what its queue cannot hold, all counted).

    python benchmarks/logs_bench.py                        # 3 rounds × 5 s per mode
    python benchmarks/logs_bench.py --duration 3 --rounds 1

Targets (issue 8): each sink costs under 5% of pass-through (stdout) throughput; a dead collector
costs nothing measurable. At the end each collector's received count is checked against Bastion's
requests, so a fast sink that lost records cannot look good.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ratelimit_bench as rb  # noqa: E402  (the shared harness)

MODES = ("off", "stdout", "file", "tcp", "syslog", "http", "tcp-dead")

SYSLOG_NG = """@version: 3.35
options {{ threaded(yes); log-msg-size(1048576); stats_freq(0); }};
source s_raw {{ network(ip("127.0.0.1") port({raw}) transport("tcp") flags(no-parse) log-iw-size(100000)); }};
source s_sys {{ syslog(ip("127.0.0.1") port({sys}) transport("tcp") log-iw-size(100000)); }};
destination d_raw {{ file("{dir}/raw.ndjson" template("$MSG\\n")); }};
destination d_sys {{ file("{dir}/syslog.txt" template("$MSG\\n")); }};
log {{ source(s_raw); destination(d_raw); }};
log {{ source(s_sys); destination(d_sys); }};
"""


def serve_collector(port: int, out: Path) -> None:
    """An NDJSON-over-HTTP collector that counts the records it accepted (into `out`)."""
    import asyncio

    from aiohttp import web

    count = 0

    async def ingest(request: web.Request) -> web.Response:
        nonlocal count
        count += (await request.read()).count(b"\n")
        out.write_text(str(count))
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/ingest", ingest)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_counter(port: int, out: Path, marker: str) -> None:
    """A collector that costs next to nothing: counts `marker` occurrences (records) and discards
    the bytes, so the collector's own CPU does not land on the sink being measured (syslog-ng
    parsing every message shares the two vCPUs with Bastion)."""
    import asyncio

    needle = marker.encode().decode("unicode_escape").encode()
    count = 0
    tail = b""

    class Counter(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            nonlocal count, tail
            chunk = tail + data
            count += chunk.count(needle)
            tail = chunk[-(len(needle) - 1) :] if len(needle) > 1 else b""  # a needle split over two reads

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Counter, "127.0.0.1", port)
        while True:
            await asyncio.sleep(1)
            out.write_text(str(count))

    asyncio.run(main())


def sinks_for(mode: str, work: Path, raw: int, sysl: int, http: int, dead: int) -> str:
    extra = {
        "file": f"{{type: file, path: '{work}/file-sink.ndjson', max_size: 1GiB}}",
        "tcp": f"{{type: tcp, host: 127.0.0.1, port: {raw}}}",
        "syslog": f"{{type: syslog, host: 127.0.0.1, port: {sysl}}}",
        "http": f"{{type: http, url: 'http://127.0.0.1:{http}/ingest'}}",
        "tcp-dead": f"{{type: tcp, host: 127.0.0.1, port: {dead}}}",
    }.get(mode)
    return "[{type: stdout}" + (f", {extra}" if extra else "") + "]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--records", type=int, default=100_000, help="records for the per-record CPU measure (0: skip)")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--serve-collector", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--serve-counter", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument(
        "--syslog-ng",
        action="store_true",
        help="collect tcp and syslog with syslog-ng (real, but its CPU competes with Bastion's) "
        "instead of a counting discard server",
    )
    args = ap.parse_args()
    if args.serve_upstream:
        rb.serve_upstream(args.serve_upstream)
        return 0
    if args.serve_collector:
        serve_collector(int(args.serve_collector[0]), Path(args.serve_collector[1]))
        return 0
    if args.serve_counter:
        serve_counter(int(args.serve_counter[0]), Path(args.serve_counter[1]), args.serve_counter[2])
        return 0
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (apt-get install wrk)")
    syslog_ng = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
    work = Path(tempfile.mkdtemp(prefix="logs-bench-"))
    kids = rb.Children(work)
    try:
        up, raw, sysl, http, dead = (rb.free_port() for _ in range(5))
        kids.start("upstream", [sys.executable, __file__, "--serve-upstream", str(up)])
        if args.syslog_ng:
            (work / "syslog-ng.conf").write_text(SYSLOG_NG.format(raw=raw, sys=sysl, dir=work))
            kids.start(
                "syslog-ng",
                [
                    syslog_ng,
                    "-F",
                    "--no-caps",
                    "-f",
                    str(work / "syslog-ng.conf"),
                    "-R",
                    str(work / "persist"),
                    "-p",
                    str(work / "pid"),
                    "-c",
                    str(work / "ctl"),
                ],
            )
        else:
            for port, name, marker in ((raw, "tcp-count", "\\n"), (sysl, "syslog-count", ">1 ")):
                kids.start(name, [sys.executable, __file__, "--serve-counter", str(port), str(work / name), marker])
        kids.start("collector", [sys.executable, __file__, "--serve-collector", str(http), str(work / "http-count")])
        pids: dict[str, int] = {}
        urls: dict[str, tuple[str, str]] = {}
        for mode in MODES:
            port, admin = rb.free_port(), rb.free_port()
            cfg = work / f"{mode}.yaml"
            cfg.write_text(
                f"listen: {{host: 127.0.0.1, port: {port}}}\nadmin: {{host: 127.0.0.1, port: {admin}}}\n"
                f"upstream: {{url: 'http://127.0.0.1:{up}'}}\nrules: []\nshutdown: {{drain_delay: 0}}\n"
                f"logging: {{level: warning, access_log: {'false' if mode == 'off' else 'true'}, "
                f"sinks: {sinks_for(mode, work, raw, sysl, http, dead)}}}\n"
            )
            pids[mode] = kids.start(f"bastion-{mode}", [sys.executable, "-m", "proxy", "run", "-c", str(cfg)]).pid
            urls[mode] = (f"http://127.0.0.1:{port}/small", f"http://127.0.0.1:{admin}")
        for url, admin in urls.values():
            rb.wait_http(admin + "/readyz")
            rb.wait_http(url)
        results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            k = r % len(MODES)
            for mode in MODES[k:] + MODES[:k]:
                rb.wrk(urls[mode][0], 1.0, args.connections)  # warm-up
                c0, t0 = rb.cpu_seconds(pids[mode]), time.monotonic()
                results[mode].append(rb.wrk(urls[mode][0], args.duration, args.connections))
                rps, p99, bad = results[mode][-1]
                n = rps * (time.monotonic() - t0)
                cpu[mode].append((rb.cpu_seconds(pids[mode]) - c0) / n * 1e6)
                print(
                    f"round {r + 1} {mode:8} {rps:9.0f} req/s  p99 {p99:7.2f} ms  {cpu[mode][-1]:6.1f} µs CPU/req",
                    file=sys.stderr,
                )
        time.sleep(3)  # let the sinks catch up before counting what arrived
        print(
            f"\nwrk, -c{args.connections}, {args.rounds} round(s) × {args.duration:g} s (+1 s warm-up each), "
            f"{os.cpu_count()} CPUs, medians; costs against `stdout`\n"
        )
        base = MODES[1:]
        print_costs(base, results, cpu)
        print()
        arrived = {
            "tcp": _lines(work / "raw.ndjson") if args.syslog_ng else _count(work / "tcp-count"),
            "syslog": _lines(work / "syslog.txt") if args.syslog_ng else _count(work / "syslog-count"),
            "http": int((work / "http-count").read_text() or 0) if (work / "http-count").exists() else 0,
            "file": _lines(work / "file-sink.ndjson"),
        }
        for mode, got in arrived.items():
            print(f"{mode}: the collector holds {got} records")
        if args.records:
            print()
            per_record(args.records, work, raw, sysl, http, dead)
        return 0
    finally:
        kids.stop()


def per_record(n: int, work: Path, raw: int, sysl: int, http: int, dead: int) -> None:
    """The steadier figure: CPU per record of the whole log pipeline (writer thread, redaction,
    serialisation, metrics, every sink thread), in this process, against the same collectors, with
    the records paced like a busy proxy's (~20k/s). Each sink is measured next to stdout (which
    goes to /dev/null here); the difference to stdout alone is the sink's own cost."""
    from proxy.config_logging import Logging
    from proxy.logs import LogOutput, access_record
    from proxy.logship import build_sinks
    from proxy.logship.delivery import QueuedSink
    from proxy.logship.transports import StreamTransport
    from proxy.metrics import Metrics

    def one(mode: str) -> float:
        devnull = open(os.devnull, "wb")  # noqa: SIM115 - closed below
        sinks = [QueuedSink(StreamTransport(devnull))]
        if mode not in ("stdout", "off"):
            spec = sinks_for(mode, work, raw, sysl, http, dead)
            sinks += build_sinks(Logging.model_validate({"sinks": __import__("yaml").safe_load(spec)[1:]}))
        out = LogOutput(sinks=sinks)
        metrics = Metrics()
        out.observer = metrics.observe
        extra = {"trace.id": "0af7651916cd43dd8448eb211c80319c", "span.id": "b7ad6b7169203331",
                 "bastion.rule": "small", "bastion.decision": "allow"}  # fmt: skip
        c0 = time.process_time()
        for i in range(n):
            out.emit(access_record(
                request_id=f"req-{i}", client_ip="127.0.0.1", method="GET", path="/small", status=200,
                bytes_in=0, bytes_out=1011, started=time.monotonic(), upstream_ms=0.8,
                user_agent="wrk/4.2.0 (linux)", extra=dict(extra), query="page=2",
            ))  # fmt: skip
            if i % 1000 == 999:
                time.sleep(0.05)
        out.close(timeout=5.0)
        devnull.close()
        return (time.process_time() - c0) / n * 1e6

    modes = ("stdout", "file", "tcp", "syslog", "http", "tcp-dead")
    rounds: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(3):
        for mode in modes[r:] + modes[:r]:
            rounds[mode].append(one(mode))
    base = statistics.median(rounds["stdout"])
    print(f"CPU per record of the log pipeline, {n} records × 3 rounds, medians (emitting the record included):\n")
    print("| sinks | CPU µs/record | the sink's own µs/record |")
    print("|---|---:|---:|")
    for mode in modes:
        us = statistics.median(rounds[mode])
        own = "—" if mode == "stdout" else f"{us - base:+.2f}"
        print(f"| {'stdout' if mode == 'stdout' else 'stdout + ' + mode} | {us:.2f} | {own} |")


def _count(path: Path) -> int:
    return int(path.read_text() or 0) if path.exists() else 0


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def print_costs(
    modes: tuple[str, ...], results: dict[str, list[tuple[float, float, int]]], cpu: dict[str, list[float]]
) -> None:
    rb.print_table(modes, results, cpu)
    off_rps = statistics.median(x[0] for x in results["off"])
    off_cpu = statistics.median(cpu["off"])
    print(
        f"| off (no access log, for reference) | {off_rps:.0f} | "
        f"{statistics.median(x[1] for x in results['off']):.2f} | | {off_cpu:.1f} | | |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
