"""At-least-once delivery of NDJSON lines to one sink, on the sink's own thread.

The log writer thread hands serialised lines to `QueuedSink.offer`, which only appends to a bounded
in-memory queue under a lock: the request path never waits on a collector. The sink's thread
sends them in batches through a `Transport`, and owns everything slow:

- **Reconnect** with jittered exponential backoff (full jitter, as AWS's backoff note and Vector
  do), so a restarted collector is not hit by every replica at once.
- **Spool** (optional): while the collector is away the queue is moved to disk, and on reconnect
  the spool is replayed before newer records, so the order holds.
- **Resend window** for transports without acknowledgements (tcp, syslog): a write that succeeded
  only reached our kernel. Lines stay in a window until a liveness check `confirm_after` seconds
  later finds the connection still open (a collector that stopped would have shown FIN or RST by
  then); when the connection breaks, the window is sent again first. A restart of the collector
  loses nothing and may duplicate; every record carries `event.id` so collectors can dedupe.
- **Drops** happen only when the queue (and spool, if any) is full; they are counted per sink and
  reported, never silent. An HTTP collector's 4xx (other than 408/429) rejects a batch for good:
  it is dropped and counted, since retrying a poisoned batch would stall everything behind it.
- **Shutdown**: `close(deadline)` keeps sending until the queue is empty or the deadline passes;
  what is left then goes to the spool, or is counted as dropped.

Hand-written because the Python shippers (fluent-logger, python-logstash-async, logging's
SocketHandler) are either blocking per record, drop silently, or keep their buffer in SQLite;
none has a resend window for ack-less TCP.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from proxy.logship.spool import Spool


class Rejected(Exception):
    """The collector refused the batch for good (HTTP 4xx): retrying would not help."""


class TooLarge(Rejected):
    """The collector refused the batch for its size (HTTP 413): halves are tried, down to one record."""


class Transport(Protocol):
    name: str
    acknowledged: bool  # True: `send` returning means the collector has the lines (HTTP 2xx)

    def connect(self) -> None: ...
    def send(self, lines: list[bytes]) -> None: ...
    def alive(self) -> bool: ...
    def unacked(self) -> int | None: ...  # bytes written but not yet acknowledged by the peer (TCP)
    def close(self) -> None: ...


@dataclass(slots=True)
class SinkStats:
    queued: int
    spooled: int
    window: int
    sent: int
    dropped: int
    connected: bool
    reconnects: int


@dataclass(slots=True)
class _Written:
    """A batch written to an ack-less transport, kept until the collector is known to have it."""

    at: float
    lines: list[bytes]
    end: int  # the connection's byte count after this batch


class QueuedSink:
    def __init__(
        self,
        transport: Transport,
        *,
        queue: int = 10_000,
        batch: int = 1000,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        spool: Spool | None = None,
        confirm_after: float = 1.0,
        flush_interval: float = 0.0,
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self.capacity = queue
        self.batch = batch
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.spool = spool
        self.confirm_after = confirm_after
        self.flush_interval = flush_interval
        self._queue: deque[bytes] = deque()
        self._lock = threading.Lock()  # the queue and the spool: the writer thread spills too
        self._wake = threading.Condition(self._lock)
        self._window: deque[_Written] = deque()
        self._window_len = 0
        self._written = 0  # bytes written on the current connection
        self._retry: list[bytes] = []  # lines to send again, before anything else (memory only)
        self._connected = False
        self._stopping = False
        self._deadline = float("inf")
        self.sent = 0
        self._dropped_offer = 0  # counted on the writer thread, under the lock
        self._dropped_sink = 0  # counted on the sink thread
        self.reconnects = 0
        self.last_error: str | None = None
        self._last_check = 0.0
        self._thread = threading.Thread(target=self._run, name=f"bastion-sink-{self.name}", daemon=True)
        self._thread.start()

    # -- writer-thread side -------------------------------------------------------------------------

    def offer(self, lines: list[bytes]) -> None:
        with self._lock:
            if not self._thread.is_alive() and not self._stopping:  # pragma: no cover - _run guards itself
                self._dropped_offer += len(lines)
                return
            if len(self._queue) + len(lines) > self.capacity and self.spool is not None:
                # the queue is full (collector slow or away): to disk, oldest first, rather than drop
                self._spool_append(list(self._queue) + lines, on_writer=True)
                self._queue.clear()
                lines = []
            room = self.capacity - len(self._queue)
            if room < len(lines):
                self._dropped_offer += len(lines) - max(room, 0)
                lines = lines[: max(room, 0)]
            self._queue.extend(lines)
            self._wake.notify()

    def stats(self) -> SinkStats:
        spooled = len(self.spool) if self.spool is not None else 0
        dropped = self._dropped_offer + self._dropped_sink + (self.spool.dropped if self.spool is not None else 0)
        return SinkStats(
            len(self._queue) + len(self._retry), spooled, self._window_len, self.sent, dropped,
            self._connected, self.reconnects,
        )  # fmt: skip

    def close(self, deadline: float) -> None:
        """Deliver what is queued until `deadline` (a `time.monotonic()` instant), then spool or count
        the rest."""
        with self._lock:
            self._stopping = True
            self._deadline = deadline
            self._wake.notify()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 2.0)

    # -- the sink's thread --------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.backoff_min
        try:
            while True:
                try:
                    if self._stopping and (time.monotonic() >= self._deadline or self._idle()):
                        break
                    if not self._connected and not self._try_connect():
                        self._spill()
                        self._sleep(random.uniform(0, backoff))  # full jitter
                        backoff = min(self.backoff_max, backoff * 2)
                        continue
                    lines, source = self._next_batch()
                    if not lines:
                        self._check_window()
                        continue
                    if self._send(lines, source):
                        backoff = self.backoff_min  # only a delivery proves the collector is back
                    else:
                        # connected but the write failed (disk full, 429/503, reset): back off too,
                        # or a collector that accepts and fails would be hammered in a tight loop
                        self._spill()
                        self._sleep(random.uniform(0, backoff))
                        backoff = min(self.backoff_max, backoff * 2)
                except Exception as exc:  # pragma: no cover - the thread must outlive any bug
                    self._note(exc)
                    self._disconnect()
                    self._sleep(backoff)
        finally:
            self._finish()

    def _send(self, lines: list[bytes], source: str) -> bool:
        try:
            self.transport.send(lines)
        except TooLarge:
            if len(lines) == 1:
                self._dropped_sink += 1
                self._done(lines, source)
                return True
            half = len(lines) // 2  # the collector caps batch size: try halves, in order
            self._done(lines, source)
            self._retry = lines[:half] + lines[half:] + self._retry
            self.batch = max(1, half)
            return True
        except Rejected as exc:
            self._note(exc)
            self._dropped_sink += len(lines)
            self._done(lines, source)
            return True
        except Exception as exc:  # OSError above all, but a transport bug must not lose the batch
            self._note(exc)
            self._broken(lines, source)
            return False
        self._done(lines, source)
        if self.transport.acknowledged:
            self.sent += len(lines)
        else:
            self._written += sum(len(line) for line in lines)
            self._window.append(_Written(time.monotonic(), lines, self._written))
            self._window_len += len(lines)
            self._check_window()
        return True

    def _note(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]

    def _idle(self) -> bool:
        """Nothing left to send (the resend window gets its last check in `_finish`)."""
        spooled = len(self.spool) if self.spool is not None else 0
        return not self._queue and not self._retry and not (spooled and self._connected)

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            remaining = self._deadline - time.monotonic()
            if remaining > 0:
                self._wake.wait(min(seconds, remaining))

    def _try_connect(self) -> bool:
        try:
            self.transport.connect()
        except Exception as exc:  # OSError; a bad host name raises UnicodeError (a ValueError)
            self._note(exc)
            return False
        self._connected = True
        self._written = 0
        self.reconnects += 1
        self._last_check = time.monotonic()
        return True

    def _next_batch(self) -> tuple[list[bytes], str]:
        """Retries first (the oldest), then the spool, then the queue (the newest)."""
        if self._retry:
            lines, self._retry = self._retry[: self.batch], self._retry[self.batch :]
            return lines, "retry"
        if self.spool is not None:
            with self._lock:
                lines = self.spool.peek(self.batch) if len(self.spool) else []
            if lines:
                return lines, "spool"
        with self._lock:
            if not self._queue:
                if self._stopping:
                    return [], ""
                self._wake.wait(0.2 if self._window_len else 1.0)
            elif self.flush_interval and len(self._queue) < self.batch and not self._stopping:
                self._wake.wait(self.flush_interval)  # let a partial batch fill (HTTP)
            n = min(self.batch, len(self._queue))
            lines = [self._queue.popleft() for _ in range(n)]
        return lines, "queue"

    def _done(self, lines: list[bytes], source: str) -> None:
        if source == "spool" and self.spool is not None:
            with self._lock:
                self.spool.commit(len(lines))

    def _broken(self, lines: list[bytes], source: str) -> None:
        """The connection failed: everything unconfirmed is to be sent again, oldest first. It stays
        in memory (`_retry`), ahead of whatever is still spooled, so a replay keeps its order."""
        self._done(lines, source)
        unconfirmed = [line for w in self._window for line in w.lines]
        self._window.clear()
        self._window_len = 0
        self._retry = unconfirmed + lines + self._retry
        self._disconnect()

    def _disconnect(self) -> None:
        self._connected = False
        try:
            self.transport.close()
        except Exception:  # pragma: no cover
            pass

    def _check_window(self, throttle: bool = True) -> None:
        """Forget lines the collector is known to have: written `confirm_after` ago, on a connection
        that is still open, and acknowledged by the peer's TCP stack (a collector that stopped
        reading leaves them unacknowledged in our send queue, and they stay in the window)."""
        if not self._window or self.transport.acknowledged:
            return
        now = time.monotonic()
        if throttle and now - self._last_check < min(0.2, self.confirm_after or 0.2):
            return
        self._last_check = now
        if not self.transport.alive():
            self._broken([], "")
            return
        unacked = self.transport.unacked()
        acked = self._written - unacked if unacked is not None else self._written
        horizon = now - self.confirm_after
        while self._window and self._window[0].end <= acked and self._window[0].at <= horizon:
            w = self._window.popleft()
            self._window_len -= len(w.lines)
            self.sent += len(w.lines)

    def _spool_append(self, lines: list[bytes], on_writer: bool = False) -> None:
        """Caller holds the lock. A spool that cannot be written (disk full) counts what it lost."""
        assert self.spool is not None
        try:
            self.spool.append(lines)
        except OSError as exc:
            self._note(exc)
            if on_writer:
                self._dropped_offer += len(lines)
            else:
                self._dropped_sink += len(lines)

    def _spill(self) -> None:
        """While the collector is away, the queue goes to disk (retries stay in memory, ahead)."""
        if self.spool is None:
            return
        with self._lock:
            lines = list(self._queue)
            self._queue.clear()
            if lines:
                self._spool_append(lines)

    def _finish(self) -> None:
        """At shutdown: what could not be delivered is spooled, or counted as dropped. Lines written
        to an ack-less collector count as sent only once its TCP stack has acknowledged them."""
        if self._connected and self._window:
            # the same rule as while running (acknowledged, `confirm_after` old, connection open):
            # a collector that refused us after the handshake (TLS 1.3 client certificates) or died
            # during the last writes shows it within that time
            end = min(self._deadline, time.monotonic() + self.confirm_after + 1.0)
            while self._window and self._connected and time.monotonic() < end:
                self._check_window(throttle=False)
                if self._window:
                    time.sleep(0.02)
        unconfirmed = [line for w in self._window for line in w.lines]
        self._window.clear()
        self._window_len = 0
        with self._lock:
            left = unconfirmed + self._retry + list(self._queue)
            self._queue.clear()
            self._retry = []
            if self.spool is not None:
                if left:
                    self._spool_append(left)
                self.spool.close()
            else:
                self._dropped_sink += len(left)
        self._disconnect()
