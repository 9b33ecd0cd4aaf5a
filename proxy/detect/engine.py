"""The engine: which detectors run on which field, and the scan loop.

`Engine(classes, url_fields=..., exclusions=...)` resolves its configuration once (STYLE.md lesson 1):
field-name patterns become regexes, and the detector tuple for a field name is computed on first sight
and kept in a bounded cache, so the per-field cost is one dict lookup, one `normalise()` and, for a
value that is not plain (below), one search of the screen joined from every detector's rules
(`prime()`, prefilter.py), which lets each detector skip most of its rules without looking at them.
What a 2 KB JSON body costs, and why, is measured in benchmarks/corpus/RESULTS.md ("Cost").
A value with `\\xNN` escapes is scanned a second time in decoded form when the
written form is clean (`escapes_decoded` in base.py). `scan(fields, first_only=True)` stops at the
first finding (block mode); without it every field is scanned and at most one finding per field is
returned (detect mode, logs).

Field patterns: exact dotted names (`body.comment`), `[*]` for any list index (`body.items[*].title`)
and `*` for one name segment (`body.*.bio`); a pattern also covers everything below it, so excluding
`body.profile` excludes `body.profile.bio`. SSRF runs only on fields listed in `url_fields`, and never
on keys.

>>> from proxy.detect.fields import json_fields
>>> engine = Engine(["sqli", "xss"], exclusions=[Exclusion("body.comment", frozenset({"xss"}))])
>>> [f.detector_id for f in engine.scan(json_fields({"comment": "<script>x</script>", "q": "1' or '1'='1"}))]
['sqli.quote-bool']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from proxy.detect.base import CLASSES, HEAD_BLANKS, Detector, Finding, PlainGate, escapes_decoded, normalise
from proxy.detect.cmdi import CMDI
from proxy.detect.crlf import CRLF
from proxy.detect.fields import Field
from proxy.detect.nosql import NOSQLI
from proxy.detect.prefilter import prime, seal
from proxy.detect.sqli import SQLI
from proxy.detect.ssrf import SSRF
from proxy.detect.ssti import SSTI
from proxy.detect.traversal import LFI
from proxy.detect.xss import XSS

seal()  # every detector's rule sets exist now: one joined screen for all (prefilter.py)

DEFAULT_DETECTORS: Mapping[str, Sequence[Detector]] = {
    "sqli": (SQLI,), "nosqli": (NOSQLI,), "xss": (XSS,), "lfi": (LFI,), "cmdi": (CMDI,), "ssti": (SSTI,),
    "ssrf": (SSRF,), "crlf": (CRLF,),
}
_CACHE_MAX = 4096
# Most keys and many values are "plain": letters, digits, blanks, `_ . , @ + - : / ? ! #` and apostrophes
# inside words (O'Brien). Few attacks can be written with those alone, so a detector declares `plain`:
# None (it never fires on a plain value) or a `PlainGate` (`union`, `/`, `whoami` ... must occur first);
# a detector without the attribute always runs. This skips nearly all the work for ids, names, e-mails,
# dates and enum values. A plain value that no gate of any enabled class matches is clean for every
# field, so short ones and keys are remembered in a bounded set: they repeat within a body and across
# requests (`"status": "shipped"`), and then cost one set lookup.
# Combining diacritical marks (U+0300-U+036F) count as plain: `\w` has no marks, so the NFKC form of
# lower-cased "İstanbul" (`i` + U+0307, which has no precomposed form) would otherwise run every detector;
# a mark only modifies the letter before it and is no syntax in SQL, HTML, shells or paths.
_MARKS = "\u0300-\u036f"
_PLAIN = re.compile(rf"(?:[\w{_MARKS} .,@+\-:/?!#]|(?<=\w)'(?=\w))*")  # an apostrophe inside a word: O'Brien, it's
# the same language for values without an apostrophe (most): a single-character-class repeat, which `re`
# runs as one C loop (the alternation above costs ~50 ns a character)
_PLAIN_CHARS = re.compile(rf"[\w{_MARKS} .,@+\-:/?!#]*")


def _plain_with_apostrophes(value: str) -> bool:
    """`_PLAIN.fullmatch(value)`, by runs of plain characters between apostrophes: each apostrophe must have
    a word character (`\\w`: alphanumeric or `_`) on both sides. Prose with one quote costs a run, not
    the alternation at every character before it."""
    end = len(value)
    pos = 0
    while True:
        pos = _PLAIN_CHARS.match(value, pos).end()  # type: ignore[union-attr]  # `*`: always matches
        if pos == end:
            return True
        if value[pos] != "'" or not pos or pos + 1 == end:
            return False
        before, after = value[pos - 1], value[pos + 1]
        if not ((before.isalnum() or before == "_") and (after.isalnum() or after == "_")):
            return False
        pos += 1


_ALWAYS = PlainGate(prefixes=("",))
Plan = tuple[tuple[Detector, PlainGate | None], ...]


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Do not run `classes` on the field `field` (a pattern, see the module docstring) or below it."""

    field: str
    classes: frozenset[str]


def compile_field_pattern(pattern: str) -> re.Pattern[str]:
    """`body.items[*].title` -> a regex matching that field and everything below it."""
    body = re.escape(pattern).replace(r"\[\*\]", r"\[\d+\]").replace(r"\*", r"[^.\[]*")
    return re.compile(rf"{body}(?:[.\[].*)?", re.DOTALL)


class Engine:
    """Runs the enabled detectors over fields; thread-safe for reads, no I/O, never raises on input.

    Build it once per rule (`DetectSpec.engine` does); `scan()` returns `Finding`s in field order, at
    most one per field, and only the first with `first_only=True`. `detectors` lets a caller add or
    replace detectors per class (the optional libinjection adapter plugs in there).
    """

    def __init__(
        self,
        classes: Iterable[str] = CLASSES,
        *,
        url_fields: Iterable[str] = (),
        exclusions: Iterable[Exclusion] = (),
        detectors: Mapping[str, Sequence[Detector]] = DEFAULT_DETECTORS,
    ) -> None:
        self.classes = tuple(dict.fromkeys(classes))
        unknown = [c for c in self.classes if c not in detectors]
        if unknown:
            raise ValueError(f"unknown detection classes: {', '.join(unknown)}")
        self._plain: tuple[Detector, ...] = tuple(d for c in self.classes if c != "ssrf" for d in detectors[c])
        self._ssrf: tuple[Detector, ...] = tuple(detectors["ssrf"]) if "ssrf" in self.classes else ()
        self._url_fields = [compile_field_pattern(p) for p in url_fields]
        self._exclusions = [(compile_field_pattern(e.field), e.classes) for e in exclusions]
        # per field name, for values and for keys: two dicts, so a lookup needs no (name, is_key) tuple
        self._cache: tuple[dict[str, tuple[Plan, bool]], dict[str, tuple[Plan, bool]]] = ({}, {})
        gates = [getattr(d, "plain", _ALWAYS) for d in self._plain]
        self._any_gate = None if any(g is _ALWAYS for g in gates) else PlainGate.union(g for g in gates if g)
        self._clean: set[str] = set()

    def _for_field(self, name: str, is_key: bool) -> tuple[Plan, bool]:
        """The detectors for this field, and whether it is a URL field (so never skipped as clean)."""
        cached = self._cache[is_key].get(name)
        if cached is not None:
            return cached
        excluded: set[str] = set()
        for pattern, classes in self._exclusions:
            if pattern.fullmatch(name):
                excluded |= classes
        chosen = [d for d in self._plain if d.cls not in excluded]
        is_url = bool(self._ssrf) and not is_key and "ssrf" not in excluded and self._is_url_field(name)
        if is_url:
            chosen.extend(self._ssrf)
        result = (tuple((d, getattr(d, "plain", _ALWAYS)) for d in chosen), is_url)
        cache = self._cache[is_key]
        if len(cache) < _CACHE_MAX:
            cache[name] = result
        return result

    def _is_url_field(self, name: str) -> bool:
        return any(p.fullmatch(name) for p in self._url_fields)

    def scan(self, fields: Iterable[Field], *, first_only: bool = False) -> list[Finding]:
        findings: list[Finding] = []
        clean = self._clean
        values_cache, keys_cache = self._cache
        any_gate = self._any_gate
        if any_gate is not None:
            prefixes, any_needle, digit_start = any_gate.prefixes, any_gate.any_needle, any_gate.digit_start
        for field in fields:
            _source, name, raw, is_key = field
            if not raw:
                continue
            # `_for_field`, `normalise` and the union gate's `hit` inlined: this loop runs once per
            # field (~60 times a 2 KB body), and most fields leave it at the gate
            cached = (keys_cache if is_key else values_cache).get(name)
            detectors, is_url = cached if cached is not None else self._for_field(name, is_key)
            if not detectors or (raw in clean and not is_url):
                continue
            # a NUL is never plain: normalise() drops it, but the detectors also read the raw value
            # (`shell.php\x00.jpg` is a truncated extension)
            nul = "\x00" in raw
            value = normalise(raw) if nul or not raw.isascii() else raw.lower()
            plain = not nul and (
                _plain_with_apostrophes(value) if "'" in value else _PLAIN_CHARS.fullmatch(value) is not None)
            if plain and any_gate is not None and not is_url:
                head = value.lstrip(HEAD_BLANKS)
                if not (head.startswith(prefixes) or (any_needle is not None and any_needle.search(value))
                        or (digit_start is not None and head[:1].isdigit() and digit_start.match(head))):
                    if is_key or len(raw) <= 16:  # keys and enum-like values repeat; e-mails do not
                        if len(clean) >= _CACHE_MAX:
                            clean.clear()
                        clean.add(raw)
                    continue
            hit = None
            if not plain:  # one joined screen for every detector's rules (prefilter.py); a plain value runs
                prime(value)  # one or two gated detectors, for which their own screens cost less
            for detector, gate in detectors:
                if plain and (gate is None or not gate.hit(value)):
                    continue
                hit = detector.match(value, field)
                if hit is not None:
                    break
            else:
                # never plain (a backslash is not plain): the hex-escaped form is a second text, see base.py
                decoded = escapes_decoded(value) if not plain and "\\x" in value else None
                if decoded is not None:
                    prime(decoded)
                    for detector, _gate in detectors:
                        hit = detector.match(decoded, field)
                        if hit is not None:
                            break
            if hit is not None:
                findings.append(hit)
                if first_only:
                    return findings
        return findings
