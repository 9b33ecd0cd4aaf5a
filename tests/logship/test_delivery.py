"""Delivery under the failures a review found: nothing accepted is lost without being counted.

Real collectors where the behaviour depends on one (a stalled TCP peer, an HTTP collector answering
429 or 413); a scripted transport where only the order of events matters (a replay that breaks).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from proxy.config_logging import Logging
from proxy.logs import LogOutput
from proxy.logship.delivery import QueuedSink
from proxy.logship.spool import Spool
from tests.conftest import free_port
from tests.logship.conftest import HttpCollector


def record(i: int, **extra: Any) -> dict[str, Any]:
    return {"@timestamp": time.time(), "log.level": "info", "event.dataset": "bastion.test", "n": i, **extra}


def output(*sinks: dict[str, Any], **logging: Any) -> LogOutput:
    return LogOutput.from_config(Logging.model_validate({"sinks": list(sinks), **logging}))


FAST = {"backoff_min": "20ms", "backoff_max": "100ms"}


def test_a_sink_whose_connect_raises_no_oserror_keeps_running_and_counts() -> None:
    # a DNS label over 63 characters makes socket.create_connection raise UnicodeError (a ValueError)
    out = output({"type": "tcp", "host": "a" * 64 + ".example", "port": 9, "delivery": FAST})
    for i in range(50):
        out.emit(record(i))
    time.sleep(0.3)
    sink = out.sinks[0]
    assert sink._thread.is_alive() and "UnicodeError" in (sink.last_error or "")
    out.close(timeout=0.3)
    assert sink.stats().dropped == 50 and sink.stats().sent == 0


def test_a_spool_that_cannot_be_written_counts_what_it_lost(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    out = output({"type": "tcp", "host": "127.0.0.1", "port": free_port(),
                  "delivery": {**FAST, "spool": {"dir": str(spool), "max_size": "1MiB"}}})  # fmt: skip
    sink = out.sinks[0]
    assert sink.spool is not None
    shutil.rmtree(spool)  # the spool's directory becomes a file: every write fails (ENOTDIR)
    spool.write_text("not a directory")
    for i in range(30):
        out.emit(record(i))
    time.sleep(0.3)
    assert sink._thread.is_alive()
    out.close(timeout=0.3)
    assert sink.stats().dropped == 30


def test_one_unserialisable_record_does_not_take_its_batch_with_it(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    out = output({"type": "file", "path": str(path)})
    out.emit(record(0))
    out.emit(record(1, by_status={404: 3}))  # non-string keys: orjson refuses the record as is
    out.emit(record(2, huge=2**70))
    out.emit(record(3))
    out.close()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [r.get("n") for r in lines] == [0, None, None, 3]
    assert out.malformed == 2 and all(r["message"].startswith("log record could not") for r in lines[1:3])
    assert len({r["event.id"] for r in lines}) == 4


def test_a_record_emitted_after_close_is_counted() -> None:
    out = output({"type": "stdout"})
    out.close()
    out.emit(record(0))
    assert out.overflow == 1 and out.dropped() == 1


async def test_a_collector_that_stops_reading_gets_no_credit_for_unacknowledged_bytes() -> None:
    """The peer accepts, never reads (its window closes), then resets the connection. Records still in
    our send queue were never acknowledged: they stay in the resend window and reach the collector
    that answers next. Only what the dead peer's kernel had acknowledged (its receive buffer) is lost:
    that is as far as TCP without application acknowledgements can see."""
    port = free_port()
    received: list[bytes] = []
    ready = threading.Event()

    def collector() -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
        srv.bind(("127.0.0.1", port))
        srv.listen()
        ready.set()
        stalled, _ = srv.accept()
        time.sleep(2.5)  # never reads
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stalled.close()  # RST: whatever its kernel buffered is gone
        conn, _ = srv.accept()
        conn.settimeout(3.0)
        try:
            while chunk := conn.recv(1 << 16):
                received.append(chunk)
        except TimeoutError:
            pass
        conn.close()
        srv.close()

    t = threading.Thread(target=collector, daemon=True)
    t.start()
    ready.wait(5)
    out = output({"type": "tcp", "host": "127.0.0.1", "port": port,
                  "delivery": {**FAST, "confirm_after": "200ms", "queue": 50_000}})  # fmt: skip
    payload = "x" * 200
    for i in range(20_000):  # ~4.5 MB: far more than the stalled peer's buffers hold
        out.emit(record(i, pad=payload))
    await asyncio.sleep(1.5)
    sink = out.sinks[0]
    stalled = sink.stats()
    assert stalled.window + stalled.queued > 15_000, stalled  # not confirmed, not forgotten
    await asyncio.to_thread(t.join, 12)
    out.close(timeout=2)
    got = {orjson.loads(line)["n"] for line in b"".join(received).splitlines() if line}
    missing = set(range(20_000)) - got
    assert len(missing) < 100, f"{len(missing)} records lost (the peer's 4 KB buffer holds ~15)"
    assert sink.stats().dropped == 0


async def test_429_is_retried_with_backoff_not_in_a_tight_loop(http_collector: HttpCollector) -> None:
    out = output({"type": "http", "url": http_collector.url, "flush_interval": "10ms",
                  "delivery": {"backoff_min": "20ms", "backoff_max": "200ms"}})  # fmt: skip
    http_collector.status = 429
    for i in range(10):
        out.emit(record(i))
    await asyncio.sleep(1.5)
    refused = http_collector.posts
    http_collector.status = 200
    deadline = time.monotonic() + 5
    while len(http_collector.records) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(out.close, 2)
    assert 2 <= refused <= 40, refused  # ~10 with jittered backoff; a tight loop made thousands
    assert sorted(r["n"] for r in http_collector.records) == list(range(10))


async def test_413_splits_the_batch_until_it_fits(http_collector: HttpCollector) -> None:
    http_collector.max_batch = 7
    out = output({"type": "http", "url": http_collector.url, "flush_interval": "50ms",
                  "delivery": {**FAST, "batch": 100}})  # fmt: skip
    for i in range(50):
        out.emit(record(i))
    deadline = time.monotonic() + 5
    while len(http_collector.records) < 50 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(out.close, 2)
    assert [r["n"] for r in http_collector.records] == list(range(50))
    assert out.sinks[0].stats().dropped == 0


class Scripted:
    """A transport that fails exactly when told: the order of what arrives is what is under test."""

    name = "scripted"
    acknowledged = True

    def __init__(self, fail_on: set[int]) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self.got: list[int] = []

    def connect(self) -> None:
        pass

    def send(self, lines: list[bytes]) -> None:
        self.calls += 1
        if self.calls in self.fail_on:
            raise ConnectionResetError("scripted failure")
        self.got += [orjson.loads(line)["n"] for line in lines]

    def alive(self) -> bool:
        return True

    def unacked(self) -> None:
        return None

    def close(self) -> None:
        pass


def test_a_replay_that_breaks_resumes_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_size=1 << 20, segment_size=256)
    spool.append([orjson.dumps({"n": i}) + b"\n" for i in range(100)])
    transport = Scripted(fail_on={3, 4, 7})
    sink = QueuedSink(transport, batch=10, spool=spool, backoff_min=0.01, backoff_max=0.02)  # type: ignore[arg-type]
    sink.offer([orjson.dumps({"n": i}) + b"\n" for i in range(100, 120)])
    deadline = time.monotonic() + 5
    while len(set(transport.got)) < 120 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close(time.monotonic() + 1)
    assert transport.got == list(range(120))  # acknowledged transport: failed batches re-sent, in order
    assert sink.stats().dropped == 0 and len(spool) == 0
