"""Sends a request to the upstream over one pooled keep-alive aiohttp client.

Knows method, target, headers and a body stream; nothing of rules, identities or checks. Network
failures become `Denial(502)` (refused, reset, DNS) or `Denial(504)` (timeouts) so that they are
rendered like every other error, without the upstream's address or the exception text.

The headers handed to `send` are already the exact set the upstream must see (server.py built them:
hop-by-hop fields out, forwarded fields in). aiohttp's client would copy them twice more, field by
field in Python (`ClientSession._prepare_headers`, then `ClientRequest.update_headers`), and rebuild
its `skip_auto_headers` multidict, all per request: ~38,000 instructions a request, 6 % of Bastion's
whole pass-through cost (callgrind, benchmarks/RESULTS.md §1). So the session's header merge is the
identity (the session has no default headers to merge), and `_UpstreamRequest` takes the multidict
as it is and never adds aiohttp's default `Accept`/`Accept-Encoding`/`User-Agent`: a transparent
proxy sends what the client sent. Both are private aiohttp hooks (aiohttp is pinned to 3.14.x);
tests/test_proxy.py checks the upstream gets exactly the client's fields, duplicates and order kept.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict
from yarl import URL

from proxy.config import Upstream
from proxy.decision import Denial, Reason

log = logging.getLogger("bastion.forwarder")


# aiohttp's client adds these unless told not to; Bastion never adds a field the client did not send
_NO_AUTO = CIMultiDict((h, None) for h in sorted(("Accept", "Accept-Encoding", "Content-Type", "User-Agent")))


class _UpstreamRequest(aiohttp.ClientRequest):
    """aiohttp's ClientRequest, taking Bastion's header multidict as its own (see the module docstring)."""

    def update_headers(self, headers: Any) -> None:
        if type(headers) is not CIMultiDict:  # not built by Bastion for this request: aiohttp's copy
            super().update_headers(headers)
            return
        if hdrs.HOST not in headers:  # `host_header: rewrite`: the upstream's own, first as RFC 9112 §3.2 asks
            own: CIMultiDict[str] = CIMultiDict(((hdrs.HOST, self.url.host_port_subcomponent or ""),))
            own.extend(headers)
            headers = own
        self.headers = headers

    def update_auto_headers(self, skip_auto_headers: Any) -> None:
        self._skip_auto_headers = _NO_AUTO  # read-only in aiohttp: one shared copy


def _as_given(headers: Any) -> Any:
    """Stands in for `ClientSession._prepare_headers`, whose only work would be merging default headers."""
    return headers


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
            request_class=_UpstreamRequest,
            timeout=aiohttp.ClientTimeout(
                total=cfg.total_timeout, sock_connect=cfg.connect_timeout, sock_read=cfg.read_timeout
            ),
            raise_for_status=False,
        )
        # object.__setattr__: aiohttp's debug mode warns on unknown ClientSession attributes
        object.__setattr__(self._session, "_prepare_headers", _as_given)

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
