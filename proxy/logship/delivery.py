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


class Transport(Protocol):
    name: str
    acknowledged: bool  # True: `send` returning means the collector has the lines (HTTP 2xx)

    def connect(self) -> None: ...
    def send(self, lines: list[bytes]) -> None: ...
    def alive(self) -> bool: ...
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
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._window: deque[tuple[float, list[bytes]]] = deque()
        self._window_len = 0
        self._retry: list[bytes] = []  # lines to send again, before anything else
        self._connected = False
        self._stopping = False
        self._deadline = float("inf")
        self.sent = 0
        self.dropped = 0
        self.reconnects = 0
        self._last_check = 0.0
        self._thread = threading.Thread(target=self._run, name=f"bastion-sink-{self.name}", daemon=True)
        self._thread.start()

    # -- writer-thread side -------------------------------------------------------------------------

    def offer(self, lines: list[bytes]) -> None:
        with self._lock:
            room = self.capacity - len(self._queue)
            if room < len(lines):
                self.dropped += len(lines) - max(room, 0)
                lines = lines[: max(room, 0)]
            self._queue.extend(lines)
            self._wake.notify()

    def stats(self) -> SinkStats:
        spooled = len(self.spool) if self.spool is not None else 0
        dropped = self.dropped + (self.spool.dropped if self.spool is not None else 0)
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
                if self._stopping and (time.monotonic() >= self._deadline or self._idle()):
                    break
                if not self._connected:
                    if self._try_connect():
                        backoff = self.backoff_min
                    else:
                        if self._stopping:
                            break  # no collector at shutdown: spool or count what is left
                        self._spill()
                        self._sleep(random.uniform(0, backoff))  # full jitter
                        backoff = min(self.backoff_max, backoff * 2)
                        continue
                lines, source = self._next_batch()
                if not lines:
                    self._check_window()
                    continue
                try:
                    self.transport.send(lines)
                except Rejected:
                    self.dropped += len(lines)
                    self._done(lines, source)
                    continue
                except OSError:
                    self._broken(lines, source)
                    continue
                self._done(lines, source)
                if self.transport.acknowledged:
                    self.sent += len(lines)
                else:
                    self._window.append((time.monotonic(), lines))
                    self._window_len += len(lines)
                    self._check_window()
        finally:
            self._finish()

    def _idle(self) -> bool:
        """Nothing left to send (the resend window gets its last liveness check in `_finish`)."""
        spooled = len(self.spool) if self.spool is not None else 0
        return not self._queue and not self._retry and not (spooled and self._connected)

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            if not self._stopping:
                self._wake.wait(seconds)

    def _try_connect(self) -> bool:
        try:
            self.transport.connect()
        except OSError:
            return False
        self._connected = True
        self.reconnects += 1
        self._last_check = time.monotonic()
        return True

    def _next_batch(self) -> tuple[list[bytes], str]:
        """Retries first, then the spool (older), then the queue (newer)."""
        if self._retry:
            lines, self._retry = self._retry[: self.batch], self._retry[self.batch :]
            return lines, "retry"
        if self.spool is not None and len(self.spool):
            if len(self._queue) > self.capacity // 2:
                self._spill()  # keep the queue from overflowing while the backlog replays
            lines = self.spool.peek(self.batch)
            if lines:
                return lines, "spool"
        with self._lock:
            if not self._queue:
                if self._stopping:
                    return [], ""
                wait = 0.25 if self._window_len else 1.0
                self._wake.wait(wait)
            elif self.flush_interval and len(self._queue) < self.batch and not self._stopping:
                self._wake.wait(self.flush_interval)  # let a partial batch fill (HTTP)
            n = min(self.batch, len(self._queue))
            lines = [self._queue.popleft() for _ in range(n)]
        return lines, "queue"

    def _done(self, lines: list[bytes], source: str) -> None:
        if source == "spool" and self.spool is not None:
            self.spool.commit(len(lines))

    def _broken(self, lines: list[bytes], source: str) -> None:
        """The connection failed: everything unconfirmed is to be sent again, oldest first."""
        self._done(lines, source)  # from the spool's point of view they are now in `_retry`
        unconfirmed = [line for _, batch in self._window for line in batch]
        self._window.clear()
        self._window_len = 0
        self._retry = unconfirmed + lines + self._retry
        self._disconnect()

    def _disconnect(self) -> None:
        self._connected = False
        try:
            self.transport.close()
        except OSError:
            pass

    def _check_window(self) -> None:
        """Forget lines written long enough ago on a connection that is still open."""
        if not self._window or self.transport.acknowledged:
            return
        now = time.monotonic()
        if now - self._last_check < min(0.2, self.confirm_after or 0.2):
            return
        self._last_check = now
        if not self.transport.alive():
            self._broken([], "")
            return
        horizon = now - self.confirm_after
        while self._window and self._window[0][0] <= horizon:
            _, batch = self._window.popleft()
            self._window_len -= len(batch)
            self.sent += len(batch)

    def _spill(self) -> None:
        """While the collector is away, the queue (and lines waiting for a resend) go to disk."""
        if self.spool is None:
            return
        with self._lock:
            lines = list(self._queue)
            self._queue.clear()
        if self._retry:
            lines = self._retry + lines
            self._retry = []
        self.spool.append(lines)

    def _finish(self) -> None:
        """At shutdown: what could not be delivered is spooled, or counted as dropped."""
        if self._connected and self._window and not self.transport.acknowledged:
            # a last liveness check: a collector that died during the final writes shows it now
            time.sleep(min(0.05, self.confirm_after))
            if not self.transport.alive():
                self._broken([], "")
        if self._connected:
            self.sent += self._window_len  # written, no sign of trouble: nothing better to know
            self._window.clear()
            self._window_len = 0
        with self._lock:
            left = self._retry + list(self._queue)
            self._queue.clear()
            self._retry = []
        if self.spool is not None:
            self.spool.append(left)
            self.spool.close()
        else:
            self.dropped += len(left)
        self._disconnect()
