"""Redaction and escaping of log records, applied to every record before any sink sees it.

Three rules, as the Kong and oauth2-proxy users who asked for years wanted them (ANCHORS §1.6):
- by name: header names (`Authorization`, `Cookie`, API-key headers …) and query/JSON key names
  that look like credentials (`password`, `token`, `secret`, `api_key` …);
- by shape: anything that looks like a JWT, a `Bearer`/`Basic` credential or a payment card number
  (Luhn-checked), wherever it appears in a user-controlled string;
- every user-controlled string is length-capped, and the characters a terminal or log viewer would
  act on that JSON does not escape (DEL, C1 controls such as the 8-bit CSI, U+2028/U+2029) are
  written as visible `\\uXXXX` text. orjson already escapes CR, LF, ESC and other C0 controls, so a
  request can never start a new log line or colour a terminal.

Tokens and keys are replaced by `[redacted:<12 hex of sha256>]` so one token's requests can be
correlated without the token; password-like values get no hash (a short hash of a low-entropy
secret can be brute-forced). Hand-written: the log-redaction libraries on PyPI either work on
`logging` message strings (too late: ours are dicts) or pull in a whole data-loss-prevention
engine.

>>> r = Redactor()
>>> r.value("session", "abc")[:10]
'[redacted:'
>>> r.query("q=shoes&password=hunter2")
'q=shoes&password=[redacted]'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-amz-security-token",
        "x-goog-api-key",
    }
)
# key names (query parameters, JSON keys, log fields) holding credentials; matched as substrings,
# case-insensitively, on the name with `-` and `.` folded to `_`
_SECRET_NAME = re.compile(
    r"passw(or)?d|passphrase|^pass$|^pwd$|secret|token|api_?key|apikey|access_?key|private_?key|"
    r"credential|session|cookie|authorization|signature|^auth$|^sig$|^key$|^code$|otp|^pin$|ssn|card_?number|"
    r"cvv|cvc",
    re.IGNORECASE,
)
_NO_HASH = re.compile(r"pass|pwd|pin|otp|ssn|cvv|cvc|card", re.IGNORECASE)
# token-shaped values: JWS/JWE compact (header starts `eyJ`), auth-scheme credentials, card numbers
_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"
    r"|(?i:\b(?:bearer|basic|digest|token|apikey)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:\d[ -]?){12,18}\d\b"
)
# every shape needs `eyJ`, whitespace (scheme + credential) or a long digit run (a card number):
# one cheap search decides whether the full substitution runs at all
_HINT = re.compile(r"eyJ|\s|\d[\d -]{11}")
# characters JSON leaves raw that terminals, browsers or log viewers act on
_ACTIVE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


_WS = re.compile(r"\s+")
_FIELD_PARTS = re.compile(r"[.\[\]]")  # `body.items[3].token` -> body, items, 3, token


def _tag(secret: str) -> str:
    return "[redacted:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12] + "]"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _shape(m: re.Match[str]) -> str:
    text = m.group(0)
    if text[0].isdigit():
        digits = text.replace(" ", "").replace("-", "")
        return "[redacted]" if _luhn(digits) else text
    if text[:3] != "eyJ":  # scheme + credential: keep the scheme for the reader
        scheme, cred = _WS.split(text, maxsplit=1)
        return scheme + " " + _tag(cred.strip())
    return _tag(text)


_CACHED_TEXT = 256  # longer strings are rarely repeated
_TEXT_CACHE_MAX = 4096


class Redactor:
    def __init__(self, headers: Iterable[str] = (), keys: Iterable[str] = (), max_field: int = 2048) -> None:
        self.headers = HEADERS | {h.lower() for h in headers}
        extra = [re.escape(k.lower().replace("-", "_").replace(".", "_")) for k in keys]
        self._names = re.compile("|".join([_SECRET_NAME.pattern, *extra]), re.IGNORECASE) if extra else _SECRET_NAME
        self.max_field = max_field
        self._name_cache: dict[str, bool] = {}
        # user agents and paths repeat across requests, and a real user agent always holds spaces,
        # which send it through the shape search: strings found clean are remembered (bounded)
        self._text_cache: dict[str, None] = {}

    def secret_name(self, name: str) -> bool:
        hit = self._name_cache.get(name)
        if hit is None:
            hit = bool(self._names.search(name.replace("-", "_").replace(".", "_")))
            if len(self._name_cache) < 4096:
                self._name_cache[name] = hit
        return hit

    def value(self, name: str, value: str) -> str:
        """The replacement for a value held under a credential-like name."""
        return "[redacted]" if _NO_HASH.search(name) else _tag(value)

    def text(self, value: str) -> str:
        """A user-controlled string: credential parameters of a URL in it, token shapes, length,
        and characters that viewers act on."""
        if len(value) > _CACHED_TEXT:
            return self._text(value)
        cache = self._text_cache
        if value in cache:
            return value
        out = self._text(value)
        if out == value:  # SECURITY: only strings with nothing to redact are kept (no token stays in memory)
            if len(cache) >= _TEXT_CACHE_MAX:
                cache.clear()
            cache[value] = None
        return out

    def _text(self, value: str) -> str:
        if len(value) > self.max_field:
            value = value[: self.max_field] + "…"
        q = value.find("?")
        if q >= 0 and "=" in value[q:]:  # a URL (Referer, a logged jwks_url …): its parameters by name
            value = value[: q + 1] + self._params(value[q + 1 :])
        if _HINT.search(value):
            value = _SHAPES.sub(_shape, value)
        if not value.isascii() or "\x7f" in value:
            value = _ACTIVE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", value)
        return value

    def header(self, name: str, value: str) -> str:
        lower = name.lower()
        if lower in self.headers:
            if lower in ("authorization", "proxy-authorization"):
                parts = _WS.split(value.strip(), maxsplit=1)
                return f"{parts[0]} {_tag(parts[1])}" if len(parts) == 2 else _tag(value)
            return _tag(value)
        return self.text(value)

    def query(self, query: str) -> str:
        """Parameter by parameter, so the rest of the query stays readable; `a[password]=` counts."""
        return self.text(self._params(query)) if query else query

    def _params(self, query: str) -> str:
        out = []
        for part in query.split("&"):
            name, sep, val = part.partition("=")
            plain = unquote_plus(name)
            if "%" in plain:  # double-encoded names (`pass%2577ord`) are decoded by some frameworks
                plain = unquote_plus(plain)
            if sep and val and self.secret_name(plain):
                out.append(f"{name}={self.value(plain, unquote_plus(val))}")
            elif sep and "%" in val and _SHAPES.search(decoded := unquote_plus(val)):
                out.append(f"{name}={_SHAPES.sub(_shape, decoded)}")  # `Bearer%20…`, an encoded JWT
            else:
                out.append(part)
        return "&".join(out)

    def tree(self, value: Any, name: str = "") -> Any:
        """A parsed JSON document (or any nested record value): keys by name, strings by shape.
        Under a credential-like name every value goes, whatever its type (`{"pin": 4821}`)."""
        if name and value is not None and self.secret_name(name):
            if isinstance(value, dict | list | tuple):
                return "[redacted]"
            return self.value(name, value if isinstance(value, str) else repr(value))
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self.tree(v, k if isinstance(k, str) else "")
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.tree(v, name) for v in value]
        if isinstance(value, bytes | bytearray):
            return self.text(value.decode("utf-8", "replace"))
        return value

    def detection(self, d: dict[str, Any]) -> dict[str, Any]:
        """A detection's snippet is redacted wholesale when it comes from a cookie, a credential
        header, or a field whose name is credential-like (`body.user.password`, `body.tokens[0]`)."""
        field = str(d.get("field", ""))
        segments = [p for p in _FIELD_PARTS.split(field) if p and not p.isdigit() and p != "*"]
        leaf = segments[-1] if segments else ""
        out = {k: (self.text(v) if isinstance(v, str) else v) for k, v in d.items()}
        snippet = d.get("snippet")
        if isinstance(snippet, str):
            kind = segments[0] if segments else ""
            if kind == "cookie" or (kind == "header" and leaf.lower() in self.headers):
                out["snippet"] = _tag(snippet)
            elif leaf and self.secret_name(leaf):
                out["snippet"] = self.value(leaf, snippet)
        return out
