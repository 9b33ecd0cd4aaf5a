"""What a compiled PolicySet means, checked: the problems YAML shape cannot show.

Errors (the compiler refuses to load them): duplicate rule ids, patterns that can never match a
canonical path, unknown roles, tests naming unknown rules, and precedence ties. Warnings: rules that
never decide a request because another always wins.

Ties between glob patterns are found exactly: two globs can match one request at equal rank only if
their shapes (segments, parameters spelled `*`) are equal, so grouping by shape is complete. Regex
ties and shadowing are answered by asking the matcher about witness requests (`samples.py`): exact
for globs, a sample for regexes, and the regex findings say so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Literal

from proxy.canonical import PathError, canonical_path
from proxy.policy.model import AllowSpec
from proxy.policy.rule import LITERAL, PathPattern, Rule
from proxy.policy.samples import sample_paths, witnesses

if TYPE_CHECKING:
    from proxy.policy.compiler import PolicySet


@dataclass(frozen=True, slots=True)
class Finding:
    level: Literal["error", "warning"]
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _at(level: Literal["error", "warning"], rule: Rule, loc: tuple[str | int, ...], message: str) -> Finding:
    file, line, dotted = rule.where(*loc)
    return Finding(level, file, line, f"{dotted}: {message}")


def lint(policy: PolicySet) -> list[Finding]:
    """Every finding, in file and line order."""
    out = [*_duplicates(policy), *_bad_patterns(policy), *_unknown_roles(policy), *_tests(policy)]
    out += _ties(policy)
    out += _shadowed(policy)
    return sorted(out, key=lambda f: (f.file, f.line))


def _duplicates(policy: PolicySet) -> Iterator[Finding]:
    for rule in policy.rules:
        first = policy.by_id[rule.id]
        if first is not rule:
            yield _at("error", rule, ("id",), f"duplicate rule id {rule.id!r} (first defined at {first.location})")


def _path_locs(rule: Rule) -> Iterator[tuple[PathPattern, tuple[str | int, ...]]]:
    many = isinstance(rule.spec.match.path, tuple)
    for j, p in enumerate(rule.patterns):
        yield p, ("match", "path", j) if many else ("match", "path")


def pattern_problem(p: PathPattern) -> str | None:
    """Why a glob can never match a canonical path, or None."""
    if not p.rooted:
        return f"{p.text!r} does not start with '/': it can never match"
    last = len(p.segments) - 1
    for i, (seg, kind) in enumerate(zip(p.segments, p.kinds, strict=True)):
        if kind != LITERAL:
            continue
        if seg == "" and i != last:
            return f"{p.text!r} has an empty segment ('//'): canonical paths never do, it can never match"
        if seg in (".", ".."):
            return f"{p.text!r} has a dot segment: canonical paths never do, it can never match"
        try:
            canon = canonical_path("/" + seg)[1:]
        except PathError as exc:
            return f"{p.text!r}: segment {seg!r} can never appear in a canonical path ({exc})"
        if canon != seg:
            return f"{p.text!r}: segment {seg!r} is not canonical (requests arrive as {canon!r}); it can never match"
    return None


def _bad_patterns(policy: PolicySet) -> Iterator[Finding]:
    for rule in policy.rules:
        for p, loc in _path_locs(rule):
            why = None if p.is_regex else pattern_problem(p)
            if why:
                yield _at("error", rule, loc, why)


def _unknown_roles(policy: PolicySet) -> Iterator[Finding]:
    known = policy.roles.known
    for rule in policy.rules:
        allow = rule.spec.allow
        if not isinstance(allow, AllowSpec):
            continue
        for key in ("roles_any", "roles_all"):
            for j, role in enumerate(getattr(allow, key) or ()):
                if role not in known:
                    yield _at("error", rule, ("allow", key, j), f"unknown role {role!r} (declare it under roles:)")


def _tests(policy: PolicySet) -> Iterator[Finding]:
    known = policy.roles.known
    for t in policy.tests:
        for j, role in enumerate(t.spec.request.roles):
            if role not in known:
                loc = ("tests", t.index, "request", "roles", j)
                yield Finding(
                    "error",
                    t.file,
                    t.doc.line_of(loc),
                    f"tests[{t.index}].request.roles[{j}]: unknown role {role!r} (declare it under roles:)",
                )
        if t.spec.rule is not None and t.spec.rule not in policy.by_id:
            line = t.doc.line_of(("tests", t.index, "rule"))
            yield Finding("error", t.file, line, f"tests[{t.index}].rule: no rule has id {t.spec.rule!r}")


def _hosts_overlap(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return True
    if a.startswith("*.") and b.startswith("*."):
        return a.endswith(b[1:]) or b.endswith(a[1:])
    if a.startswith("*."):
        return b.endswith(a[1:])
    if b.startswith("*."):
        return a.endswith(b[1:])
    return a == b


def _can_overlap(a: Rule, b: Rule) -> bool:
    """Whether one request can meet both rules' conditions other than the path."""
    if a.methods is not None and b.methods is not None and a.methods.isdisjoint(b.methods):
        return False
    if not _hosts_overlap(a.host, b.host):
        return False
    if a.cidrs and b.cidrs:
        return any(x.version == y.version and x.overlaps(y) for x in a.cidrs for y in b.cidrs)
    return True


def _same_rank(a: Rule, b: Rule) -> bool:
    return (a.methods is None) == (b.methods is None) and a.n_extras == b.n_extras


def _tie(a: Rule, pa: PathPattern, b: Rule, pb: PathPattern, sample: str = "") -> Finding:
    shared = sorted((a.methods or b.methods or frozenset()) & (b.methods or a.methods or frozenset()))
    methods = "/".join(shared) if shared else "any method"
    (first, fp), (second, sp) = sorted(((a, pa), (b, pb)), key=lambda t: (t[0].file, t[0].line))
    return _at(
        "error",
        second,
        (),
        f"rules {second.id!r} ({second.location}, path {sp.text}) and {first.id!r} "
        f"({first.location}, path {fp.text}) have equal precedence for {methods}{sample}: "
        "make one more specific",
    )


def _ties(policy: PolicySet) -> Iterator[Finding]:
    groups: dict[tuple[str, ...], list[tuple[Rule, PathPattern]]] = defaultdict(list)
    regexes: list[tuple[Rule, PathPattern]] = []
    for rule in policy.rules:
        for p in rule.patterns:
            if p.is_regex:
                regexes.append((rule, p))
            elif p.rooted:
                groups[p.shape].append((rule, p))
    reported: set[tuple[int, int]] = set()
    for members in groups.values():
        for (a, pa), (b, pb) in combinations(members, 2):
            pair = (min(id(a), id(b)), max(id(a), id(b)))
            if a is not b and pair not in reported and _same_rank(a, b) and _can_overlap(a, b):
                reported.add(pair)
                yield _tie(a, pa, b, pb)
    samples = sample_paths(policy)
    for (a, pa), (b, pb) in combinations(regexes, 2):
        if a is b or not (_same_rank(a, b) and _can_overlap(a, b)):
            continue
        both = [s for s in samples if pa.regex.fullmatch(s) and pb.regex.fullmatch(s)]  # type: ignore[union-attr]
        if pa.text == pb.text or both:
            yield _tie(a, pa, b, pb, f" {both[0]}" if both else "")


def _shadowed(policy: PolicySet) -> Iterator[Finding]:
    samples = sample_paths(policy)
    for rule in policy.rules:
        matched, winners = 0, dict[str, Rule]()
        for probe in witnesses(rule, samples):
            m = policy.match(probe, explain=True)
            if any(e.rule is rule for e in m.candidates):
                matched += 1
                if m.rule is rule:
                    break
                if m.rule is not None:
                    winners[m.rule.id] = m.rule
        else:
            if matched:
                by = ", ".join(f"{r.id!r} ({r.location})" for r in winners.values())
                sample = f" on the {matched} sample requests it matches" if rule.patterns[0].is_regex else ""
                yield _at("warning", rule, (), f"rule {rule.id!r} never decides a request{sample}: {by} always wins")
