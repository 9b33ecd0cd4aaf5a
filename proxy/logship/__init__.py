"""Log shipping: the sinks a `LogOutput` fans records out to, each on its own thread and queue.

`build_sinks` turns the `logging.sinks` config into running sinks. Every sink takes the same
serialised NDJSON lines; only the transport differs (see `transports.py`), and delivery (queue,
batching, backoff, spool, resend window, drop counting) is shared (`delivery.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from proxy.config_logging import FileSink, HttpSink, Logging, StdoutSink, SyslogSink, TcpSink
from proxy.logship.delivery import QueuedSink, SinkStats, Transport
from proxy.logship.spool import Spool
from proxy.logship.transports import FileTransport, HttpTransport, StreamTransport, SyslogTransport, TcpTransport

__all__ = ["QueuedSink", "SinkStats", "build_sinks", "stdout_sink"]


def stdout_sink(stream: IO[bytes] | None = None) -> QueuedSink:
    """stdout (or `stream`, in tests): the default sink."""
    return QueuedSink(StreamTransport(stream), backoff_max=1.0)


def build_sinks(cfg: Logging, worker: str | None = None) -> list[QueuedSink]:
    """`worker` ("w0", "w1", … for workers, "sup" for the supervisor; None for a single process, whose spool
    directory is "main") keeps files and spools per process: two processes appending to one spool or
    rotating one file would corrupt both."""
    sinks: list[QueuedSink] = []
    for i, sink in enumerate(cfg.sinks):
        if isinstance(sink, StdoutSink):
            sinks.append(stdout_sink())
            continue
        transport: Transport
        if isinstance(sink, FileSink):
            transport = FileTransport(sink, suffix=f".{worker}" if worker else "")
        elif isinstance(sink, SyslogSink):
            transport = SyslogTransport(sink)
        elif isinstance(sink, TcpSink):
            transport = TcpTransport(sink)
        elif isinstance(sink, HttpSink):
            transport = HttpTransport(sink)
        else:  # pragma: no cover - the config union has no other member
            raise TypeError(sink)
        d = sink.delivery
        spool = None
        if d.spool is not None:
            directory = Path(d.spool.dir) / f"{i}-{sink.kind}" / (worker or "main")
            spool = Spool(directory, d.spool.max_size)
        sinks.append(
            QueuedSink(
                transport,
                queue=d.queue,
                batch=d.batch,
                backoff_min=d.backoff_min,
                backoff_max=d.backoff_max,
                spool=spool,
                confirm_after=d.confirm_after,
                flush_interval=sink.flush_interval if isinstance(sink, HttpSink) else 0.0,
            )
        )
    return sinks
