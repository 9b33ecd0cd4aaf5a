"""Screens: most fields are ruled out for every rule of every detector by one regex search in C.

A detector's rules each have substring pre-filters (needle groups) and a searcher (see `RuleSet`); tried
one by one, that is ~60 Python-level steps for every field with punctuation, and on a 2 KB body it was
most of the cost. But a benign field almost never comes near *any* rule. So a rule may also have a
**screen**: a regex that matches wherever the rule could fire (a necessary condition - the rule's own
pattern, a prefix of it, or the punctuation a hand-written searcher starts from).

- `Rules` joins the screens of its rules into one alternation. When that finds nothing in a text, no
  screened rule can fire there, and only the unscreened ones are tried; when it finds something, every
  rule is tried exactly as before, in order. Findings are unchanged either way.
- `seal()` (engine.py calls it at import, once every detector is built) joins the screens of *all*
  rule sets into one more alternation, grouped by first character (`'(?:a|b)|;(?:c)`, so `re` compares
  one character per group, not one per alternative). The engine runs it once per field (`prime()`); a
  rule set handed that same text object then skips its own screen when the joined one found nothing,
  and otherwise searches from where the joined one first matched (nothing of its own can start before).
  Measured on the benchmark bodies: ~1.6 µs for a short field and ~9 µs for a 560-character paragraph,
  against three times that for the seven screens one after another. The answer is kept for one text,
  by identity, as an immutable pair: another thread's field can only make it a miss, never a wrong answer.

Every screen alternative starts with a literal character (`'x|"x`, not `['"]x`; `-e\\s+/bin/`, not
`\\s-e`): then `re` computes the set of first characters and skips to them in C. One alternative that
starts with a class, a group or an assertion makes it try the whole alternation at every position, and
so does one that starts with a letter, in effect (`or`, `union`, function names): letters are most of
any text. Rules whose only structure is words keep their needles (`in` runs in C) and no screen.
tests/detect/test_detect_prefilter.py checks both properties: a screen matches wherever its rule fires,
and every alternative starts with punctuation.

Why not a multi-pattern automaton (`pyahocorasick`, `hyperscan`): measured on the benchmark bodies,
`pyahocorasick`'s match iterator costs ~4 µs for a short field and ~18 µs for a 1.5 KB paragraph (every
`-`, `,` and `or` is a match that comes back to Python), more than these screens, and it would be a new
compiled dependency; hyperscan would need a system library and x86 only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from proxy.detect.searchers import Hit, Searcher

Needles = tuple[tuple[str, ...], ...]
# (id, needle groups, searcher) or (id, needle groups, searcher, screen): a screen is regex source, or None for
# a rule that is always tried; without one, a compiled-pattern searcher screens itself
Rule = tuple[str, Needles, Searcher] | tuple[str, Needles, Searcher, str | None]
Compiled = tuple[str, Needles, Searcher]

_REGISTRY: list[Rules] = []
_merged: re.Pattern[str] | None = None
_primed: tuple[str, int] = ("", 0)  # (text, where the joined screen's first match starts, or -1)


def starting(heads: Iterable[str], tail: str = "") -> str:
    """`starting(("'", '"'), r"\\s*or")` -> `'\\s*or|"\\s*or`: one alternative per literal head, so each
    starts with a literal (a `['"]` class in front would cost the screen its first-character skip)."""
    return "|".join(re.escape(head) + tail for head in heads)


def words(items: Iterable[str]) -> str:
    """Literal words as a trie-shaped regex: `words(["nc", "ncat", "net"])` -> `n(?:c(?:at)?|et)`. At each
    branch `re` then compares one character per distinct letter, not one per word (~80 program names
    after a `;` in cmdi's screen)."""
    trie: dict[str, dict] = {}
    for word in items:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        ends = "" in node
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return emit(trie)


def screen_of(rule: Rule) -> str | None:
    if len(rule) == 4:
        return rule[3]
    searcher = rule[2]
    return searcher.pattern if isinstance(searcher, re.Pattern) and searcher.flags == re.UNICODE else None


def alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of regex source: `a|(b|c)|[|]` -> `['a', '(b|c)', '[|]']`."""
    out, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 2 if pattern[i + 1 : i + 3] in ("^]",) else 1 if pattern[i + 1 : i + 2] in ("^", "]") else 0
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def head(alternative: str) -> str | None:
    """The literal an alternative starts with (`'`, `\\(`), or None for a class, group, assertion or letter."""
    if alternative.startswith("\\"):
        escaped = alternative[1:2]
        return alternative[:2] if escaped and (not escaped.isalnum() or escaped in "nrtfv") else None
    first = alternative[:1]
    return first if first and not first.isalnum() and first not in "([.^$*+?{|_" else None


def grouped(screens: Iterable[str]) -> str:
    """One alternation of many screens, grouped by first character: `'a|;b|'c` -> `'(?:a|c)|;(?:b)`."""
    groups: dict[str, list[str]] = {}
    for screen in screens:
        for alternative in alternatives(screen):
            first = head(alternative)
            if first is None:
                raise ValueError(f"screen alternative does not start with punctuation: {alternative[:40]!r}")
            tails = groups.setdefault(first, [])
            if alternative[len(first) :] not in tails:  # rules may share a screen: search it once
                tails.append(alternative[len(first) :])
    out = []
    for first, tails in groups.items():
        # blanks in front of several tails are matched once: `'(?:\s*(?:a|b)|c)` is `'\s*a|'\s*b|'c`
        for blank in (r"\s*", r"[\s)]*"):
            shared = [t[len(blank) :] for t in tails if t.startswith(blank)]
            if len(shared) > 1:
                tails = [blank + "(?:" + "|".join(shared) + ")"] + [t for t in tails if not t.startswith(blank)]
        out.append(f"{first}(?:{'|'.join(tails)})")
    return "|".join(out)


def compiled(name: str, rules: list[Compiled]) -> Callable[[str], tuple[str, re.Match[str] | Hit] | None]:
    """`rules` tried in order as one straight-line Python function, generated here at import: each rule's
    needle groups become one `and` of `or`s of `in` checks (`("'" in text or '"' in text) and ("or" in
    text ...)`), then its searcher. The generic loop over (id, groups, searcher) tuples cost ~100 ns a rule
    in iterator and unpacking steps, most of what a field that no rule concerns costs; this costs its `in`
    checks. The source is built only from the detectors' own literals (`repr`) and ids."""
    env: dict[str, object] = {}
    src = ["def first(text):"]
    for i, (rid, needles, searcher) in enumerate(rules):
        env[f"search{i}"] = searcher.search
        groups = [" or ".join(f"{needle!r} in text" for needle in group) for group in needles]
        condition = "False" if not all(groups) else " and ".join(f"({g})" for g in groups) or "True"
        src += [f"    if {condition}:", f"        m = search{i}(text)", "        if m is not None:",
                f"            return {rid!r}, m"]
    src.append("    return None")
    exec(compile("\n".join(src), f"<rules {name}>", "exec"), env)  # our own literals only, at import
    return env["first"]  # type: ignore[return-value]


def seal() -> None:
    """Compile the joined screen of every rule set built so far; later ones keep using their own screens."""
    global _merged
    screened = [rules for rules in _REGISTRY if rules.screen is not None]
    _merged = re.compile(grouped(rules.screen.pattern for rules in screened if rules.screen is not None))
    for rules in screened:
        rules.sealed = True


def prime(text: str) -> None:
    """Run the joined screen over `text` once (the engine, per field); rule sets reuse the answer."""
    global _primed
    if _merged is not None:
        m = _merged.search(text)
        _primed = (text, -1 if m is None else m.start())


class Rules:
    """Named rules tried in order: the first whose needle groups all have a substring in the text and whose
    searcher matches wins, as `<cls>.<id>`.

    >>> rules = Rules("x", [("semi", ((";",),), re.compile(";\\\\s*id")), ("one", (), re.compile("^1"), None)])
    >>> rules.screen.pattern
    ';\\\\s*id'
    >>> rules.first("a; id")[0], rules.first("1 id")[0], rules.first("a, id")
    ('x.semi', 'x.one', None)
    """

    def __init__(self, cls: str, rules: Iterable[Rule]) -> None:
        rules = list(rules)
        self.cls = cls
        self._all: list[Compiled] = [(f"{cls}.{r[0]}", r[1], r[2]) for r in rules]
        screens = [screen_of(r) for r in rules]
        self.screens = list(zip(self._all, screens, strict=True))  # for tests/detect/test_detect_prefilter.py
        # unscreened rules keep their order; screened ones can only fire when the screen matched
        self._unscreened = [c for c, s in zip(self._all, screens, strict=True) if s is None]
        joined = "|".join(s for s in screens if s is not None)
        self.screen = re.compile(joined) if joined else None
        self._first_all = compiled(cls, self._all)
        self._first_unscreened = compiled(cls, self._unscreened)
        self.sealed = False  # True once part of the joined screen (seal())
        _REGISTRY.append(self)

    def first(self, text: str) -> tuple[str, re.Match[str] | Hit] | None:
        """The id and match of the first rule that fires on `text`, or None."""
        screen = self.screen
        if screen is None:
            return self._first_all(text)
        start = 0
        primed = _primed  # one read: the pair is replaced whole, never changed
        if self.sealed and primed[0] is text:
            # the joined screen, a superset of ours at every position, matched nowhere before `start`
            start = primed[1]
            if start < 0:
                return self._first_unscreened(text)
        return (self._first_all if screen.search(text, start) is not None else self._first_unscreened)(text)
