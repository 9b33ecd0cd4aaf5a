"""Turn a request into the (source, name, value) triples the detectors inspect.

Hand-written because the job is specific to a sidecar that knows each value's place: query arguments,
path segments, cookies and user-text headers come as strings; a JSON body is walked recursively with its
**keys** emitted too (`{"$where": ...}` is the attack, not the value) - except keys that are plain ASCII
identifiers (`user_id`), which cannot carry an injection and are most of a body; names are dotted so rules can
exclude one field (`body.items[3].title`, `query.q`, `cookie.session`, `header.user-agent`, `path[2]`).

Encoding: query, path, form and cookie values are percent-decoded once (as every framework does), and
when the decoded value still holds a `%XX` escape, the once-more-decoded form is emitted as a second
field of the same name, to catch double encoding (`%252e%252e%252f`) aimed at an upstream that
decodes twice. JSON strings are not percent-decoded: JSON already carries text.

Limits are enforced, not skipped: past `max_fields` or `max_depth` we raise `FieldLimitError`, because
silently ignoring the rest of a body would be a bypass. The caller turns it into a 400.

>>> [(f.name, f.value, f.is_key) for f in json_fields({"user": {"$ne": "x"}, "tags": ["a"]})]
[('body.user.$ne', '$ne', True), ('body.user.$ne', 'x', False), ('body.tags[0]', 'a', False)]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, unquote

Source = Literal["query", "path", "body", "cookie", "header"]
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|%u[0-9A-Fa-f]{4}")
_PERCENT_U = re.compile(r"%[uU]([0-9A-Fa-f]{4})")


class Field(NamedTuple):
    """One inspected string. A NamedTuple, not a frozen dataclass: a 2 KB body has ~150 of them and a
    frozen dataclass's `__init__` costs three times as much."""

    source: Source
    name: str
    value: str
    is_key: bool = False


@dataclass(frozen=True, slots=True)
class FieldLimits:
    max_fields: int = 2000
    max_depth: int = 32
    max_nodes: int = 100_000  # JSON nodes walked, strings or not (a list of a million numbers)


class FieldLimitError(ValueError):
    """The request has more fields, or deeper JSON, than the engine is willing to inspect."""


def _decoded_again(value: str) -> str | None:
    if "%" not in value or not _ESCAPE.search(value):
        return None
    again = unquote(value, errors="surrogateescape")
    if "%u" in again or "%U" in again:  # IIS's `%uff1c` (a full-width `<`, which NFKC then makes `<`)
        again = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), again)
    return again if again != value else None


def _pair(source: Source, name: str, value: str, is_key: bool = False) -> Iterator[Field]:
    yield Field(source, name, value, is_key)
    again = _decoded_again(value)
    if again is not None:
        yield Field(source, name, again, is_key)


def query_fields(raw_query: str, limits: FieldLimits = FieldLimits()) -> list[Field]:
    """`a=1&user[$ne]=x` -> fields for each key (is_key) and value, decoded once (and twice if needed)."""
    if not raw_query:
        return []
    try:
        # surrogateescape keeps invalid UTF-8 (`%c0%ae`, an overlong '.') visible to the detectors
        pairs = parse_qsl(raw_query, keep_blank_values=True, max_num_fields=limits.max_fields,
                          errors="surrogateescape")
    except ValueError as exc:  # max_num_fields exceeded
        raise FieldLimitError(str(exc)) from None
    out: list[Field] = []
    for key, value in pairs:
        name = f"query.{key}"
        out.extend(_pair("query", name, key, True))
        out.extend(_pair("query", name, value))
    return out


def path_fields(path: str) -> list[Field]:
    """One field per non-empty segment of the canonical path, named `path[i]` (0-based)."""
    out: list[Field] = []
    for i, segment in enumerate(s for s in path.split("/") if s):
        out.extend(_pair("path", f"path[{i}]", unquote(segment, errors="surrogateescape")))
    return out


def pair_fields(source: Source, pairs: Iterable[tuple[str, str]], limits: FieldLimits = FieldLimits()) -> list[Field]:
    """Form fields, cookies or headers as already-parsed pairs. Header names are lower-cased."""
    out: list[Field] = []
    prefix = "body" if source == "body" else source
    for key, value in pairs:
        name = f"{prefix}.{key.lower() if source == 'header' else key}"
        if source == "header":
            out.append(Field(source, name, value))  # headers are not percent-decoded by anyone
        else:
            out.extend(_pair(source, name, key, True))
            out.extend(_pair(source, name, value))
        if len(out) > limits.max_fields:
            raise FieldLimitError(f"more than {limits.max_fields} fields")
    return out


def json_fields(doc: Any, limits: FieldLimits = FieldLimits(), prefix: str = "body") -> list[Field]:
    """Every string value and every object key of a parsed JSON document, depth-first, iteratively.

    This loop runs once per JSON node of every inspected body (~130 a 2 KB body), so it is written for
    CPython: `type(x) is str` before the `isinstance` fallback (subclasses still count), and fields built
    with `tuple.__new__`, which skips the Python-level `__new__` a NamedTuple call goes through."""
    out: list[Field] = []
    append = out.append
    new = tuple.__new__
    max_fields, max_nodes, max_depth = limits.max_fields, limits.max_nodes, limits.max_depth
    stack: list[tuple[str, Any, int]] = [(prefix, doc, 0)]
    pop = stack.pop
    visited = 0
    while stack:
        name, node, depth = pop()
        kind = type(node)
        is_dict = kind is dict or (kind is not list and isinstance(node, dict))
        visited += len(node) if is_dict or kind is list or isinstance(node, list) else 1
        if visited > max_nodes or len(out) > max_fields:
            raise FieldLimitError(f"more than {max_fields} fields or {max_nodes} JSON nodes")
        if depth > max_depth:
            raise FieldLimitError(f"JSON deeper than {max_depth}")
        if is_dict:
            # keys are emitted when their object is visited, values when popped: order is depth-first
            children = []
            for key, value in node.items():
                child = f"{name}.{key}"
                if not (key.isidentifier() and key.isascii()):  # `user_id` cannot carry an injection
                    append(new(Field, ("body", child, key, True)))
                kind = type(value)
                if kind is str:
                    append(new(Field, ("body", child, value, False)))
                elif kind is dict or kind is list:
                    children.append((child, value, depth + 1))
                elif isinstance(value, str):
                    append(new(Field, ("body", child, value, False)))
                elif isinstance(value, (dict, list)):
                    children.append((child, value, depth + 1))
            stack.extend(children[::-1])
        elif isinstance(node, list):
            children = []
            for i, value in enumerate(node):
                kind = type(value)
                if kind is str or (kind is not dict and kind is not list and isinstance(value, str)):
                    append(new(Field, ("body", f"{name}[{i}]", value, False)))
                elif kind is dict or kind is list or isinstance(value, (dict, list)):
                    children.append((f"{name}[{i}]", value, depth + 1))
            stack.extend(children[::-1])
        elif isinstance(node, str):
            append(Field("body", name, node))
    if len(out) > max_fields:
        raise FieldLimitError(f"more than {max_fields} fields")
    return out


def cookie_pairs(header: str) -> list[tuple[str, str]]:
    """`a=1; b="x y"` -> [("a", "1"), ("b", "x y")]: lenient on purpose (http.cookies.SimpleCookie drops
    the whole header on one malformed pair, which would let an attacker hide a value from inspection)."""
    pairs = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if name or sep:
            value = value.strip()
            pairs.append((name.strip(), value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value))
    return pairs


def request_fields(
    *,
    path: str = "",
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    cookies: Iterable[tuple[str, str]] = (),
    json: Any = None,
    form: Iterable[tuple[str, str]] | None = None,
    limits: FieldLimits = FieldLimits(),
) -> list[Field]:
    """All fields of one request; `json` is the parsed document (None: no JSON body)."""
    fields = path_fields(path) + query_fields(query, limits) + pair_fields("cookie", cookies, limits)
    fields += pair_fields("header", headers, limits)
    if json is not None:
        fields += json_fields(json, limits)
    if form is not None:
        fields += pair_fields("body", form, limits)
    if len(fields) > limits.max_fields:
        raise FieldLimitError(f"more than {limits.max_fields} fields")
    return fields
