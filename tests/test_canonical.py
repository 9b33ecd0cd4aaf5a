"""The canonical path: one reading per path, the same one checked and forwarded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.canonical import PathError, canonical_path
from tests.conftest import EchoUpstream, Running, parse_head, raw_request

SAME = [
    ("/", "/"),
    ("/tasks/7", "/tasks/7"),
    ("/a/", "/a/"),
    ("//a///b", "/a/b"),
    ("/a/./b", "/a/b"),
    ("/a/b/../c", "/a/c"),
    ("/a/b/..", "/a/"),
    ("/a/.", "/a/"),
    ("/a/%2e/b", "/a/b"),
    ("/a/%2E%2e/b", "/b"),
    ("/a/.%2e/b", "/b"),
    ("/%7Euser", "/~user"),
    ("/%41%42c", "/ABc"),
    ("/a%2db", "/a-b"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/café", "/caf%C3%A9"),
    ("/a%20b", "/a%20b"),
    ("/a%3fb", "/a%3Fb"),
    ("/a;b=c/d", "/a;b=c/d"),
    ("/.well-known/x", "/.well-known/x"),
    ("/a/...", "/a/..."),
    ("/a//../b", "/b"),
    ("/%F0%9F%98%80", "/%F0%9F%98%80"),
]


@pytest.mark.parametrize("raw, canonical", SAME, ids=[r for r, _ in SAME])
def test_canonical_form(raw: str, canonical: str) -> None:
    assert canonical_path(raw) == canonical


REJECTED = [
    ("/..", "dot segment above the root"),
    ("/a/../..", "dot segment above the root"),
    ("/%2e%2e/etc/passwd", "dot segment above the root"),
    ("/%2E%2E%2Fetc", "encoded '/'"),
    ("/admin%2fusers", "encoded '/'"),
    ("/a%5cb", "encoded '\\'"),
    ("/a\\b", "backslash in path"),
    ("/a%00", "encoded NUL"),
    ("/a%0d%0aSet-Cookie:x", "encoded control character"),
    ("/a%7f", "encoded control character"),
    ("/%c0%ae%c0%ae/", "invalid UTF-8"),
    ("/%c0%af", "invalid UTF-8"),
    ("/%e0%80%af", "invalid UTF-8"),
    ("/%ed%a0%80", "invalid UTF-8"),
    ("/%ff", "invalid UTF-8"),
    ("/%c3", "invalid UTF-8"),
    ("/%zz", "invalid percent-encoding"),
    ("/%4", "invalid percent-encoding"),
    ("/%252e%252e", None),  # double-encoded: stays encoded, so it is not a dot segment (not rejected)
    ("relative", "path must start with '/'"),
    ("/admin/..;/x", "dot segment with parameters"),
    ("/..;/admin", "dot segment with parameters"),
    ("/a/.;x=1/b", "dot segment with parameters"),
    ("/a/%2e%2e;/b", "dot segment with parameters"),
]


@pytest.mark.parametrize(
    "raw, keep, merge, expected",
    [
        pytest.param("/files/a%2Fb", True, True, "/files/a%2Fb", id="keep-encoded-slash"),
        pytest.param("/files/a%5cb", True, True, "/files/a%5Cb", id="keep-encoded-backslash"),
        pytest.param("/a//b", False, False, "/a//b", id="no-merge"),
        pytest.param("/a//../b", False, False, "/a/b", id="no-merge-dot-removal"),
    ],
)
def test_path_options(raw: str, keep: bool, merge: bool, expected: str) -> None:
    assert canonical_path(raw, keep_encoded_slash=keep, merge_slashes=merge) == expected


@pytest.mark.parametrize("raw, reason", REJECTED, ids=[r for r, _ in REJECTED])
def test_rejected(raw: str, reason: str | None) -> None:
    if reason is None:
        assert canonical_path(raw) == "/%252e%252e"
        return
    with pytest.raises(PathError) as err:
        canonical_path(raw)
    assert str(err.value) == reason


segment_chars = st.sampled_from(
    list("abcAZ09-._~!$&'()*+,;=:@") + ["%2e", "%2E", "%41", "%7e", "%20", "%c3%a9", "é", ".", "..", "/", "//", "%3F"]
)
paths = st.lists(segment_chars, max_size=20).map(lambda parts: "/" + "".join(parts))


@settings(max_examples=400, deadline=None)
@given(paths)
def test_idempotent_and_never_above_root(path: str) -> None:
    try:
        once = canonical_path(path)
    except PathError:
        return
    assert canonical_path(once) == once
    assert once.startswith("/") and "//" not in once
    assert "/../" not in once + "/" and "/./" not in once + "/"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_is_canonical_or_rejected(text: str) -> None:
    try:
        out = canonical_path("/" + text)
    except PathError:
        return
    assert out.isascii() and out.startswith("/")
    assert canonical_path(out) == out


ENCODINGS_OF_ADMIN = [
    "/admin/users",
    "/%61dmin/users",
    "//admin//users",
    "/x/../admin/users",
    "/./admin/users",
    "/admin/./users",
    "/%61%64%6d%69%6e/users",
    "/admin/users/.",
]


@pytest.mark.parametrize("variant", ENCODINGS_OF_ADMIN)
async def test_upstream_receives_the_canonical_path(proxy: Running, upstream: EchoUpstream, variant: str) -> None:
    req = f"GET {variant}?a=%2F HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
    assert parse_head(await raw_request(proxy.port, req))[0] == 200
    expected = "/admin/users/" if variant.endswith("/.") else "/admin/users"
    assert upstream.paths() == [expected + "?a=%2F"]  # the query is passed on untouched
