"""`python -m upstream` as a real process: it starts, says where it listens, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
SECRET = "cli-test-secret-cli-test-secret-0123"


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DEMO_"))}
    env.update(DEMO_ALICE_PASSWORD="alice-cli-password", DEMO_ADMIN_PASSWORD="admin-cli-password", **extra)
    return env


@dataclass
class Served:
    where: str
    stderr: bytes = b""  # filled in once the process has exited


@asynccontextmanager
async def running(args: list[str], env: dict[str, str]) -> AsyncIterator[Served]:
    """Start the CLI, yield once it prints where it listens, then SIGTERM it and expect exit code 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "upstream", *args,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(15):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "exited before listening"
                if line.startswith("upstream listening on "):
                    break
        served = Served(line.removeprefix("upstream listening on ").strip())
        yield served
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await proc.communicate()
    served.stderr = stderr
    assert proc.returncode == 0, stderr.decode()


async def login(session: aiohttp.ClientSession, base: str) -> int:
    body = {"username": "alice", "password": "alice-cli-password"}
    async with session.post(f"{base}/auth/login", json=body) as resp:
        return resp.status


async def test_cli_serves_on_tcp(tmp_path: Path) -> None:
    args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / "data")]
    async with running(args, demo_env(BASTION_DEMO_SECRET=SECRET)) as served:
        assert served.where.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            assert await login(session, served.where) == 200
    assert b"WARNING" not in served.stderr
    assert {p.name for p in (tmp_path / "data").glob("*.sqlite3")} == {"auth.sqlite3", "tasks.sqlite3"}


async def test_cli_serves_on_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "up.sock"
    args = ["--unix", str(sock), "--data-dir", str(tmp_path / "data")]
    async with running(args, demo_env(BASTION_DEMO_SECRET=SECRET)) as served:
        assert served.where == f"unix:{sock}"
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as session:
            assert await login(session, "http://localhost") == 200


async def test_cli_without_a_secret_warns_and_still_serves(tmp_path: Path) -> None:
    args = ["--port", "0", "--data-dir", str(tmp_path / "data")]
    async with running(args, demo_env()) as served:
        async with aiohttp.ClientSession() as session:
            assert await login(session, served.where) == 200
    assert b"WARNING: BASTION_DEMO_SECRET is not set" in served.stderr


async def test_cli_refuses_a_weak_secret(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "upstream", "--port", "0", "--data-dir", str(tmp_path),
        cwd=REPO, env=demo_env(BASTION_DEMO_SECRET="short"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert b"at least 32 bytes" in stderr
