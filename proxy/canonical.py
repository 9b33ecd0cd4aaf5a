"""The one canonical-path function: the path the access rules check is the path that is forwarded.

Hand-written because no library does this exact job: `urllib.parse` and `yarl` decode and
normalise differently from each other and from the upstream frameworks, and the classic bypasses
(`/admin/..;/`, `%2e%2e/`, `%2F`, overlong UTF-8, `//admin`) live in those differences. We pick one
canonical form and reject everything ambiguous rather than guess how the upstream will read it.

The canonical form:
- percent-encodings of unreserved characters (RFC 3986 §2.3) are decoded; every other
  percent-encoding is kept, with upper-case hex digits (§6.2.2.1);
- raw non-ASCII characters are percent-encoded as UTF-8;
- repeated slashes are merged, then dot segments are removed (§5.2.4);
- rejected: encoded `/` `\\` or NUL, raw `\\`, control characters, invalid or overlong UTF-8
  (the strict decoder refuses overlong forms and surrogates), invalid `%` escapes, dot segments
  that would climb above the root, and dot segments carrying `;` parameters (`/..;/admin`, which
  Tomcat and Spring read as `..`).

Two options (`paths:` in the config): `encoded_slash: keep` keeps `%2F`/`%5C` encoded inside a
segment instead of refusing them (for APIs that put encoded slashes in ids), and
`merge_slashes: false` keeps empty segments.

>>> canonical_path("/a/%7euser//b/./c/../d%2d%c3%a9")
'/a/~user/b/d-%C3%A9'
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# SECURITY: sub-delims, ':' and '@' are legal raw in a path segment (RFC 3986 §3.3); '%' and
# anything else fall back to the slow path.
_FAST = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]*)+")
_HEX = frozenset("0123456789abcdefABCDEF")
_REJECTED_BYTES = {0x2F: "encoded '/'", 0x5C: "encoded '\\'", 0x00: "encoded NUL"}


class PathError(ValueError):
    """A request path that has no single safe reading."""


def canonical_path(path: str, *, keep_encoded_slash: bool = False, merge_slashes: bool = True) -> str:
    if _FAST.fullmatch(path) and "//" not in path and "/." not in path:
        return path
    if not path.startswith("/"):
        raise PathError("path must start with '/'")
    segments = [_canonical_segment(s, keep_encoded_slash) for s in path.split("/")[1:]]
    if merge_slashes:
        # drop empty segments, but keep a trailing one ("/a/" stays "/a/")
        trailing = segments[-1] == "" if segments else False
        segments = [s for s in segments if s != ""]
        if trailing or not segments:
            segments.append("")
    return _remove_dot_segments(segments)


def _canonical_segment(segment: str, keep_encoded_slash: bool = False) -> str:
    if "%" not in segment and segment.isascii():
        _check_raw(segment)
        return segment
    out: list[str] = []
    raw = bytearray()  # every byte of the segment, decoded, to validate UTF-8 as a whole
    i, n = 0, len(segment)
    while i < n:
        ch = segment[i]
        if ch == "%":
            hexpart = segment[i + 1 : i + 3]
            if len(hexpart) != 2 or hexpart[0] not in _HEX or hexpart[1] not in _HEX:
                raise PathError("invalid percent-encoding")
            byte = int(hexpart, 16)
            if byte in _REJECTED_BYTES and not (keep_encoded_slash and byte in (0x2F, 0x5C)):
                raise PathError(_REJECTED_BYTES[byte])
            if byte < 0x20 or byte == 0x7F:
                raise PathError("encoded control character")
            raw.append(byte)
            out.append(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}")
            i += 3
        elif ch.isascii():
            _check_raw(ch)
            raw.extend(ch.encode())
            out.append(ch)
            i += 1
        else:
            encoded = ch.encode("utf-8", errors="strict") if not 0xD800 <= ord(ch) <= 0xDFFF else b""
            if not encoded:
                raise PathError("invalid UTF-8")
            raw.extend(encoded)
            out.append("".join(f"%{b:02X}" for b in encoded))
            i += 1
    try:
        raw.decode("utf-8", errors="strict")  # SECURITY: refuses overlong forms (%C0%AF) and surrogates
    except UnicodeDecodeError:
        raise PathError("invalid UTF-8") from None
    return "".join(out)


def _check_raw(text: str) -> None:
    for ch in text:
        if ch == "\\":
            raise PathError("backslash in path")
        if ch < " " or ch == "\x7f":
            raise PathError("control character in path")


def _remove_dot_segments(segments: list[str]) -> str:
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if ";" in seg and seg.split(";", 1)[0] in (".", ".."):
            raise PathError("dot segment with parameters")  # SECURITY: /..;/admin (Tomcat, Spring)
        if seg == ".":
            if i == last:
                out.append("")
            continue
        if seg == "..":
            if not out or out == [""]:
                raise PathError("dot segment above the root")
            out.pop()
            if i == last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)
