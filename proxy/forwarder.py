"""Sends a request to the upstream over one pooled keep-alive aiohttp client.

Knows method, target, headers and a body stream; nothing of rules, identities or checks. Network
failures become `Denial(502)` (refused, reset, DNS) or `Denial(504)` (timeouts) so that they are
rendered like every other error, without the upstream's address or the exception text.

The headers handed to `send` are already the exact set the upstream must see (server.py built them:
hop-by-hop fields out, forwarded fields in). aiohttp's client would copy them twice more, field by
field in Python (`ClientSession._prepare_headers`, then `ClientRequest.update_headers`), and rebuild
its `skip_auto_headers` multidict, all per request: ~38,000 instructions a request, 6 % of Bastion's
whole pass-through cost (callgrind, benchmarks/instructions.py). So `_UpstreamRequest` takes the
multidict as it is and never adds aiohttp's default `Accept`/`Accept-Encoding`/`User-Agent`: a
transparent proxy sends what the client sent. tests/test_proxy.py checks the upstream gets exactly
the client's fields, duplicates and order kept. These are private aiohttp hooks: aiohttp is pinned
to 3.14.x, and tests/test_proxy.py and tests/test_forwarder.py run them against real sockets.

`_exchange` does what `ClientSession._request` does for one request, minus what a reverse proxy
never uses: redirects, cookies, auth, proxies, client middlewares, trace configs, netrc, the
request wrapper object. That orchestration was 5 % of Bastion's instructions a request (callgrind:
~33,000 of ~620,000). What it keeps is aiohttp's own behaviour, step for step: the total-timeout
handle, `connector.connect`, the response parser's parameters, `send` and `start`, closing the
connection on any failure, one retry on a fresh connection when a pooled one turns out closed for
an idempotent request without a streamed body (aiohttp's rule), OSError mapped to ClientOSError,
the payload closed once the answer has started. Connection pooling, TLS, the HTTP parser and body
streaming stay aiohttp's. tests/test_forwarder.py covers the kept behaviours.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.helpers import TimeoutHandle
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


# aiohttp's retry rule (client.py, IDEMPOTENT_METHODS): sending these twice is harmless
_RETRY_ON_STALE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_NO_PAYLOAD = frozenset({"HEAD"})  # aiohttp's EMPTY_BODY_METHODS for responses: no body to read


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
        self._default_timeout = self._session.timeout

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Forwarder.start() was not awaited"
        return self._session

    def url(self, target: str) -> URL:
        # SECURITY: only short targets are cached, so long ones cannot pin memory (4096 × 8 KiB)
        return _url(self.base, target) if len(target) <= _URL_CACHE_KEY_MAX else URL(self.base + target, encoded=True)

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
        # a route's (read, total) over the pool's defaults
        limits = self._default_timeout if timeout is None else self._timeout(timeout)
        try:
            return await self._exchange(method, self.url(target), headers, body, limits)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise Denial(504, Reason.UPSTREAM_TIMEOUT, detail=type(exc).__name__) from exc
        except aiohttp.ClientError as exc:
            raise Denial(502, Reason.UPSTREAM_UNAVAILABLE, detail=f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(
        self, method: str, url: URL, headers: CIMultiDict[str], body: Any, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """One request on the pool, as `ClientSession._request` sends it (see the module docstring)."""
        session = self.session
        connector = session.connector
        assert connector is not None
        loop = asyncio.get_running_loop()
        retry = method in _RETRY_ON_STALE and (body is None or isinstance(body, bytes))
        tm = TimeoutHandle(loop, timeout.total, ceil_threshold=timeout.ceil_threshold)
        handle = tm.start()
        timer = tm.timer()
        resp: aiohttp.ClientResponse | None = None
        try:
            with timer:
                while True:
                    req = _UpstreamRequest(
                        method, url, headers=headers, data=body, loop=loop, timer=timer, session=session
                    )
                    try:  # errors here are never retried
                        conn = await connector.connect(req, traces=[], timeout=timeout)
                    except TimeoutError as exc:  # named as aiohttp names it: a connect, not a total timeout
                        raise aiohttp.ConnectionTimeoutError(f"connection timeout to {url.host}") from exc
                    assert conn.protocol is not None
                    conn.protocol.set_response_params(
                        timer=timer,
                        skip_payload=method in _NO_PAYLOAD,
                        read_until_eof=True,  # an answer without length or chunking ends at close
                        auto_decompress=False,  # bytes pass through as the upstream encoded them
                        read_timeout=timeout.sock_read,
                        timeout_ceil_threshold=connector._timeout_ceil_threshold,
                    )
                    try:
                        resp = await req.send(conn)
                        try:
                            await resp.start(conn)
                        except BaseException:
                            resp.close()
                            raise
                    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                        conn.close()
                        if not retry:  # a pooled connection the upstream had closed: once more, fresh
                            raise
                        retry = False
                        await req.close()
                        headers = req.headers
                        continue
                    except BaseException:
                        conn.close()
                        raise
                    break
            if req._body is not None:
                await req._body.close()
            if handle is not None:  # the total timeout runs until the body is read or released
                if resp.connection is not None:
                    resp.connection.add_callback(handle.cancel)
                else:
                    handle.cancel()
            return resp
        except BaseException as exc:
            tm.close()
            if handle is not None:
                handle.cancel()
            if resp is not None:  # failed after the answer started: its connection goes, not back to the pool
                resp.close()
            if isinstance(exc, OSError) and not isinstance(exc, (aiohttp.ClientError, TimeoutError)):
                raise aiohttp.ClientOSError(*exc.args) from exc
            raise

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


_URL_CACHE_KEY_MAX = 256


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
