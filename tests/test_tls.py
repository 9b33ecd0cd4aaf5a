"""TLS: an https upstream verified by default (CA bundle), and an optional TLS listener."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import StartBastion, make_config
from tests.pki import Pki


@pytest.fixture
async def https_upstream(aiohttp_server: AiohttpServer, pki: Pki) -> tuple[str, Path]:
    ctx = pki.server_context()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"tls {request.headers.get('X-Forwarded-Proto')}")

    app = web.Application()
    app.router.add_get("/{t:.*}", hello)
    server = await aiohttp_server(app, ssl=ctx)
    return f"https://127.0.0.1:{server.port}", pki.ca


async def test_https_upstream_with_ca_bundle(https_upstream: tuple[str, Path], start_bastion: StartBastion) -> None:
    url, ca = https_upstream
    proxy = await start_bastion(make_config(url, upstream={"url": url, "ca_file": str(ca)}))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x") as r:
        assert r.status == 200 and await r.text() == "tls http"


async def test_https_upstream_is_verified_by_default(
    https_upstream: tuple[str, Path], start_bastion: StartBastion
) -> None:
    url, _ = https_upstream
    proxy = await start_bastion(make_config(url, upstream={"url": url}))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x") as r:
        assert r.status == 502  # an untrusted certificate is a failed upstream, not a silent pass


async def test_tls_listener(https_upstream: tuple[str, Path], start_bastion: StartBastion, pki: Pki) -> None:
    url, ca = https_upstream
    cfg = make_config(
        url,
        upstream={"url": url, "ca_file": str(ca)},
        listen={"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)}},
    )
    proxy = await start_bastion(cfg)
    assert proxy.url.startswith("https://")
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x", ssl=client_ctx) as r:
        assert r.status == 200 and await r.text() == "tls https"  # the upstream learns the original scheme
