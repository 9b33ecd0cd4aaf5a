"""Witness requests for the linter: concrete requests a rule matches, to ask the matcher who wins.

Glob witnesses put a fresh value (one no rule names) in every wildcard position and dimension
(segment, method, host, client address); a rule that loses on its fresh witness loses on every
request like it, so the glob answers are exact. Regexes cannot be enumerated, so they get examples
built from the regex's own syntax tree (`re._parser`, private but stable since 3.11; any surprise
there yields no examples rather than an error) plus every glob witness and test path, each kept only
if it is canonical and the regex really matches it. Regex findings are therefore samples, and say so.

>>> regex_examples("^/v[0-9]+/items$")
['/v0/items', '/v00/items']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.canonical import PathError, canonical_path
from proxy.policy.matcher import Probe
from proxy.policy.rule import LITERAL, REST, PathPattern, Rule

if TYPE_CHECKING:
    from proxy.policy.compiler import PolicySet

FRESH_SEGMENT = "~bastion-probe~"
FRESH_METHOD = "BASTION-PROBE"
FRESH_HOST = "probe.bastion.invalid"
FRESH_IPS = ("192.0.2.77", "2001:db8::77")  # RFC 5737 / RFC 3849 documentation addresses
_SAMPLE_VALUES = (FRESH_SEGMENT, "1", "x")
_LIMIT = 16
_CATEGORY = {"CATEGORY_DIGIT": "0", "CATEGORY_WORD": "a", "CATEGORY_NOT_SPACE": "a", "CATEGORY_NOT_DIGIT": "a"}


def witness_paths(p: PathPattern, value: str = FRESH_SEGMENT) -> list[str]:
    """Paths glob `p` matches, with `value` in every wildcard segment (`**`: zero segments and one)."""
    fixed = [seg if kind == LITERAL else value for seg, kind in zip(p.segments, p.kinds, strict=True) if kind != REST]
    if p.kinds and p.kinds[-1] == REST:
        return ["/" + "/".join(fixed), "/" + "/".join([*fixed, value])]
    return ["/" + "/".join(fixed)]


def _canonical(path: str) -> bool:
    try:
        return canonical_path(path) == path
    except PathError:
        return False


def regex_examples(regex: str) -> list[str]:
    """A few canonical paths the regex fully matches (possibly none)."""
    import re
    from re import _parser  # type: ignore[attr-defined]

    try:
        found = _seq(_parser.parse(regex))
    except Exception:  # noqa: BLE001 - a private API: degrade to "no examples", never fail a load
        return []
    compiled = re.compile(regex)
    return [s for s in dict.fromkeys(found) if compiled.fullmatch(s) and _canonical(s)]


def _seq(items: Any) -> list[str]:
    out = [""]
    for op, av in items:
        out = [a + b for a in out for b in _one(str(op), av)][:_LIMIT]
        if not out:
            break
    return out


def _one(op: str, av: Any) -> list[str]:
    if op == "LITERAL":
        return [chr(av)]
    if op in ("NOT_LITERAL", "ANY"):
        return ["x" if op == "ANY" or chr(av) != "x" else "y"]
    if op in ("AT", "ASSERT", "ASSERT_NOT"):
        return [""]  # anchors and lookarounds add no characters; fullmatch checks them later
    if op == "CATEGORY":
        return [_CATEGORY.get(str(av), "a")]
    if op == "IN":
        for kind, value in av:
            if str(kind) == "LITERAL":
                return [chr(value)]
            if str(kind) == "RANGE":
                return [chr(value[0])]
            if str(kind) == "CATEGORY":
                return [_CATEGORY.get(str(value), "a")]
        return ["x"]
    if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        lo, hi, sub = av
        counts = dict.fromkeys((lo, min(max(lo, 1), hi), min(max(lo, 2), hi)))
        return [s * n for s in _seq(sub)[:2] for n in counts]
    if op in ("SUBPATTERN", "ATOMIC_GROUP"):
        return _seq(av[-1])
    if op == "BRANCH":
        return [s for alt in av[1] for s in _seq(alt)][:_LIMIT]
    raise ValueError(op)  # backreferences, conditionals: give up on this regex


def sample_paths(policy: PolicySet) -> list[str]:
    """Candidate paths for probing regexes: glob witnesses, regex examples and test paths."""
    out: dict[str, None] = {}
    for rule in policy.rules:
        for p in rule.patterns:
            if p.regex is not None:
                out.update(dict.fromkeys(regex_examples(p.text)))
            elif p.rooted:
                for value in _SAMPLE_VALUES:
                    out.update(dict.fromkeys(witness_paths(p, value)))
    for t in policy.tests:
        try:
            out[canonical_path(t.spec.request.path)] = None
        except PathError:
            pass
    return list(out)


def witnesses(rule: Rule, samples: list[str]) -> list[Probe]:
    """Requests `rule` matches: its glob witnesses (or the samples its regex matches) in every dimension."""
    paths: list[str] = []
    for p in rule.patterns:
        if p.regex is not None:
            paths += [s for s in samples if p.regex.fullmatch(s)]
        elif p.rooted:
            paths += witness_paths(p)
    methods = sorted(rule.methods) if rule.methods is not None else [FRESH_METHOD]
    host = FRESH_HOST if rule.host is None else "probe" + rule.host[1:] if rule.host.startswith("*.") else rule.host
    ips = [str(net.network_address) for net in rule.cidrs] or list(FRESH_IPS)
    headers = CIMultiDictProxy(CIMultiDict({h: "probe" for h in rule.headers_present}))
    return [Probe(m, path, host, ip, headers) for path in dict.fromkeys(paths) for m in methods for ip in ips]
