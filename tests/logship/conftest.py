"""Real collectors: syslog-ng (Debian's `syslog-ng-core`) for tcp and syslog, an aiohttp server for http.

syslog-ng listens on two loopback ports: raw newline-delimited JSON (`flags(no-parse)`, as Fluent Bit
or Vector would take it) and RFC 5424 with octet counting. Each source writes to its own file with a
template that keeps the message only, so a test reads back exactly the JSON Bastion sent. The test
can stop it (SIGTERM: syslog-ng closes its connections and flushes, as a restarting collector does)
and start it again on the same ports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.pki import Pki


def syslog_ng_binary() -> str:
    found = shutil.which("syslog-ng") or next(
        (p for p in ("/usr/sbin/syslog-ng", "/sbin/syslog-ng") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("syslog-ng is not installed: `apt-get install syslog-ng-core` (.ci/run does it as root)")
    return found


_CONFIG = """@version: 3.35
options {{ threaded(yes); log-msg-size(1048576); keep-hostname(yes); stats_freq(0); }};
source s_raw {{ network(ip("127.0.0.1") port({raw}) transport("tcp") flags(no-parse) log-msg-size(1048576)
                        max-connections(64) log-iw-size(100000)); }};
source s_syslog {{ syslog(ip("127.0.0.1") port({syslog}) transport("tcp") log-msg-size(1048576)
                          max-connections(64) log-iw-size(100000)); }};
destination d_raw {{ file("{dir}/raw.ndjson" template("$MSG\\n") flush-lines(1)); }};
destination d_syslog {{ file("{dir}/syslog.txt" template("$PRI $PROGRAM $MSGID $MSG\\n") flush-lines(1)); }};
log {{ source(s_raw); destination(d_raw); }};
log {{ source(s_syslog); destination(d_syslog); }};
"""


class SyslogNg:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.raw_port = free_port()
        self.syslog_port = free_port()
        self.conf = directory / "syslog-ng.conf"
        self.conf.write_text(_CONFIG.format(raw=self.raw_port, syslog=self.syslog_port, dir=directory))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> SyslogNg:
        argv = [
            syslog_ng_binary(), "-F", "--no-caps", "-f", str(self.conf),
            "-R", str(self.dir / "persist"), "-p", str(self.dir / "pid"), "-c", str(self.dir / "ctl"),
        ]  # fmt: skip
        with open(self.dir / "stderr", "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"syslog-ng exited: {(self.dir / 'stderr').read_text()[-2000:]}")
            if _listening(self.raw_port) and _listening(self.syslog_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError("syslog-ng did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def raw_records(self) -> list[dict[str, Any]]:
        return _json_lines(self.dir / "raw.ndjson")

    def syslog_lines(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(PRI, APP-NAME, MSGID, message as JSON) for each RFC 5424 message received."""
        path = self.dir / "syslog.txt"
        if not path.exists():
            return []
        out = []
        for line in path.read_bytes().splitlines():
            pri, app, msgid, msg = line.split(b" ", 3)
            out.append((pri.decode(), app.decode(), msgid.decode(), orjson.loads(msg)))
        return out

    async def wait_for(self, count: int, kind: str = "raw", timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            recs = self.raw_records() if kind == "raw" else [m for *_, m in self.syslog_lines()]
            if len(recs) >= count or time.monotonic() > deadline:
                return recs
            await asyncio.sleep(0.1)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            out.append(orjson.loads(line))
    return out


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[SyslogNg]:
    d = tmp_path / "collector"
    d.mkdir()
    server = SyslogNg(d).start()
    yield server
    server.stop()


class HttpCollector:
    """An NDJSON-over-HTTP collector (what Vector's `http_server` or Fluent Bit's `http` input are):
    records each batch, and can be told to answer 503 or to go away entirely."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.batches = 0
        self.posts = 0  # every POST, answered or refused
        self.max_batch: int | None = None  # larger batches get 413
        self.status = 200
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _ingest(self, request: web.Request) -> web.Response:
        self.posts += 1
        if self.status != 200:
            return web.Response(status=self.status)
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        if self.max_batch is not None and body.count(b"\n") > self.max_batch:
            return web.Response(status=413)
        assert request.headers["Content-Type"] == "application/x-ndjson"
        self.records.extend(orjson.loads(line) for line in body.splitlines() if line)
        self.batches += 1
        return web.Response(status=204)

    async def start(self) -> HttpCollector:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/ingest", self._ingest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"


@pytest.fixture
async def http_collector() -> AsyncIterator[HttpCollector]:
    c = await HttpCollector().start()
    yield c
    await c.stop()


# -- TLS ------------------------------------------------------------------------------------------------


_TLS_CONFIG = """@version: 3.35
options {{ threaded(yes); log-msg-size(1048576); keep-hostname(yes); stats_freq(0); }};
source s_raw {{ network(ip("127.0.0.1") port({raw}) transport("tls") flags(no-parse) log-msg-size(1048576)
                        max-connections(64) log-iw-size(100000)
                        tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))); }};
source s_syslog {{ syslog(ip("127.0.0.1") port({syslog}) transport("tls") log-msg-size(1048576)
                          max-connections(64) log-iw-size(100000)
                          tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))); }};
source s_mtls {{ network(ip("127.0.0.1") port({mtls}) transport("tls") flags(no-parse) log-msg-size(1048576)
                         max-connections(64) log-iw-size(100000)
                         tls(key-file("{key}") cert-file("{cert}") ca-file("{ca}") peer-verify(required-trusted))); }};
destination d_raw {{ file("{dir}/raw.ndjson" template("$MSG\\n") flush-lines(1)); }};
destination d_syslog {{ file("{dir}/syslog.txt" template("$PRI $PROGRAM $MSGID $MSG\\n") flush-lines(1)); }};
destination d_mtls {{ file("{dir}/mtls.ndjson" template("$MSG\\n") flush-lines(1)); }};
destination d_fields {{ file("{dir}/syslog-fields.tsv" flush-lines(1) frac-digits(3) time-zone("+00:00")
                             template("$PRI\\t$ISODATE\\t$HOST\\t$PROGRAM\\t$PID\\t$MSGID\\t$SDATA\\t$MSG\\n")); }};
log {{ source(s_raw); destination(d_raw); }};
log {{ source(s_syslog); destination(d_syslog); destination(d_fields); }};
log {{ source(s_mtls); destination(d_mtls); }};
"""


class TlsSyslogNg(SyslogNg):
    """`SyslogNg` with TLS on every source: NDJSON (`raw_port`), RFC 5425 syslog (`syslog_port`), both
    accepting any client, and NDJSON that requires a client certificate signed by the CA (`mtls_port`).
    The same files and readers as `SyslogNg`, plus `mtls_records`."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.dir = directory
        self.pki = pki
        self.raw_port = free_port()
        self.syslog_port = free_port()
        self.mtls_port = free_port()
        self.conf = directory / "syslog-ng.conf"
        self.conf.write_text(
            _TLS_CONFIG.format(
                raw=self.raw_port, syslog=self.syslog_port, mtls=self.mtls_port, dir=directory,
                key=pki.key, cert=pki.cert, ca=pki.ca,
            )
        )  # fmt: skip
        self.proc = None

    def start(self, timeout: float = 15.0) -> TlsSyslogNg:
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while not _listening(self.mtls_port):
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("syslog-ng did not start listening")
            time.sleep(0.05)
        return self

    def mtls_records(self) -> list[dict[str, Any]]:
        return _json_lines(self.dir / "mtls.ndjson")

    def syslog_fields(self) -> list[dict[str, Any]]:
        """Each RFC 5424 message received, field by field as syslog-ng parsed it (TIMESTAMP in UTC,
        milliseconds), MSG as JSON."""
        path = self.dir / "syslog-fields.tsv"
        if not path.exists():
            return []
        names = ("pri", "timestamp", "hostname", "app_name", "procid", "msgid", "sd")
        out = []
        for line in path.read_bytes().splitlines():
            *fields, msg = line.split(b"\t", len(names))
            out.append({**dict(zip(names, (f.decode() for f in fields), strict=True)), "msg": orjson.loads(msg)})
        return out


@pytest.fixture
def tls_syslog_ng(tmp_path: Path, pki: Pki) -> Iterator[TlsSyslogNg]:
    d = tmp_path / "tls-collector"
    d.mkdir()
    server = TlsSyslogNg(d, pki).start()
    yield server
    server.stop()


class HttpsCollector(HttpCollector):
    """`HttpCollector` behind TLS with the given server context."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__()
        self.ssl_context = ssl_context

    async def start(self) -> HttpsCollector:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/ingest", self._ingest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.ssl_context)
        await site.start()
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/ingest"


@pytest.fixture
async def https_collector(pki: Pki) -> AsyncIterator[HttpsCollector]:
    c = await HttpsCollector(pki.server_context()).start()
    yield c
    await c.stop()
