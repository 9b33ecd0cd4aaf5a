"""Searchers: objects with `search(text) -> match | None` that find a structure faster than one regex.

Python's `re` has no multi-pattern or Aho-Corasick search: a pattern that starts with an alternation
(`\\b(?:or|and|...)`), with `(?:^|\\s)` or with a lazy `.*?` is *tried at every position* of the text,
which on a 2 KB paragraph costs tens of microseconds per pattern. A pattern whose alternatives all start
with a literal character costs less (`re` then tests only the set of first characters at each position,
~7 ns a character), and one that starts with a single literal least (found as with `str.find`). Where a
regex cannot be written so, these helpers start only where the structure can start - at a literal found with
`str.find` (`Literals`, `Calls`), at each literal head (`Leftmost`), at the end (`Tail`) or the start
(`Anchored`) - and then match there. Each is exercised through the detectors' tables in tests/detect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol


class Hit:
    """Where a non-regex rule matched; quacks like `re.Match` for `finding()`."""

    __slots__ = ("_start",)

    def __init__(self, start: int) -> None:
        self._start = start

    def start(self) -> int:
        return self._start


class Searcher(Protocol):
    def search(self, text: str) -> re.Match[str] | Hit | None: ...



class Tail:
    """A pattern anchored at the end (`...$`) only needs the end of the text: search the last `size`."""

    def __init__(self, pattern: re.Pattern[str], size: int = 64) -> None:
        self._pattern = pattern
        self._size = size

    def search(self, text: str) -> re.Match[str] | None:
        return self._pattern.search(text, max(0, len(text) - self._size))


class Anchored:
    """A pattern that only matches at the start: `re.match`, not `re.search` (which would still try, and
    fail, at every position of a long text)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.search = pattern.match


class Leftmost:
    """The leftmost match of `(?:h1|h2|...)rest`, as one search per head (`rest` compiled behind each),
    each only when its head occurs: a pattern that starts with one literal is found as fast as `str.find`,
    where an alternation of heads makes `re` test a character class at every position (~7 ns a character),
    and one that starts with `\\b` or `(?:^|...)` is tried in full at every position. Same start as the
    single pattern would give. A word head keeps its `\\b` as a look-behind after it (`or(?<!\\wor)`, see
    `word()`); `at_start=True` adds the `^` alternative, tried at position 0 only."""

    def __init__(self, heads: Iterable[tuple[str, str]], rest: str, at_start: bool = False) -> None:
        self._patterns = [(literal, re.compile(source + rest)) for literal, source in heads]
        self._start = re.compile(rest) if at_start else None

    def search(self, text: str) -> re.Match[str] | None:
        best = self._start.match(text) if self._start is not None else None
        if best is not None:
            return best  # nothing starts before 0
        for literal, pattern in self._patterns:
            if literal in text:
                m = pattern.search(text)
                if m is not None and (best is None or m.start() < best.start()):
                    best = m
        return best


def word(name: str) -> tuple[str, str]:
    """A `Leftmost` head for `\\bname`: the literal, then the boundary as a look-behind over it."""
    return name, rf"{re.escape(name)}(?<!\w{re.escape(name)})"


class Literals:
    """Plain substrings (C speed), each confirmed by an optional pattern matched where it was found:
    `Literals({"outfile": re.compile(r"(?<=into\\s)")})` is one `in` and, only on a hit, one regex."""

    def __init__(self, words: Mapping[str, re.Pattern[str] | None]) -> None:
        self._words = words

    def search(self, text: str) -> re.Match[str] | Hit | None:
        for word, confirm in self._words.items():
            i = text.find(word)
            while i != -1:
                if confirm is None:
                    return Hit(i)
                m = confirm.search(text, max(0, i - 24), i + len(word) + 40)
                if m is not None:
                    return m
                i = text.find(word, i + 1)
        return None


class Short:
    """Apply `searcher` only to values of at most `max_len` characters and `max_lines` lines."""

    def __init__(self, searcher: Searcher, max_len: int = 256, max_lines: int = 3) -> None:
        self._searcher = searcher
        self._max_len = max_len
        self._max_lines = max_lines

    def search(self, text: str) -> re.Match[str] | Hit | None:
        if len(text) > self._max_len or text.count("\n") >= self._max_lines:
            return None
        return self._searcher.search(text)


class Calls:
    """`name(` for any name in a set, found from each `(` backwards: a regex alternation of function
    names would be tried at every position of the text, this only looks where a parenthesis is.
    The name may contain `.` (`dbms_lock.sleep`), so `time.sleep(` is not `sleep(`. `then`, when given,
    must match right after the parenthesis."""

    def __init__(self, names: Iterable[str], then: re.Pattern[str] | None = None) -> None:
        self._names = frozenset(names)
        self._ends = tuple(self._names)
        self._then = then

    def search(self, text: str) -> Hit | None:
        i = text.find("(")
        while i != -1:
            j = i
            while j and text[j - 1] in " \t":
                j -= 1
            if not text.endswith(self._ends, 0, j):  # one C call: no name ends here, so the word is none of them
                i = text.find("(", i + 1)
                continue
            k = j
            while k and (text[k - 1].isalnum() or text[k - 1] in "_."):
                k -= 1
            if text[k:j] in self._names and (self._then is None or self._then.match(text, i + 1)):
                return Hit(k)
            i = text.find("(", i + 1)
        return None
