"""What every detector shares: the `Detector` protocol, the `Finding` it returns, and the one normaliser.

A detector is any object with `name` (its stable id, logged and counted), `cls` (the attack class a rule
enables or excludes) and `match(value, field) -> Finding | None`. `value` is the field's text already
normalised by `normalise()` (done once per field by the engine, not once per detector); `field.value`
keeps the raw text for the detectors that need it (CRLF looks at raw control characters, XSS looks at
tags before entity decoding). Detectors compile everything at import; `match` never compiles.

Normalisation is deliberately small and cheap: NFKC only for non-ASCII text (full-width `＜script＞`
becomes `<script>`), NUL and the invisible format characters removed (`<scr\\0ipt>`), lower case.
HTML entity decoding is *not* done here: it is right inside attribute values and wrong for text
(`&lt;script&gt;` in a comment is harmless), so the XSS detector decides where to use `entity_decoded`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.entities import html5
from typing import Protocol

from proxy.detect.fields import Field
from proxy.detect.prefilter import Needles, Rule, Rules, words
from proxy.detect.searchers import Hit

CLASSES = ("sqli", "nosqli", "xss", "lfi", "cmdi", "ssti", "ssrf", "crlf")
_INVISIBLE = re.compile("[\x00\u00ad\u200b-\u200f\u2028\u2029\u2060-\u2064\ufeff]")
_SNIPPET = 64


@dataclass(frozen=True, slots=True)
class Finding:
    """One detection: `cls` (e.g. "sqli"), `detector_id` (e.g. "sqli.union"), the field's dotted name,
    and at most 64 characters around the match for the log. Never the whole value."""

    cls: str
    detector_id: str
    field_name: str
    snippet: str


class Detector(Protocol):
    name: str
    cls: str

    def match(self, value: str, field: Field) -> Finding | None: ...


def normalise(value: str) -> str:
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)
        value = _INVISIBLE.sub("", value)
    elif "\x00" in value:
        value = value.replace("\x00", "")
    return value.lower()


# `html.unescape` decodes `&#...` and any name whose first two characters are a whole entity name (`&lt`) or
# whose first three begin one (`&amp`, `&colon;`): a URL's `&ref=` or prose's `R&B` begins none, and its
# Python callback, which tries up to 32 prefixes of what follows each `&`, is skipped. One pattern that
# starts with the literal `&` (a trie of those 2- and 3-character starts) finds the `&`s that do.
_ENTITY_START = re.compile("&(?:#|" + words({name[:3] for name in html5 if len(name) >= 3}
                                             | {name for name in html5 if len(name) == 2}) + ")")


def entity_decoded(value: str) -> str:
    """HTML character references decoded (also the legacy forms without `;`), as a browser would in an
    attribute value: `javascript&colon;alert&lpar;1&rpar;` -> `javascript:alert(1)`. `value` itself when
    nothing changes, so callers can tell by identity."""
    if "&" not in value or _ENTITY_START.search(value) is None:
        return value
    decoded = html.unescape(value)
    return value if decoded == value else decoded


_HEX_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


def _hex_char(m: re.Match[str]) -> str:
    return chr(int(m.group(1), 16))


def escapes_decoded(value: str) -> str | None:
    """`\\x27\\x4f\\x52` -> `'or`: the C/JavaScript/PHP hex escapes an upstream may decode (CRS does the
    same with `t:jsDecode`/`t:escapeSeqDecode`), or None when `value` (normalised, so lower case) has none.

    A *second* text to scan, not a replacement: `c:\\xampp\\` and a docstring's `b'\\x00'` must
    still be seen as written. Only `\\xNN`: a literal `\\n` is a separator that cmdi matches as written,
    and `\\uNNNN` is JSON's own escape, already decoded by the parser."""
    if "\\x" not in value:
        return None
    decoded = _HEX_ESCAPE.sub(_hex_char, value)
    return decoded.lower() if decoded != value else None


def snippet(text: str, start: int) -> str:
    """Up to 64 characters from just before `start`, control characters escaped, for the log only."""
    begin = max(0, start - 16)
    piece = text[begin : begin + _SNIPPET]
    return piece.encode("unicode_escape").decode("ascii")[:_SNIPPET]


def finding(cls: str, detector_id: str, field: Field, text: str, match: re.Match[str] | Hit | None) -> Finding:
    return Finding(cls, detector_id, field.name, snippet(text, match.start() if match else 0))

# What a gate's prefixes and digit pattern look past: the detectors' anchored rules allow leading blanks
# (`\s*or\s+1#`), a sign (`-1 or 2#`) and `+` for a URL's blank (`+whoami`); the only plain blank is the space.
HEAD_BLANKS = " +-"


class PlainGate:
    """What a *plain* value (letters, digits, blanks, `_ . , @ + - : /`, see engine.py) must contain for a
    detector to look at it: a substring, a prefix, or - for values that start with a digit - a pattern
    (prefixes and the pattern apply after leading spaces and `-`, `HEAD_BLANKS`).
    The prefixes are one `startswith` in C; the substrings are one alternation of literals (`any_needle`),
    which on the short values this sees costs about half of a loop of `in` checks (measured: ~270 against
    ~470 ns for the engine's union of all gates)."""

    def __init__(self, needles: tuple[str, ...] = (), prefixes: tuple[str, ...] = (),
                 digit_start: re.Pattern[str] | None = None) -> None:
        self.needles = needles
        self.prefixes = prefixes
        self.digit_start = digit_start
        self.any_needle = re.compile(words(needles)) if needles else None  # a trie: fewer branches per try

    def hit(self, value: str) -> bool:
        head = value.lstrip(HEAD_BLANKS)
        if head.startswith(self.prefixes):
            return True
        if self.any_needle is not None and self.any_needle.search(value) is not None:
            return True
        return self.digit_start is not None and head[:1].isdigit() and self.digit_start.match(head) is not None

    @staticmethod
    def union(gates: Iterable[PlainGate]) -> PlainGate:
        gates = list(gates)
        digit = [g.digit_start.pattern for g in gates if g.digit_start is not None]
        return PlainGate(tuple(n for g in gates for n in g.needles), tuple(p for g in gates for p in g.prefixes),
                         re.compile("|".join(f"(?:{d})" for d in digit)) if digit else None)


def has_needles(text: str, needles: Needles) -> bool:
    """True when, for every group, at least one of its substrings occurs in `text` (`in` runs in C)."""
    for group in needles:  # plain loops: a generator per call would cost more than the checks themselves
        for needle in group:
            if needle in text:
                break
        else:
            return False
    return True


def first_hit(rules: Rules, text: str, field: Field) -> Finding | None:
    """The first of `rules` whose pre-filters pass and whose pattern matches `text`, as `<cls>.<rule id>`:
    the loop of every detector that is more than one `RuleSet`."""
    hit = rules.first(text)
    return Finding(rules.cls, hit[0], field.name, snippet(text, hit[1].start())) if hit is not None else None


class RuleSet:
    """A detector made of named, precompiled patterns tried in order, each behind substring pre-filters.

    `needles` is the class pre-filter (one group) and each rule has its own: groups of substrings, every
    group must have a hit before the regex runs. Plain `in` checks cost tens of nanoseconds, while a pattern
    that starts with `\\b(?:a|b|...)` makes `re` try the alternation at every position of the text; so
    most benign values leave after a few substring checks, and a regex only runs where it could match.
    Before any of that, one screening regex per rule set rules most fields out at once (prefilter.py).
    `prepare` is the class's own extra normalisation (SQL comments, say), run only past the pre-filter.
    """

    name: str
    cls: str

    def __init__(
        self,
        cls: str,
        needles: Needles,
        rules: list[Rule],
        prepare: Callable[[str], str] | None = None,
        plain: PlainGate | None = None,
    ) -> None:
        self.plain = plain  # see engine.py: the pattern a plain value must contain to be inspected at all
        self.name = cls
        self.cls = cls
        self._needles = needles[0]
        self._rules = Rules(cls, rules)
        self._prepare = prepare

    def match(self, value: str, field: Field) -> Finding | None:
        for needle in self._needles:  # the class pre-filter is one group: inlined, this runs per field
            if needle in value:
                break
        else:
            return None
        text = self._prepare(value) if self._prepare is not None else value
        hit = self._rules.first(text)
        return Finding(self.cls, hit[0], field.name, snippet(text, hit[1].start())) if hit is not None else None
