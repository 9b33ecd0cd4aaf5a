"""Who may pass a rule: compiled `allow` conditions, the role graph, and the Decision they return.

Everything is resolved when the rules load. Role inheritance is turned around: instead of expanding
a principal's roles on every request, each role a condition names is replaced by the frozenset of
token roles that grant it (`user` -> {user, admin} when admin inherits user), so a check is one
`isdisjoint` per named role. Claim paths are split once; values are compared type-strictly (YAML's
`true` never equals a claim `1`, which plain Python `==` would allow).

>>> graph = RoleGraph({"admin": ("user",)})
>>> sorted(graph.grantors("user"))
['admin', 'user']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from proxy.identity import Principal
from proxy.policy.model import AllowSpec, ClaimSpec


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of one rule for one principal. `status` is 0 when allowed, else 401 or 403."""

    allowed: bool
    status: int
    reason: str


ALLOW_ANONYMOUS = Decision(True, 0, "anonymous allowed")
ALLOW = Decision(True, 0, "conditions met")
AUTH_REQUIRED = Decision(False, 401, "authentication required")


class RoleGraph:
    """Role inheritance, resolved once. `parents[r]` are the roles `r` inherits (admin: [user])."""

    def __init__(self, parents: Mapping[str, tuple[str, ...]]) -> None:
        self.parents = dict(parents)
        self.known = frozenset(self.parents) | frozenset(p for ps in self.parents.values() for p in ps)
        self.implied = {role: self._closure(role) for role in self.known}
        granted: dict[str, set[str]] = {role: set() for role in self.known}
        for role, implied in self.implied.items():
            for r in implied:
                granted[r].add(role)
        self._grantors = {role: frozenset(g) for role, g in granted.items()}

    def _closure(self, role: str) -> frozenset[str]:
        seen, todo = {role}, [role]
        while todo:
            for parent in self.parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return frozenset(seen)

    def grantors(self, role: str) -> frozenset[str]:
        """The token roles that give `role` (itself included); an undeclared role is granted only by itself."""
        return self._grantors.get(role, frozenset((role,)))

    def effective(self, roles: frozenset[str]) -> frozenset[str]:
        """The closure of a principal's token roles (for display; conditions use `grantors`)."""
        out: set[str] = set()
        for r in roles:
            out |= self.implied.get(r, {r})
        return frozenset(out)


def claim_value(claims: Mapping[str, Any], path: tuple[str, ...], name: str) -> tuple[bool, Any]:
    """Look a claim up by its literal name first (`https://x/roles`), then as a dotted path."""
    if name in claims:
        return True, claims[name]
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    return (type(value).__name__, value)


class ClaimCheck:
    __slots__ = ("name", "path", "allowed", "header")

    def __init__(self, name: str, spec: ClaimSpec) -> None:
        self.name = name
        self.path = tuple(name.split("."))
        allowed: frozenset[tuple[str, Any]] | None = None
        if spec.equals is not None:
            allowed = frozenset((_key(spec.equals),))
        if spec.in_ is not None:
            values = frozenset(_key(v) for v in spec.in_)
            allowed = values if allowed is None else allowed & values
        self.allowed = allowed
        self.header = spec.equals_header

    def failure(self, claims: Mapping[str, Any], headers: MultiMapping[str]) -> str | None:
        """None when the claim passes, else why it does not (for the log)."""
        found, value = claim_value(claims, self.path, self.name)
        if not found:
            return f"claim {self.name} missing"
        values = value if isinstance(value, list) else [value]
        if self.header is not None:
            sent = headers.getall(self.header, [])
            if len(sent) != 1:  # SECURITY: a repeated header has no single value to compare with
                return f"header {self.header} must appear exactly once"
            values = [v for v in values if isinstance(v, str | int) and not isinstance(v, bool) and str(v) == sent[0]]
            if not values:
                return f"claim {self.name} does not equal header {self.header}"
        if self.allowed is not None:
            try:
                if not any(_key(v) in self.allowed for v in values):
                    return f"claim {self.name} not in allowed values"
            except TypeError:  # an unhashable claim value (object) never equals a scalar
                return f"claim {self.name} not in allowed values"
        return None


class Condition:
    """A compiled `allow`. `decide()` is the whole per-request cost of authorisation."""

    __slots__ = ("anonymous", "roles_any", "roles_all", "scopes_any", "scopes_all", "claims", "_any_label")

    def __init__(self, spec: str | AllowSpec, roles: RoleGraph) -> None:
        self.anonymous = spec == "anonymous"
        self.roles_any: frozenset[str] | None = None
        self.roles_all: tuple[tuple[str, frozenset[str]], ...] = ()
        self.scopes_any: frozenset[str] | None = None
        self.scopes_all: frozenset[str] = frozenset()
        self.claims: tuple[ClaimCheck, ...] = ()
        self._any_label = ""
        if isinstance(spec, AllowSpec):
            if spec.roles_any:
                self.roles_any = frozenset().union(*(roles.grantors(r) for r in spec.roles_any))
                self._any_label = ", ".join(spec.roles_any)
            self.roles_all = tuple((r, roles.grantors(r)) for r in spec.roles_all or ())
            self.scopes_any = frozenset(spec.scopes_any) if spec.scopes_any else None
            self.scopes_all = frozenset(spec.scopes_all or ())
            self.claims = tuple(ClaimCheck(name, c) for name, c in (spec.claims or {}).items())

    def decide(self, principal: Principal | None, headers: MultiMapping[str]) -> Decision:
        if self.anonymous:
            return ALLOW_ANONYMOUS
        if principal is None:
            return AUTH_REQUIRED
        if self.roles_any is not None and principal.roles.isdisjoint(self.roles_any):
            return Decision(False, 403, f"role missing: any of [{self._any_label}]")
        for role, grantors in self.roles_all:
            if principal.roles.isdisjoint(grantors):
                return Decision(False, 403, f"role missing: {role}")
        if self.scopes_any is not None and principal.scopes.isdisjoint(self.scopes_any):
            return Decision(False, 403, f"scope missing: any of [{', '.join(sorted(self.scopes_any))}]")
        if not self.scopes_all <= principal.scopes:
            return Decision(False, 403, f"scope missing: {', '.join(sorted(self.scopes_all - principal.scopes))}")
        for check in self.claims:
            why = check.failure(principal.claims, headers)
            if why is not None:
                return Decision(False, 403, why)
        return ALLOW
