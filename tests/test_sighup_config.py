"""SIGHUP re-reads key material; other config changes are reported as needing a restart."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import jwt
import pytest

from proxy.config import load_config
from tests.conftest import EchoUpstream, StartBastion

OLD, NEW = "old-secret-" + "o" * 32, "new-secret-" + "n" * 32


def _token(secret: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "local", "sub": "alice", "exp": now + 60, "iat": now}, secret, algorithm="HS256")


def _write(path: Path, upstream: str, port: int = 0) -> None:
    path.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\nadmin: {{host: 127.0.0.1, port: 0}}\n"
        f'upstream: {{url: "{upstream}"}}\nrules: []\nshutdown: {{drain_delay: 0}}\n'
        f"auth:\n  issuers:\n    - {{issuer: local, algorithms: [HS256], secret_file: {path.parent / 'secret'}}}\n"
    )


async def _get(url: str, token: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def test_sighup_rereads_secret_files_and_reports_the_rest(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg_path = tmp_path / "c.yaml"
    (tmp_path / "secret").write_text(OLD + "\n")
    _write(cfg_path, upstream.url)
    proxy = await start_bastion(load_config(cfg_path))
    old_token = _token(OLD)
    assert await _get(proxy.url + "/x", old_token) == 200

    (tmp_path / "secret").write_text(NEW + "\n")
    _write(cfg_path, upstream.url, port=18123)  # a listener change cannot be applied live
    await proxy.bastion.reload("SIGHUP", cfg_path)

    assert await _get(proxy.url + "/x", old_token) == 401  # cached before, rejected now: the cache was cleared
    assert await _get(proxy.url + "/x", _token(NEW)) == 200
    [warning] = [r for r in caplog.records if r.getMessage() == "config changes need a restart and were not applied"]
    assert warning.sections == ["listen"]  # type: ignore[attr-defined]


async def test_sighup_with_a_broken_config_keeps_everything(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg_path = tmp_path / "c.yaml"
    (tmp_path / "secret").write_text(OLD)
    _write(cfg_path, upstream.url)
    proxy = await start_bastion(load_config(cfg_path))
    cfg_path.write_text("listen: {port: nope}\n")
    await proxy.bastion.reload("SIGHUP", cfg_path)
    assert await _get(proxy.url + "/x", _token(OLD)) == 200
    assert any(r.getMessage() == "config reload failed; keeping the running config" for r in caplog.records)
