"""TLS: an https upstream verified by default (CA bundle), and an optional TLS listener."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_aiohttp import AiohttpServer

from tests.conftest import StartBastion, make_config


def _self_signed(dir_: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dir_ / f"{name}.crt", dir_ / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
async def https_upstream(aiohttp_server: AiohttpServer, tmp_path: Path) -> tuple[str, Path]:
    cert, key = _self_signed(tmp_path, "upstream")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"tls {request.headers.get('X-Forwarded-Proto')}")

    app = web.Application()
    app.router.add_get("/{t:.*}", hello)
    server = await aiohttp_server(app, ssl=ctx)
    return f"https://127.0.0.1:{server.port}", cert


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


async def test_tls_listener(https_upstream: tuple[str, Path], start_bastion: StartBastion, tmp_path: Path) -> None:
    url, ca = https_upstream
    cert, key = _self_signed(tmp_path, "listener")
    cfg = make_config(
        url,
        upstream={"url": url, "ca_file": str(ca)},
        listen={"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(cert), "key_file": str(key)}},
    )
    proxy = await start_bastion(cfg)
    assert proxy.url.startswith("https://")
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x", ssl=client_ctx) as r:
        assert r.status == 200 and await r.text() == "tls https"  # the upstream learns the original scheme
