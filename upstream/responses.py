"""JSON and RFC 9457 problem responses, and the middleware that makes every error one.

Handlers raise `Problem`; aiohttp's own HTTP errors (404 for unknown routes, 405, 413) and any
unexpected exception are turned into `application/problem+json` here too, so a client never sees
an HTML error page or a stack trace, whatever went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger("upstream")

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An error a client is meant to see: status, a short detail, optional extension members."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def problem_response(problem: Problem) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",  # plain HTTP semantics; extension members carry the specifics
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extensions)
    resp = web.Response(status=problem.status, body=orjson.dumps(body), headers=problem.headers)
    resp.content_type = PROBLEM_JSON
    resp.headers["Cache-Control"] = "no-store"
    return resp


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are not errors
        # Keep Allow (405) and similar, drop aiohttp's text body and content type.
        keep = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return problem_response(Problem(exc.status, headers=keep))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(500))
