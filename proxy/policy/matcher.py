"""Which rule decides a request: compiled rules, a segment trie, and most-specific-wins.

Matching only reads what the compiler built (no lazy compilation, no locks: Oathkeeper compiles
regexes on first use under a write lock, which serialises every request). Glob patterns live in a
trie keyed by path segment, so the work per request follows the depth of the path and the few rules
that share its prefix, not the number of rules. Regex rules rank last, so on the hot path they are
only tried when no glob rule matched.

Precedence key (lower wins), compared in order:
1. glob before regex;
2. path specificity, segment by segment from the left: literal (0) < `{param}` = `*` (1) < `**` (2),
   and a pattern that ends earlier beats one that continues with `**` (`/a` beats `/a/**` on `/a`);
3. rules listing methods before rules for any method;
4. more match conditions (host, headers_present, client_cidrs) before fewer: each narrows the rule.
Two different rules still equal on all four for one request are a load error (see lint.ties); if
regex rules slip through, `Match.ambiguous` lets the caller fail closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

from proxy.policy.conditions import Decision
from proxy.policy.rule import PARAM, REST, PathPattern, Rule

Key = tuple[int, tuple[int, ...], int, int]


class RequestLike(Protocol):
    """What matching reads; `RequestContext` has it, and so does `Probe`."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def client_ip(self) -> str: ...
    @property
    def headers(self) -> MultiMapping[str]: ...


@dataclass(frozen=True, slots=True)
class Entry:
    rule: Rule
    pattern: PathPattern
    key: Key


@dataclass(frozen=True, slots=True)
class Match:
    """`rule` is None when nothing matched. `candidates` (best pattern per rule, winner first) and so
    `losers` are filled only by `match(..., explain=True)`."""

    rule: Rule | None
    pattern: PathPattern | None = None
    candidates: tuple[Entry, ...] = ()
    ambiguous: tuple[Rule, ...] = ()

    @property
    def losers(self) -> tuple[Rule, ...]:
        return tuple(e.rule for e in self.candidates[1:])


NO_MATCH = Match(None)
NO_RULE_DECISION = Decision(False, 404, "no rule matches")


class _Node:
    __slots__ = ("literal", "param", "rest", "end")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.rest: list[Entry] = []  # patterns ending in `**` here: they match whatever remains
        self.end: list[Entry] = []  # patterns ending exactly here


def _collect(node: _Node, segs: list[str], i: int, out: list[Entry]) -> None:
    n = len(segs)
    while True:
        if node.rest:
            out.extend(node.rest)
        if i == n:
            out.extend(node.end)
            return
        seg = segs[i]
        child = node.literal.get(seg)
        if node.param is not None and seg:  # a parameter never matches an empty segment ("/tasks/")
            if child is not None:
                _collect(child, segs, i + 1, out)
            node, i = node.param, i + 1
            continue
        if child is None:
            return
        node, i = child, i + 1


class _Facts:
    """Host and client address, normalised only if some candidate rule asks for them."""

    __slots__ = ("host", "ip")

    def __init__(self, req: RequestLike) -> None:
        self.host = normal_host(req.host)
        self.ip = parse_ip(req.client_ip)


def normal_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal, with or without port
        return host[: host.find("]") + 1]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        host = name
    return host.rstrip(".")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # SECURITY: a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _extras_ok(rule: Rule, req: RequestLike, facts: _Facts) -> bool:
    if rule.host is not None:
        host = facts.host
        if rule.host.startswith("*."):
            if not host.endswith(rule.host[1:]):
                return False
        elif host != rule.host:
            return False
    for name in rule.headers_present:
        if name not in req.headers:
            return False
    if rule.cidrs:
        ip = facts.ip
        if ip is None or not any(ip in net for net in rule.cidrs):
            return False
    return True


# (method, path) answers kept per Matcher; past it the cache starts over (a scan of random paths
# costs one dict clear per 8192 requests). SECURITY: only short keys are kept, so a client sending
# 8 KiB paths (or 16 KiB preflight methods) cannot pin more than ~2 MB per process.
_CACHE_MAX = 8192
_CACHE_KEY_MAX = 256


class Matcher:
    """The compiled index of a rule list. `match()` is the per-request entry point.

    When no rule looks at the host, headers or client address, the answer depends on the method and
    the path alone, so it is cached per (method, path): most traffic repeats a few routes, and a
    cache hit costs one dict lookup instead of a trie walk and a sort (~1.5 µs). `Match` is frozen,
    and a reload builds a new Matcher, so a cached answer can never outlive its rule set."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._root = _Node()
        self._regex: list[Entry] = []
        rules = tuple(rules)
        self._cache: dict[tuple[str, str], Match] | None = None if any(r.has_extras for r in rules) else {}
        for rule in rules:
            for pattern in rule.patterns:
                entry = Entry(rule, pattern, entry_key(rule, pattern))
                if pattern.regex is not None:
                    self._regex.append(entry)
                elif pattern.rooted:
                    self._insert(pattern, entry)

    def _insert(self, pattern: PathPattern, entry: Entry) -> None:
        node = self._root
        for seg, kind in zip(pattern.segments, pattern.kinds, strict=True):
            if kind == REST:
                node.rest.append(entry)
                return
            if kind == PARAM:
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literal.setdefault(seg, _Node())
        node.end.append(entry)

    def match(self, req: RequestLike, *, explain: bool = False) -> Match:
        cache = self._cache
        method, path = req.method, req.path
        if cache is None or explain or len(path) + len(method) > _CACHE_KEY_MAX:
            return self._match(req, explain)
        key = (method, path)
        found = cache.get(key)
        if found is None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            found = cache[key] = self._match(req, False)
        return found

    def _match(self, req: RequestLike, explain: bool) -> Match:
        path = req.path
        found: list[Entry] = []
        if path.startswith("/"):
            _collect(self._root, path[1:].split("/"), 0, found)
        best = None if explain else self._select(req, found, False)
        if best is None and (explain or self._regex):
            # regex rules rank last: the hot path tries them only when no glob rule matched
            found.extend(e for e in self._regex if e.pattern.regex.fullmatch(path))  # type: ignore[union-attr]
            best = self._select(req, found, explain)
        if not best:
            return NO_MATCH
        win = best[0]
        tied = tuple(e.rule for e in best[1:] if e.key == win.key and e.rule is not win.rule)
        return Match(win.rule, win.pattern, tuple(best) if explain else (), tied)

    @staticmethod
    def _select(req: RequestLike, found: list[Entry], explain: bool) -> list[Entry] | None:
        """Accepted entries: all, best first and one per rule (explain), else the best and any tie."""
        method = req.method
        facts: _Facts | None = None
        accepted: list[Entry] = []
        for e in found:
            rule = e.rule
            if rule.methods is not None and method not in rule.methods:
                continue
            if rule.has_extras:
                facts = facts or _Facts(req)
                if not _extras_ok(rule, req, facts):
                    continue
            accepted.append(e)
        if not accepted:
            return None
        accepted.sort(key=_entry_key)
        seen: set[int] = set()
        out: list[Entry] = []
        for e in accepted:
            if id(e.rule) not in seen:
                seen.add(id(e.rule))
                out.append(e)
                if not explain and len(out) == 2:
                    break
        return out


def _entry_key(e: Entry) -> Key:
    return e.key


def entry_key(rule: Rule, pattern: PathPattern) -> Key:
    return (1 if pattern.regex is not None else 0, pattern.kinds, 1 if rule.methods is None else 0, -rule.n_extras)


@dataclass(slots=True)
class Probe:
    """A request for matching outside the proxy (tests, explain, lint)."""

    method: str
    path: str
    host: str = "localhost"
    client_ip: str = "127.0.0.1"
    headers: MultiMapping[str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))
