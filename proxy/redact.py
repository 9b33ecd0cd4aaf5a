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
    r"credential|session|cookie|authorization|signature|^auth$|^sig$|otp|^pin$|ssn|card_?number|cvv|cvc",
    re.IGNORECASE,
)
_NO_HASH = re.compile(r"pass|pwd|pin|otp|ssn|cvv|cvc|card", re.IGNORECASE)
# token-shaped values: JWS/JWE compact (header starts `eyJ`), auth-scheme credentials, card numbers
_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"
    r"|(?i:\b(?:bearer|basic|digest|token|apikey)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:\d[ -]?){12,18}\d\b"
)
_DIGITS = re.compile(r"\d[\d -]{11}")  # the start of a card number, separators allowed
# characters JSON leaves raw that terminals, browsers or log viewers act on
_ACTIVE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
        scheme, _, cred = text.partition(" ")
        return scheme + " " + _tag(cred.strip())
    return _tag(text)


class Redactor:
    def __init__(self, headers: Iterable[str] = (), keys: Iterable[str] = (), max_field: int = 2048) -> None:
        self.headers = HEADERS | {h.lower() for h in headers}
        extra = [re.escape(k.lower().replace("-", "_").replace(".", "_")) for k in keys]
        self._names = re.compile("|".join([_SECRET_NAME.pattern, *extra]), re.IGNORECASE) if extra else _SECRET_NAME
        self.max_field = max_field
        self._name_cache: dict[str, bool] = {}

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
        """A user-controlled string: token shapes replaced, length capped, active characters escaped."""
        if len(value) > self.max_field:
            value = value[: self.max_field] + "…"
        if value.isascii():
            # fast path (substring tests, ~50 ns): every shape needs `eyJ`, a space or a long digit run
            if "eyJ" in value or " " in value or _DIGITS.search(value):
                value = _SHAPES.sub(_shape, value)
            if "\x7f" in value:
                value = value.replace("\x7f", "\\u007f")
            return value
        value = _SHAPES.sub(_shape, value)
        if _ACTIVE.search(value):
            value = _ACTIVE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", value)
        return value

    def header(self, name: str, value: str) -> str:
        if name.lower() in self.headers:
            if name.lower() in ("authorization", "proxy-authorization"):
                scheme, sep, cred = value.partition(" ")
                return f"{scheme} {_tag(cred.strip())}" if sep else _tag(value)
            return _tag(value)
        return self.text(value)

    def query(self, query: str) -> str:
        """Parameter by parameter, so the rest of the query stays readable; `a[password]=` counts."""
        out = []
        for part in query.split("&"):
            name, sep, val = part.partition("=")
            plain = unquote_plus(name)
            if sep and val and self.secret_name(plain):
                out.append(f"{name}={self.value(plain, unquote_plus(val))}")
            else:
                out.append(part)
        return self.text("&".join(out))

    def tree(self, value: Any, name: str = "") -> Any:
        """A parsed JSON document (or any nested record value): keys by name, strings by shape."""
        if isinstance(value, str):
            return self.value(name, value) if name and self.secret_name(name) else self.text(value)
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self.tree(v, k if isinstance(k, str) else "")
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.tree(v, name) for v in value]
        return value

    def detection(self, d: dict[str, Any]) -> dict[str, Any]:
        """A detection's snippet is redacted wholesale when its field's name is credential-like."""
        field = str(d.get("field", ""))
        leaf = re.split(r"[.\[\]/]", field.rstrip("]"))[-1] if field else ""
        out = {k: (self.text(v) if isinstance(v, str) else v) for k, v in d.items()}
        if leaf and self.secret_name(leaf) and isinstance(d.get("snippet"), str):
            out["snippet"] = self.value(leaf, d["snippet"])
        return out
