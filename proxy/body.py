"""Request bodies, parsed under limits, for the checks that must look inside them.

JSON is parsed with orjson, then walked once to enforce depth, keys per object, array length and
string length (orjson alone stops only at 1024 levels). Forms use `urllib.parse.parse_qsl` with a
field cap; multipart uses `multipart`'s push parser with part-count and part-size caps. A
declared type must match the body: JSON that does not parse is a 400, never "not JSON, let it
through". Nothing here knows aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import multipart
import orjson

from proxy.decision import Denial, Reason


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_depth: int = 32
    max_keys: int = 1000  # per object
    max_array: int = 10_000
    max_string: int = 1024 * 1024
    max_fields: int = 1000  # form fields or multipart parts
    max_part: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Parsed:
    kind: str  # "json" | "form" | "multipart" | "other" | "empty"
    value: Any  # the JSON document, or a list of (name, value) pairs
    fields: tuple[tuple[str, str], ...] = ()  # form/multipart text fields (files are not fields)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(mt: str) -> bool:
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


def parse(content_type: str | None, data: bytes, limits: BodyLimits) -> Parsed:
    mt = media_type(content_type)
    if not data:
        return Parsed("empty", None)
    if is_json(mt):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise Denial(400, Reason.BAD_BODY, detail="body is not valid JSON") from None
        _walk(doc, limits, 0)
        return Parsed("json", doc)
    if mt == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                data.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=limits.max_fields
            )
        except (UnicodeDecodeError, ValueError):
            raise Denial(400, Reason.BAD_BODY, detail="form is not valid (encoding or too many fields)") from None
        return Parsed("form", pairs, tuple(pairs))
    if mt == "multipart/form-data":
        fields = _multipart(content_type or "", data, limits)
        return Parsed("multipart", fields, fields)
    return Parsed("other", None)


def _walk(node: Any, limits: BodyLimits, depth: int) -> None:
    if depth > limits.max_depth:
        raise Denial(400, Reason.BAD_BODY, detail=f"JSON deeper than {limits.max_depth}")
    if isinstance(node, dict):
        if len(node) > limits.max_keys:
            raise Denial(400, Reason.BAD_BODY, detail=f"JSON object with more than {limits.max_keys} keys")
        for key, value in node.items():
            if len(key) > limits.max_string:
                raise Denial(400, Reason.BAD_BODY, detail="JSON key too long")
            _walk(value, limits, depth + 1)
    elif isinstance(node, list):
        if len(node) > limits.max_array:
            raise Denial(400, Reason.BAD_BODY, detail=f"JSON array longer than {limits.max_array}")
        for value in node:
            _walk(value, limits, depth + 1)
    elif isinstance(node, str) and len(node) > limits.max_string:
        raise Denial(400, Reason.BAD_BODY, detail=f"JSON string longer than {limits.max_string}")


def _multipart(content_type: str, data: bytes, limits: BodyLimits) -> tuple[tuple[str, str], ...]:
    _, options = multipart.parse_options_header(content_type)
    boundary = options.get("boundary")
    if not boundary:
        raise Denial(400, Reason.BAD_BODY, detail="multipart without a boundary")
    fields: list[tuple[str, str]] = []
    try:
        with multipart.PushMultipartParser(
            boundary, content_length=len(data), max_segment_count=limits.max_fields,
            max_segment_size=limits.max_part, strict=True,
        ) as parser:
            segment = None
            chunks: list[bytes] = []
            for event in (*parser.parse(data), *parser.parse(b"")):  # an empty chunk marks the end
                if isinstance(event, multipart.MultipartSegment):
                    segment, chunks = event, []
                elif event is None and segment is not None:
                    if segment.filename is None:  # a text field; file contents are not inspected as text
                        fields.append((segment.name, b"".join(chunks).decode("utf-8", errors="replace")))
                    segment = None
                elif event:
                    chunks.append(bytes(event))
            if not parser.closed:
                raise multipart.ParserError("truncated multipart body")
    except multipart.ParserLimitReached:
        raise Denial(413, Reason.BODY_TOO_LARGE, detail="multipart part count or size over its limit") from None
    except multipart.MultipartError:
        raise Denial(400, Reason.BAD_BODY, detail="malformed multipart body") from None
    return tuple(fields)
