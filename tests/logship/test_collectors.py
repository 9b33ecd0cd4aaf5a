"""Logs shipped to real collectors arrive, all of them, and a collector outage never slows requests.

The ground truth in each test is a `file` sink next to the network sink: it never fails, so its
`event.id`s are exactly the records the process emitted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from proxy.app import Bastion
from proxy.logs import LogOutput
from tests.conftest import EchoUpstream, make_config
from tests.logship.conftest import HttpCollector, SyslogNg


def _file_records(path: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(path.parent.glob(path.name + "*")):
        out.extend(orjson.loads(line) for line in p.read_bytes().splitlines() if line)
    return out


async def _start(upstream: EchoUpstream, sinks: list[dict[str, Any]], **logging: Any) -> tuple[Bastion, LogOutput]:
    cfg = make_config(upstream.url, logging={"sinks": sinks, **logging})
    output = LogOutput.from_config(cfg.logging)
    bastion = Bastion(cfg, output)
    await bastion.start()
    return bastion, output


async def _stop(bastion: Bastion, output: LogOutput, timeout: float = 10.0) -> None:
    await bastion.shutdown(drain=False)
    await asyncio.to_thread(output.close, timeout)  # the http collector needs this loop meanwhile


async def _requests(url: str, n: int, concurrency: int = 16, pace: float = 0.0) -> list[float]:
    """`n` GETs; returns each one's latency in seconds."""
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def one(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                async with s.get(f"{url}/r/{i}") as r:
                    await r.read()
                    assert r.status == 200
                latencies.append(time.perf_counter() - t0)
                if pace:
                    await asyncio.sleep(pace)

        await asyncio.gather(*(one(i) for i in range(n)))
    return latencies


def _access_ids(records: list[dict[str, Any]]) -> set[str]:
    return {r["event.id"] for r in records if r.get("event.dataset") == "bastion.access"}


async def test_every_record_of_10000_requests_arrives_over_tcp_and_syslog(
    upstream: EchoUpstream, syslog_ng: SyslogNg, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.ndjson"
    bastion, output = await _start(
        upstream,
        [
            {"type": "file", "path": str(truth)},
            {"type": "tcp", "host": "127.0.0.1", "port": syslog_ng.raw_port},
            {"type": "syslog", "host": "127.0.0.1", "port": syslog_ng.syslog_port, "app_name": "bastion-test"},
        ],
    )
    await _requests(bastion.url, 10_000, concurrency=32)
    await _stop(bastion, output)
    emitted = _file_records(truth)
    expected = _access_ids(emitted)
    assert len(expected) == 10_000
    raw = await syslog_ng.wait_for(len(emitted), "raw")
    assert _access_ids(raw) == expected
    assert {r["http.request.id"] for r in raw if r.get("event.dataset") == "bastion.access"} == {
        r["http.request.id"] for r in emitted if r.get("event.dataset") == "bastion.access"
    }
    await syslog_ng.wait_for(len(emitted), "syslog")
    messages = syslog_ng.syslog_lines()
    assert _access_ids([m for *_, m in messages]) == expected
    access = [(pri, app, msgid) for pri, app, msgid, m in messages if m.get("event.dataset") == "bastion.access"]
    assert set(access) == {("134", "bastion-test", "access")}  # local0.info, RFC 5424 APP-NAME and MSGID
    for sink in output.sinks:
        assert sink.stats().dropped == 0


async def _outage(
    upstream: EchoUpstream, collector: SyslogNg, tmp_path: Path, spool: bool, queue: int = 50_000
) -> tuple[set[str], set[str], int, list[float], list[float]]:
    """Requests before, during and after a 3 s collector outage. Returns (emitted ids, received ids,
    dropped, latencies with the collector up, latencies while it was down)."""
    truth = tmp_path / "truth.ndjson"
    delivery: dict[str, Any] = {"backoff_min": "50ms", "backoff_max": "300ms", "queue": queue}
    if spool:
        delivery["spool"] = {"dir": str(tmp_path / "spool"), "max_size": "64MiB"}
    bastion, output = await _start(
        upstream,
        [
            {"type": "file", "path": str(truth)},
            {"type": "tcp", "host": "127.0.0.1", "port": collector.raw_port, "delivery": delivery},
        ],
    )
    up = await _requests(bastion.url, 600, pace=0.002)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(collector.stop)
    t_down = time.monotonic()
    down: list[float] = []
    while time.monotonic() - t_down < 3.0:
        down += await _requests(bastion.url, 200, pace=0.002)
    await asyncio.to_thread(collector.start)
    up += await _requests(bastion.url, 600, pace=0.002)
    await asyncio.sleep(1.5)  # the sink reconnects within its backoff and replays
    await _stop(bastion, output)
    emitted = _access_ids(_file_records(truth))
    tcp = next(s for s in output.sinks if s.name.startswith("tcp"))
    received = _access_ids(await collector.wait_for(10**9, "raw", timeout=3.0))
    return emitted, received, tcp.stats().dropped, up, down


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def test_collector_restart_with_spool_loses_nothing(
    upstream: EchoUpstream, syslog_ng: SyslogNg, tmp_path: Path
) -> None:
    emitted, received, dropped, up, down = await _outage(upstream, syslog_ng, tmp_path, spool=True)
    assert len(emitted) > 1200
    assert emitted <= received, f"{len(emitted - received)} records never arrived"
    assert dropped == 0
    # the request path never waits on a sink: while the collector was away, requests took no longer
    # than with it (a path that waited would take the 10 s send timeout or the reconnect backoff)
    print(f"p99 collector up {_p99(up) * 1000:.2f} ms, down {_p99(down) * 1000:.2f} ms")
    assert _p99(down) < max(0.25, 5 * _p99(up))


async def test_collector_restart_without_spool_counts_what_it_lost(
    upstream: EchoUpstream, syslog_ng: SyslogNg, tmp_path: Path
) -> None:
    # a queue smaller than the outage's records, so some are certainly dropped
    emitted, received, dropped, _, _ = await _outage(upstream, syslog_ng, tmp_path, spool=False, queue=200)
    missing = emitted - received
    assert dropped > 0 and missing, "the outage should have overflowed the 200-record queue"
    # tcp has no acknowledgements: every record that did not arrive is accounted for by the drop counter
    # (the counter may be higher: records dropped from the queue also include process log records)
    assert len(missing) <= dropped


async def test_http_sink_counts_exactly_what_it_dropped(
    upstream: EchoUpstream, http_collector: HttpCollector, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.ndjson"
    bastion, output = await _start(
        upstream,
        [
            {"type": "file", "path": str(truth)},
            {
                "type": "http", "url": http_collector.url, "flush_interval": "50ms", "gzip": True,
                "delivery": {"queue": 300, "batch": 100, "backoff_min": "50ms", "backoff_max": "200ms"},
            },
        ],  # fmt: skip
        access_log=True,
    )
    await _requests(bastion.url, 300)
    await http_collector.stop()
    await _requests(bastion.url, 800, pace=0.001)  # queue of 300: at least 500 records cannot be held
    await http_collector.start()
    await _requests(bastion.url, 300)
    await asyncio.sleep(1.0)
    await _stop(bastion, output)
    every = _file_records(truth)
    http = next(s for s in output.sinks if s.name.startswith("http"))
    received = {r["event.id"] for r in http_collector.records}
    missing = {r["event.id"] for r in every} - received
    assert http.stats().dropped >= 500
    assert len(missing) == http.stats().dropped  # a batch counts as delivered only on a 2xx
    assert received <= {r["event.id"] for r in every}


async def test_http_sink_retries_a_5xx_and_drops_a_4xx_batch_counted(
    upstream: EchoUpstream, http_collector: HttpCollector, tmp_path: Path
) -> None:
    bastion, output = await _start(
        upstream,
        [{"type": "http", "url": http_collector.url, "flush_interval": "20ms",
          "delivery": {"backoff_min": "20ms", "backoff_max": "100ms"}}],
    )  # fmt: skip
    http_collector.status = 503
    await _requests(bastion.url, 20)
    await asyncio.sleep(0.3)
    assert http_collector.records == []
    http_collector.status = 200
    deadline = time.monotonic() + 5
    while len({r["http.request.id"] for r in http_collector.records if "http.request.id" in r}) < 20:
        assert time.monotonic() < deadline, "503-refused batches were not retried"
        await asyncio.sleep(0.05)
    sink = output.sinks[0]
    assert sink.stats().dropped == 0
    http_collector.status = 400  # the collector refuses the records themselves: retrying cannot help
    await _requests(bastion.url, 5)
    deadline = time.monotonic() + 5
    while sink.stats().dropped < 5:
        assert time.monotonic() < deadline, "a 400-refused batch must be dropped and counted"
        await asyncio.sleep(0.05)
    await _stop(bastion, output)


async def test_spool_left_by_a_stopped_process_is_replayed_by_the_next(tmp_path: Path, syslog_ng: SyslogNg) -> None:
    from proxy.config_logging import Logging

    spool = {"dir": str(tmp_path / "spool"), "max_size": "1MiB"}
    cfg = Logging.model_validate(
        {"sinks": [{"type": "tcp", "host": "127.0.0.1", "port": syslog_ng.raw_port,
                    "delivery": {"spool": spool, "backoff_min": "20ms", "backoff_max": "50ms"}}]}
    )  # fmt: skip
    syslog_ng.stop()
    first = LogOutput.from_config(cfg)
    for i in range(100):
        first.emit({"@timestamp": time.time(), "log.level": "info", "event.dataset": "bastion.test", "n": i})
    first.close(timeout=0.5)  # the collector is away: the records go to the spool
    assert first.sinks[0].stats().spooled == 100 and first.sinks[0].stats().dropped == 0
    syslog_ng.start()
    second = LogOutput.from_config(cfg)
    got = await syslog_ng.wait_for(100, "raw", timeout=10)
    second.close()
    assert [r["n"] for r in got] == list(range(100))  # in order
    assert not list((tmp_path / "spool").rglob("*.ndjson"))


async def test_file_sink_rotates_by_size_and_keeps_n_backups(tmp_path: Path) -> None:
    from proxy.config_logging import Logging

    path = tmp_path / "logs" / "bastion.ndjson"
    cfg = Logging.model_validate({"sinks": [{"type": "file", "path": str(path), "max_size": "4KiB", "backups": 2}]})
    out = LogOutput.from_config(cfg)
    for i in range(400):
        out.emit({"@timestamp": time.time(), "log.level": "info", "event.dataset": "bastion.test", "n": i})
    out.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["bastion.ndjson", "bastion.ndjson.1", "bastion.ndjson.2"]
    files = (f"{path}.2", f"{path}.1", str(path))
    kept = [orjson.loads(line)["n"] for p in files for line in Path(p).read_bytes().splitlines()]
    assert kept == list(range(kept[0], 400))  # the newest records, in order, none missing in between
    assert all(Path(f"{path}.{i}").stat().st_size >= 4096 for i in (1, 2))
