"""A compiled rule and its path patterns: the immutable objects every later check reads.

Kept apart from the matcher because the checks (authn, rate limits, validation) hold a `Rule` on
`ctx.rule` and need nothing of the index that found it. A `Rule` keeps its `RuleSpec`, so per-rule
settings added later (`rate_limit`, `body`, ...) are read from `rule.spec` once the compiler has
turned them into lookup data.

>>> parse_glob("/tasks/{id}/**").kinds
(0, 1, 2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from multidict import MultiMapping

from proxy.config import IPNetwork
from proxy.cors import CorsPolicy, compile_cors
from proxy.identity import Principal
from proxy.policy.conditions import Decision
from proxy.policy.model import LoginSpec, RuleSpec
from proxy.ratelimit.base import Policy, compile_limits
from proxy.security_headers import Plan, rule_plan
from proxy.yamlsource import Document, format_loc

LITERAL, PARAM, REST = 0, 1, 2
_PARAM = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")


@dataclass(frozen=True, slots=True)
class PathPattern:
    """One path pattern of a rule. `segments[i]` is the literal text (or `*`, `**` for wildcards)."""

    text: str
    segments: tuple[str, ...]
    kinds: tuple[int, ...]
    regex: re.Pattern[str] | None = None
    rooted: bool = True  # a glob not starting with "/" can never match a canonical path (lint says so)

    @property
    def is_regex(self) -> bool:
        return self.regex is not None

    @property
    def shape(self) -> tuple[str, ...]:
        """Segments with every parameter spelled `*`: two globs overlap at equal rank iff shapes are equal."""
        names = {PARAM: "*", REST: "**"}
        return tuple(names.get(k, s) for s, k in zip(self.segments, self.kinds, strict=True))


def parse_glob(text: str) -> PathPattern:
    """Parse `/a/{id}/*/**`; raise ValueError for wildcards that do not fill a whole segment."""
    rooted = text.startswith("/")
    parts = (text[1:] if rooted else text).split("/")
    kinds: list[int] = []
    names: set[str] = set()
    for i, seg in enumerate(parts):
        if seg == "**":
            if i != len(parts) - 1:
                raise ValueError(f"{text!r}: `**` is only allowed as the last segment")
            kinds.append(REST)
        elif seg == "*" or _PARAM.match(seg):
            if seg != "*":
                if seg in names:
                    raise ValueError(f"{text!r}: parameter {seg} appears twice")
                names.add(seg)
            kinds.append(PARAM)
        elif "*" in seg or "{" in seg or "}" in seg:
            raise ValueError(
                f"{text!r}: segment {seg!r}: wildcards must fill a whole segment ({{name}}, *, **); use {{regex: ...}}"
            )
        else:
            kinds.append(LITERAL)
    return PathPattern(text, tuple(parts), tuple(kinds), rooted=rooted)


def regex_pattern(text: str) -> PathPattern:
    return PathPattern(text, (), (), regex=re.compile(text))


class ConditionLike(Protocol):
    anonymous: bool

    def decide(self, principal: Principal | None, headers: MultiMapping[str]) -> Decision: ...


class Rule:
    """One compiled rule. Identity is object identity: the matcher may hold it under several patterns."""

    __slots__ = (
        "__weakref__",  # per-rule caches of other layers (the pipeline's plans) must not keep a rule alive
        "id",
        "file",
        "line",
        "index",
        "doc",
        "spec",
        "patterns",
        "methods",
        "host",
        "headers_present",
        "cidrs",
        "condition",
        "mode",
        "allows_anonymous",
        "n_extras",
        "has_extras",
        "validation",
        "detect",
        "timeout",
        "headers",
        "cors",
        "rate_limits",
        "login",
    )

    def __init__(
        self, spec: RuleSpec, patterns: tuple[PathPattern, ...], condition: ConditionLike, doc: Document, index: int
    ) -> None:
        self.id = spec.id
        self.doc = doc
        self.index = index
        self.file = str(doc.path)
        self.line = doc.line_of(("rules", index))
        self.spec = spec
        self.patterns = patterns
        m = spec.match
        self.methods: frozenset[str] | None = frozenset(m.methods) if m.methods is not None else None
        self.host = m.host
        self.headers_present = m.headers_present
        self.cidrs: tuple[IPNetwork, ...] = m.client_cidrs
        self.condition = condition
        self.mode: Literal["enforce", "shadow"] = spec.mode
        # Authentication reads this: on an anonymous rule a missing or invalid token means "go on anonymous".
        self.allows_anonymous = condition.anonymous
        self.validation: Any = None  # proxy.policy.validation.Validation, set by the compiler
        self.detect: Any = None  # proxy.detect.DetectSpec, set by the compiler
        up = spec.upstream
        # (read, total) overrides for the forwarder, or None: resolved once here, not per request
        self.timeout: tuple[float | None, float | None] | None = (
            (up.read_timeout, up.total_timeout) if up is not None else None
        )
        # response hardening, compiled here at load: the per-request path only applies them
        self.headers: Plan | None = rule_plan(spec.headers)
        self.cors: CorsPolicy | None = compile_cors(spec.cors)
        # rate limits and login protection (proxy/checks/ratelimit.py, proxy/checks/login.py)
        self.rate_limits: tuple[Policy, ...] = compile_limits(spec.rate_limit or (), scope=spec.id)
        self.login: LoginSpec | None = spec.login
        self.n_extras = (m.host is not None) + bool(m.headers_present) + bool(m.client_cidrs)
        self.has_extras = self.n_extras > 0

    def decide(self, principal: Principal | None, headers: MultiMapping[str]) -> Decision:
        return self.condition.decide(principal, headers)

    def where(self, *loc: str | int) -> tuple[str, int, str]:
        """(file, line, key path) of a key of this rule, for findings and explain output."""
        full = ("rules", self.index, *loc)
        return self.file, self.doc.line_of(full), format_loc(full)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def __repr__(self) -> str:
        return f"<Rule {self.id} {self.location}>"
