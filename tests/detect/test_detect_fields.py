"""Request -> fields: names, keys, double decoding, limits."""

from __future__ import annotations

import pytest

from proxy.detect import (
    FieldLimitError,
    FieldLimits,
    cookie_pairs,
    json_fields,
    pair_fields,
    path_fields,
    query_fields,
    request_fields,
)


def _pairs(fields: list) -> list[tuple[str, str, bool]]:
    return [(f.name, f.value, f.is_key) for f in fields]


def test_query_values_and_keys_are_fields() -> None:
    assert _pairs(query_fields("q=a+b&n=%C3%A9")) == [
        ("query.q", "q", True), ("query.q", "a b", False), ("query.n", "n", True), ("query.n", "é", False)]


def test_double_encoding_adds_the_twice_decoded_value() -> None:
    values = [f.value for f in query_fields("f=..%252f..%252fetc%252fpasswd") if not f.is_key]
    assert values == ["..%2f..%2fetc%2fpasswd", "../../etc/passwd"]


def test_nosql_operator_in_query_key_is_kept_as_a_key() -> None:
    fields = query_fields("user[$ne]=x&password[$gt]=")
    assert ("query.user[$ne]", "user[$ne]", True) in _pairs(fields)
    assert ("query.password[$gt]", "", False) in _pairs(fields)


def test_invalid_utf8_stays_visible() -> None:
    value = [f.value for f in query_fields("f=%c0%ae%c0%ae/etc") if not f.is_key][0]
    assert value == "\udcc0\udcae\udcc0\udcae/etc"


def test_nested_json_keys_and_list_indices() -> None:
    doc = {"user": {"name": "Ann", "$where": "1"}, "items": [{"title": "t", "a b": "c"}, "x", 3, None]}
    assert _pairs(json_fields(doc)) == [
        ("body.user.name", "Ann", False), ("body.user.$where", "$where", True), ("body.user.$where", "1", False),
        ("body.items[1]", "x", False), ("body.items[0].title", "t", False),
        ("body.items[0].a b", "a b", True), ("body.items[0].a b", "c", False)]


def test_a_bare_json_string_is_one_field() -> None:
    assert _pairs(json_fields("hello")) == [("body", "hello", False)]


def test_path_segments_are_decoded() -> None:
    assert _pairs(path_fields("/api/users/O%27Brien/")) == [
        ("path[0]", "api", False), ("path[1]", "users", False), ("path[2]", "O'Brien", False)]


def test_cookie_header_is_split_leniently() -> None:
    assert cookie_pairs('a=1; b="x y"; broken; c=d=e') == [("a", "1"), ("b", "x y"), ("broken", ""), ("c", "d=e")]


def test_headers_cookies_and_form() -> None:
    fields = request_fields(headers=[("User-Agent", "curl/8")], cookies=[("sid", "a%20b")], form=[("msg", "hi")])
    assert ("header.user-agent", "curl/8", False) in _pairs(fields)
    assert ("cookie.sid", "a%20b", False) in _pairs(fields) and ("cookie.sid", "a b", False) in _pairs(fields)
    assert ("body.msg", "hi", False) in _pairs(pair_fields("body", [("msg", "hi")]))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: json_fields({"a": [["x"] * 10] * 10}, FieldLimits(max_fields=50)), id="too-many-fields"),
        pytest.param(lambda: json_fields(_deep(40)), id="too-deep"),
        pytest.param(lambda: json_fields([0] * 1000, FieldLimits(max_nodes=500)), id="too-many-nodes"),
        pytest.param(lambda: query_fields("a=1&" * 30, FieldLimits(max_fields=10)), id="too-many-query-fields"),
    ],
)
def test_limits_raise_instead_of_skipping(call: object) -> None:
    with pytest.raises(FieldLimitError):
        call()  # type: ignore[operator]


def _deep(n: int) -> object:
    doc: object = "x"
    for _ in range(n):
        doc = {"a": doc}
    return doc
