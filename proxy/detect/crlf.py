"""CRLF / header injection: a line break followed by something shaped like a header field.

Only values that could end up in a response or upstream header matter: query and path values (redirect
targets, file names), cookies and headers. A bare line break is normal in a JSON comment, so in bodies
only a carriage return followed by a header-like line, or a line break followed by a header an
attacker actually wants (`Set-Cookie`, `Location`, `Content-Type`, mail `Bcc`), is flagged. Encoded
breaks are undone first: `%0d%0a` (once more than the field decoding did), IIS `%u000a`, and the
Node.js `\\u560d\\u560a` trick (characters whose low byte is CR/LF).
"""

from __future__ import annotations

import re

from proxy.detect.base import Finding, finding, has_needles
from proxy.detect.fields import Field

_NEEDLES = ("\r", "\n", "\u560a", "\u560d", "\u010a", "\u010d", "%")
_BODY_NAMES = ("set-cookie", "location", "content-", "refresh", "transfer-encoding", "bcc", "x-forwarded-",
               "access-control-", "http/")
_ENCODED = re.compile(r"%(?:25)*0a|%(?:25)*0d|%u000a|%u000d|[\u560a\u010a]|[\u560d\u010d]", re.IGNORECASE)
_HEADER = re.compile(r"[\r\n][\t ]*(?:[a-z0-9!#$%&'*+.^_`|~-]{1,64}[\t ]*:|http/\d)", re.IGNORECASE)
# `[\r\n]` first, so `re` skips to line breaks in C; written `\r...|[\r\n]...` it was tried at every position
_BODY = re.compile(
    r"[\r\n](?:(?<=\r)[\t ]*[a-z0-9-]{1,64}[\t ]*:|[\t ]*(?:set-cookie|location|content-type|content-length"
    r"|refresh|transfer-encoding|bcc|x-forwarded-[a-z]+|access-control-allow-[a-z]+)[\t ]*:|http/\d)",
    re.IGNORECASE,
)
# what `_ENCODED` can match without a `%` (IGNORECASE adds the other case of U+010A and U+010D; a test checks
# this list against every code point): with none of them and no `%`, decoding changes nothing
_ENCODED_CHARS = "\u010a\u010b\u010c\u010d\u560a\u560d"


def _repl(m: re.Match[str]) -> str:
    token = m.group(0).lower()
    return "\n" if token.endswith("a") or token in ("\u560a", "\u010a") else "\r"


# `_ENCODED` without its two character classes, for values that have none of `_ENCODED_CHARS`: it starts with
# the literal `%`, which `re` finds fast, where `_ENCODED` is tried at every position (~30 ns a character)
_PERCENT_ENCODED = re.compile(r"%(?:(?:25)*0a|(?:25)*0d|u000a|u000d)", re.IGNORECASE)


def _decode(value: str) -> str:
    if value.isascii() or not _has_encoded(value):
        return _PERCENT_ENCODED.sub(_repl, value)
    return _ENCODED.sub(_repl, value)


def _has_encoded(raw: str) -> bool:
    for c in _ENCODED_CHARS:
        if c in raw:
            return True
    return False


def _may_decode(raw: str) -> bool:
    """False when `_decode` would change nothing (its `%` forms all start `%2`, `%0` or `%u`): `_ENCODED`
    has no first-character skip (IGNORECASE, classes), so `sub` is tried at every position of the value."""
    if "%" in raw and ("%0" in raw or "%2" in raw or "%u" in raw or "%U" in raw):
        return True
    return not raw.isascii() and _has_encoded(raw)


class CrlfDetector:
    plain = None
    name = "crlf"
    cls = "crlf"

    def match(self, value: str, field: Field) -> Finding | None:
        raw = field.value
        for needle in _NEEDLES:
            if needle in raw:
                break
        else:
            return None
        if field.source == "body" and "\r" not in raw and "%" not in raw:
            if not has_needles(value, ((":",), _BODY_NAMES)):
                return None
        text = _decode(raw) if _may_decode(raw) else raw
        m = (_BODY if field.source == "body" else _HEADER).search(text)
        return finding("crlf", "crlf.header", field, text, m) if m is not None else None


CRLF = CrlfDetector()
