"""How lines reach each kind of collector: a rotated file, NDJSON over TCP, RFC 5424 syslog, HTTP.

Each transport is blocking and runs on its sink's own thread (`delivery.QueuedSink`), so a slow or
dead collector costs a parked thread, never the event loop. They raise `OSError` for anything worth
retrying and `Rejected` for a batch the collector refuses for good.
"""

from __future__ import annotations

import fcntl
import gzip
import http.client
import io
import os
import re
import select
import socket
import ssl
import stat
import struct
import sys
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from proxy.config_logging import FileSink, HttpSink, SinkTLS, SyslogSink, TcpSink
from proxy.logship.delivery import Rejected, TooLarge

_TIOCOUTQ: int | None = getattr(__import__("termios"), "TIOCOUTQ", None)
_PIPE_BUF = select.PIPE_BUF  # writes up to this size to a pipe are atomic (POSIX)
_SEND_TIMEOUT = 10.0  # a collector that stops reading for this long is treated as gone


def tls_context(tls: SinkTLS) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    return ctx


class StreamTransport:
    """stdout (or any binary stream). Writes are cut at line boundaries into pieces of at most
    PIPE_BUF bytes, so processes sharing one stdout pipe never interleave inside a line."""

    acknowledged = True

    def __init__(self, stream: IO[bytes] | None = None, name: str = "stdout") -> None:
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.name = name
        # only a pipe (or socket) shared by processes needs writes cut at PIPE_BUF; a file or a
        # terminal gets one write per batch
        try:
            mode = os.fstat(self.stream.fileno()).st_mode
            self.atomic = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            self.atomic = False

    def connect(self) -> None:
        pass

    def send(self, lines: list[bytes]) -> None:
        if not self.atomic:
            self._write(b"".join(lines))
            return
        out = bytearray()
        for line in lines:
            if out and len(out) + len(line) > _PIPE_BUF:
                self._write(out)
                out = bytearray()
            out += line
        if out:
            self._write(out)

    def _write(self, data: bytes | bytearray) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except ValueError:  # closed: nothing sensible left to do, and retrying would never end
            pass

    def alive(self) -> bool:
        return True

    def unacked(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class FileTransport:
    """Appends to `path`; past `max_size` renames `path` → `path.1` → … → `path.<backups>`."""

    acknowledged = True

    def __init__(self, cfg: FileSink, suffix: str = "") -> None:
        self.path = Path(str(cfg.path) + suffix)
        self.max_size = cfg.max_size
        self.backups = cfg.backups
        self.name = f"file:{self.path}"
        self._fd: int | None = None
        self._size = 0

    def connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = os.fstat(self._fd).st_size

    def send(self, lines: list[bytes]) -> None:
        """Rotates inside a batch too, so no file grows past `max_size` by more than one record."""
        start = 0
        size = self._size
        for i, line in enumerate(lines):
            size += len(line)
            if size >= self.max_size:
                self._write(lines[start : i + 1])
                self._rotate()
                start, size = i + 1, 0
        self._write(lines[start:])

    def _write(self, lines: list[bytes]) -> None:
        assert self._fd is not None
        data = memoryview(b"".join(lines))
        while data:
            n = os.write(self._fd, data)
            data = data[n:]
            self._size += n

    def _rotate(self) -> None:
        self.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                older = Path(f"{self.path}.{i}")
                if older.exists():
                    older.replace(f"{self.path}.{i + 1}")
            self.path.replace(f"{self.path}.1")
        self.connect()

    def alive(self) -> bool:
        return True

    def unacked(self) -> int | None:
        return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class TcpTransport:
    """Newline-delimited JSON, one connection, optional TLS."""

    acknowledged = False

    def __init__(self, cfg: TcpSink | SyslogSink) -> None:
        self.host, self.port = cfg.host, cfg.port
        self.connect_timeout = cfg.connect_timeout
        self._tls = tls_context(cfg.tls) if cfg.tls else None
        self._server_name = (cfg.tls.server_name if cfg.tls else None) or cfg.host
        self.name = f"{cfg.type}:{cfg.host}:{cfg.port}"
        self._sock: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
            sock.settimeout(_SEND_TIMEOUT)
        except (OSError, ssl.SSLError):
            sock.close()
            raise
        self._sock = sock

    def frame(self, lines: list[bytes]) -> bytes:
        return b"".join(lines)

    def send(self, lines: list[bytes]) -> None:
        if self._sock is None:
            raise ConnectionError("not connected")
        self._sock.sendall(self.frame(lines))

    def alive(self) -> bool:
        """A collector that closed or reset the connection shows as readable with EOF or an error;
        an open one that sends nothing is not readable. Anything it does send is discarded."""
        sock = self._sock
        if sock is None:
            return False
        try:
            readable, _, errored = select.select([sock], [], [sock], 0)
            if not readable and not errored and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                return True
            sock.setblocking(False)
            try:
                return bool(sock.recv(4096))
            except (BlockingIOError, ssl.SSLWantReadError):
                return True
            finally:
                sock.settimeout(_SEND_TIMEOUT)
        except (OSError, ValueError):
            return False

    def unacked(self) -> int | None:
        """Bytes in our send queue the peer has not acknowledged (Linux TIOCOUTQ; None elsewhere).
        A collector that stopped reading leaves them here: they must not count as delivered."""
        if self._sock is None or _TIOCOUTQ is None:
            return None
        try:
            buf = fcntl.ioctl(self._sock.fileno(), _TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return None
        return int(struct.unpack("i", buf)[0])

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


_LEVEL = re.compile(rb'"log\.level":"(\w+)"')
_DATASET = re.compile(rb'"event\.dataset":"bastion\.(\w+)"')
_SEVERITY = {b"debug": 7, b"info": 6, b"notice": 5, b"warning": 4, b"error": 3, b"critical": 2}
_TS_PREFIX = b'{"@timestamp":"'
_LEVEL_NEXT = b',"log.level":"'
_DATASET_NEXT = b',"event.dataset":"bastion.'


class SyslogTransport(TcpTransport):
    """RFC 5424 over TCP with octet counting (RFC 6587 §3.4.1; RFC 5425 over TLS): the length prefix
    means a message can hold anything, so a record can never split or forge another."""

    def __init__(self, cfg: SyslogSink) -> None:
        super().__init__(cfg)
        self.facility = cfg.facility
        host = socket.gethostname() or "-"
        self._fixed = f" {host[:255]} {cfg.app_name} {os.getpid()} ".encode("ascii", "replace")
        self._heads: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}

    def message(self, line: bytes) -> bytes:
        """One RFC 5424 frame. Level and dataset are read from the line's head (where serialise puts
        `@timestamp`, and the records put `log.level` and `event.dataset`); the header for each
        (level, dataset) pair is built once: this runs per record on the sink's thread."""
        body = line[:-1] if line[-1:] == b"\n" else line
        ts = b"-"
        level = dataset = None
        if body.startswith(_TS_PREFIX):
            end = body.find(b'"', len(_TS_PREFIX))
            if end > 0:
                ts = body[len(_TS_PREFIX) : end]
                pos = end + 1  # the usual shape: `@timestamp`, `log.level`, `event.dataset` first
                if body.startswith(_LEVEL_NEXT, pos):
                    stop = body.find(b'"', pos + len(_LEVEL_NEXT))
                    level = body[pos + len(_LEVEL_NEXT) : stop]
                    if body.startswith(_DATASET_NEXT, stop + 1):
                        start = stop + 1 + len(_DATASET_NEXT)
                        dataset = body[start : body.find(b'"', start)]
        if level is None:
            m = _LEVEL.search(body)
            level = m.group(1) if m else b""
        if dataset is None:
            d = _DATASET.search(body)
            dataset = d.group(1) if d else b"-"
        key = (level, dataset)
        head = self._heads.get(key)
        if head is None:
            pri = self.facility * 8 + _SEVERITY.get(key[0], 6)
            head = self._heads[key] = (b"<%d>1 " % pri, self._fixed + key[1] + b" - ")
        size = len(head[0]) + len(ts) + len(head[1]) + len(body)
        return b"".join((b"%d " % size, head[0], ts, head[1], body))

    def frame(self, lines: list[bytes]) -> bytes:
        """Framing is Python per record on a thread that shares the GIL with the event loop: it lets
        go every 64 records, so the loop never waits long behind it."""
        out = []
        message = self.message
        for i, line in enumerate(lines, 1):
            out.append(message(line))
            if i % 64 == 0:
                time.sleep(0)
        return b"".join(out)


class _HTTPSConnection(http.client.HTTPSConnection):
    """Verifies (and sends as SNI) `server_name` rather than the URL's host, as `tls.server_name`
    promises; `HTTPSConnection` itself always uses the host it connects to."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._ssl_context = context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP only: a sink never goes through a proxy tunnel
        self.sock = self._ssl_context.wrap_socket(self.sock, server_hostname=self._server_name)


class HttpTransport:
    """One keep-alive connection; a batch is delivered only when the collector answers 2xx."""

    acknowledged = True

    def __init__(self, cfg: HttpSink) -> None:
        url = urlsplit(cfg.url)
        self.https = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.https else 80)
        self.target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.gzip = cfg.gzip
        self.timeout = cfg.timeout
        self.extra_headers = dict(cfg.headers)
        self._tls = tls_context(cfg.tls) if cfg.tls else (ssl.create_default_context() if self.https else None)
        self._server_name = (cfg.tls.server_name if cfg.tls else None) or self.host
        self.name = f"http:{self.host}:{self.port}"
        self._conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        if self.https:
            assert self._tls is not None
            conn: http.client.HTTPConnection = _HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._tls, server_name=self._server_name
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionError(str(exc)) from None
        self._conn = conn

    def send(self, lines: list[bytes]) -> None:
        if self._conn is None:
            self.connect()  # the collector closed the last one after its answer
        assert self._conn is not None
        body = b"".join(lines)
        headers = {"Content-Type": "application/x-ndjson", **self.extra_headers}
        if self.gzip:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        try:
            self._conn.request("POST", self.target, body=body, headers=headers)
            resp = self._conn.getresponse()
            resp.read()
        except http.client.HTTPException as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
        if 200 <= resp.status < 300:
            if resp.will_close:
                self.close()
            return
        if resp.status in (408, 429) or resp.status >= 500:
            raise ConnectionError(f"collector answered {resp.status}")
        if resp.status == 413:
            raise TooLarge("collector answered 413")
        raise Rejected(f"collector answered {resp.status}")

    def alive(self) -> bool:
        return True

    def unacked(self) -> int | None:
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
