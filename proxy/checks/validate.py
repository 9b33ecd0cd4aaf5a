"""Body and query validation of the matched rule (`body:` and `query:` in the rule files).

Two checks. `BodyLimit` runs right after the rule match: it applies the route's `body.max_size`
(or the global `limits.max_body`) and refuses an over-long `Content-Length` before any crypto or
body I/O. `Validate` runs last, after authorisation, so only authorised callers make Bastion read
and parse a body: media type allow-list (415), parse under limits (400), JSON Schema for the body
and the query (422 with the failing field paths, never the values). A route without a schema is
never buffered: its body streams untouched.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastjsonschema import JsonSchemaValueException

from proxy.body import Parsed, media_type, parse
from proxy.context import RequestContext
from proxy.decision import Denial, Reason


class BodyLimit:
    name = "body_limit"

    async def __call__(self, ctx: RequestContext) -> None:
        validation = getattr(ctx.rule, "validation", None)
        if validation is not None and validation.max_size is not None:
            ctx.body_limit = validation.max_size
        if ctx.content_length is not None and ctx.content_length > ctx.body_limit:
            raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"content-length {ctx.content_length} > {ctx.body_limit}")


class Validate:
    name = "validate"

    @staticmethod
    def applies(rule: object) -> bool:
        return getattr(rule, "validation", None) is not None

    async def __call__(self, ctx: RequestContext) -> None:
        v = getattr(ctx.rule, "validation", None)
        if v is None:
            return
        if v.query_schema is not None:
            _check(v.query_schema, _query_doc(ctx.query, v.max_params), "query")
        has_body = bool(ctx.content_length or ctx.chunked)
        mt = media_type(ctx.headers.get("Content-Type"))
        if has_body and v.content_types is not None and mt not in v.content_types:
            raise Denial(415, Reason.UNSUPPORTED_MEDIA_TYPE, detail=f"media type {mt[:64]!r} not accepted here")
        if not has_body:
            if v.body_required:
                raise Denial(422, Reason.SCHEMA_INVALID, detail="body required", extra=_errors("body", "required"))
            return
        if v.reads_body:
            data = await ctx.read_body()
            parsed = parse(ctx.headers.get("Content-Type"), data, v.limits)
            ctx.parsed_body = parsed
            _check(v.body_schema, _body_doc(parsed), "body")


def _query_doc(query: str, max_params: int) -> dict[str, Any]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=max_params)
    except ValueError:
        raise Denial(400, Reason.BAD_REQUEST, detail=f"more than {max_params} query parameters") from None
    doc: dict[str, Any] = {}
    for k, val in pairs:
        if k in doc:  # a repeated parameter becomes a list, so a schema can say which may repeat
            doc[k] = [*doc[k], val] if isinstance(doc[k], list) else [doc[k], val]
        else:
            doc[k] = val
    return doc


def _body_doc(parsed: Parsed) -> Any:
    if parsed.kind in ("form", "multipart"):
        return dict(parsed.fields)
    return parsed.value


def _check(validator: Any, doc: Any, where: str) -> None:
    try:
        validator(doc)
    except JsonSchemaValueException as exc:
        field = ".".join([where, *(str(p) for p in exc.path[1:])])
        raise Denial(422, Reason.SCHEMA_INVALID, detail=exc.message[:200], extra=_errors(field, exc.rule)) from None


def _errors(field: str, rule: str | None) -> dict[str, object]:
    return {"errors": [{"field": field, "rule": rule or "invalid"}]}
