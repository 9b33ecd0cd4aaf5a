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
_BODY = re.compile(
    r"\r[\t ]*[a-z0-9-]{1,64}[\t ]*:|[\r\n][\t ]*(?:set-cookie|location|content-type|content-length|refresh"
    r"|transfer-encoding|bcc|x-forwarded-[a-z]+|access-control-allow-[a-z]+)[\t ]*:|[\r\n]http/\d",
    re.IGNORECASE,
)


def _decode(value: str) -> str:
    def repl(m: re.Match[str]) -> str:
        token = m.group(0).lower()
        return "\n" if token.endswith("a") or token in ("\u560a", "\u010a") else "\r"

    return _ENCODED.sub(repl, value)


class CrlfDetector:
    plain = None
    name = "crlf"
    cls = "crlf"

    def match(self, value: str, field: Field) -> Finding | None:
        raw = field.value
        if not any(n in raw for n in _NEEDLES):
            return None
        if field.source == "body" and "\r" not in raw and "%" not in raw:
            if not has_needles(value, ((":",), _BODY_NAMES)):
                return None
        text = _decode(raw) if "%" in raw or not raw.isascii() else raw
        m = (_BODY if field.source == "body" else _HEADER).search(text)
        return finding("crlf", "crlf.header", field, text, m) if m is not None else None


CRLF = CrlfDetector()
