"""Sends a request to the upstream over one pooled keep-alive aiohttp client.

Knows method, target, headers and a body stream; nothing of rules, identities or checks. Network
failures become `Denial(502)` (refused, reset, DNS) or `Denial(504)` (timeouts) so that they are
rendered like every other error, without the upstream's address or the exception text.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from functools import lru_cache
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.config import Upstream
from proxy.decision import Denial, Reason

log = logging.getLogger("bastion.forwarder")


class Forwarder:
    def __init__(self, cfg: Upstream) -> None:
        self.cfg = cfg
        self.base = "http://localhost" if cfg.unix_path else cfg.url
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        cfg = self.cfg
        ssl_ctx: ssl.SSLContext | bool = True
        if cfg.url.startswith("https://"):
            if not cfg.verify_tls:
                ssl_ctx = False
            elif cfg.ca_file:
                ssl_ctx = ssl.create_default_context(cafile=str(cfg.ca_file))
        common: dict[str, Any] = {
            "limit": cfg.pool_size,
            "limit_per_host": 0,
            "keepalive_timeout": cfg.keepalive_timeout,
        }
        connector: aiohttp.BaseConnector
        if cfg.unix_path:
            connector = aiohttp.UnixConnector(path=cfg.unix_path, **common)
        else:
            connector = aiohttp.TCPConnector(ttl_dns_cache=300, ssl=ssl_ctx, **common)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # bytes pass through as the upstream encoded them
            cookie_jar=aiohttp.DummyCookieJar(),  # SECURITY: never share upstream cookies between clients
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(
                total=cfg.total_timeout, sock_connect=cfg.connect_timeout, sock_read=cfg.read_timeout
            ),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Forwarder.start() was not awaited"
        return self._session

    def url(self, target: str) -> URL:
        return _url(self.base, target)

    async def send(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: Any,
        timeout: tuple[float | None, float | None] | None = None,
    ) -> aiohttp.ClientResponse:
        """The upstream's response, headers read and body not yet; the caller releases it.

        A plain coroutine rather than an async context manager: on the hot path the generator-based
        `asynccontextmanager` costs several microseconds a request.
        """
        kwargs: dict[str, Any] = {}
        if timeout is not None:  # a route's (read, total) over the pool's defaults
            kwargs["timeout"] = self._timeout(timeout)
        try:
            return await self.session.request(
                method,
                self.url(target),
                headers=headers,
                data=body,
                allow_redirects=False,
                **kwargs,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise Denial(504, Reason.UPSTREAM_TIMEOUT, detail=type(exc).__name__) from exc
        except aiohttp.ClientError as exc:
            raise Denial(502, Reason.UPSTREAM_UNAVAILABLE, detail=f"{type(exc).__name__}: {exc}") from exc

    def _timeout(self, route: tuple[float | None, float | None]) -> aiohttp.ClientTimeout:
        """One ClientTimeout per distinct route override, built once (a handful per rule set)."""
        found = self._timeouts.get(route)
        if found is None:
            read, total = route
            cfg = self.cfg
            found = self._timeouts[route] = aiohttp.ClientTimeout(
                total=total if total is not None else cfg.total_timeout,
                sock_connect=cfg.connect_timeout,
                sock_read=read if read is not None else cfg.read_timeout,
            )
        return found

    async def ws_connect(
        self, target: str, headers: CIMultiDict[str], protocols: tuple[str, ...], max_msg_size: int
    ) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self.session.ws_connect(
                self.url(target),
                headers=headers,
                protocols=protocols,
                autoclose=False,
                autoping=True,
                max_msg_size=max_msg_size,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise Denial(502, Reason.UPSTREAM_UNAVAILABLE, detail=f"websocket handshake: {exc.status}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise Denial(504, Reason.UPSTREAM_TIMEOUT, detail=type(exc).__name__) from exc
        except aiohttp.ClientError as exc:
            raise Denial(502, Reason.UPSTREAM_UNAVAILABLE, detail=f"{type(exc).__name__}: {exc}") from exc

    async def reachable(self) -> bool:
        return await upstream_reachable(self.cfg)


@lru_cache(maxsize=4096)  # most traffic repeats a small set of targets; yarl parsing is not free
def _url(base: str, target: str) -> URL:
    return URL(base + target, encoded=True)


async def upstream_reachable(cfg: Upstream, timeout: float = 1.0) -> bool:
    """Readiness probe: can a TCP (or unix) connection be opened right now?"""
    try:
        if cfg.unix_path:
            fut = asyncio.open_unix_connection(cfg.unix_path)
        else:
            url = URL(cfg.url)
            fut = asyncio.open_connection(url.host, url.port)
        _, writer = await asyncio.wait_for(fut, timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True
