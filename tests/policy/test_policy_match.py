"""Which rule decides a request, and what it says: precedence, conditions, role inheritance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.identity import Principal
from proxy.policy import PolicySet, Probe
from proxy.policy.conditions import RoleGraph
from tests.policy.conftest import CompileYaml, user

RULES = """
roles:
  admin: [editor]
  editor: [user]
  user: []
  auditor: []
rules:
  - id: tasks-tree
    match: {path: "/tasks/**"}
    allow: authenticated
  - id: tasks-item
    match: {path: "/tasks/{id}"}
    allow: {roles_any: [user]}
  - id: tasks-item-get
    match: {path: "/tasks/{id}", methods: [GET]}
    allow: anonymous
  - id: tasks-export
    match: {path: /tasks/export}
    allow: {roles_all: [editor, auditor]}
  - id: tasks-comments
    match: {path: "/tasks/*/comments"}
    allow: {scopes_any: ["comments:read", "comments:write"]}
  - id: tasks-slash
    match: {path: /tasks/}
    allow: anonymous
  - id: versioned
    match: {path: {regex: "^/v[0-9]+/items$"}}
    allow: anonymous
  - id: v1-items
    match: {path: /v1/items, methods: [POST]}
    allow: {scopes_all: ["items:write", "items:read"]}
  - id: root
    match: {path: /, methods: [GET]}
    allow: anonymous
  - id: internal
    match: {path: "/internal/**", client_cidrs: [10.0.0.0/8, "fd00::/8"]}
    allow: anonymous
  - id: tenant
    match: {path: "/tenants/{t}/**"}
    allow: {claims: {tenant: {equals_header: X-Tenant}, plan: {in: [pro, enterprise]}}}
  - id: realm
    match: {path: "/realm/**"}
    allow: {claims: {realm_access.roles: {equals: admin}, "https://example.com/verified": {equals: true}}}
  - id: hosted
    match: {path: "/hosted/**", host: "*.example.com"}
    allow: anonymous
  - id: hosted-api
    match: {path: "/hosted/**", host: api.example.com, headers_present: [X-Api-Key]}
    allow: {roles_any: [admin]}
"""

VERIFIED = "https://example.com/verified"
REALM_OK = {"realm_access": {"roles": ["user", "admin"]}, VERIFIED: True}
TENANT = user(claims={"tenant": "acme", "plan": "pro"})
ACME = {"headers": {"X-Tenant": "acme"}}


@pytest.fixture
def policy(compile_yaml: CompileYaml) -> PolicySet:
    return compile_yaml(RULES)


def decide(
    policy: PolicySet,
    method: str,
    path: str,
    who: Principal | None,
    *,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    host: str = "api.example.com",
    client_ip: str = "203.0.113.5",
) -> tuple[str | None, int]:
    hdrs = CIMultiDictProxy(CIMultiDict(headers or {}))
    m = policy.match(Probe(method, path, host, client_ip, hdrs))
    if m.rule is None:
        return None, 404
    d = m.rule.decide(who, hdrs)
    assert d.allowed == (d.status == 0)
    return m.rule.id, d.status


P = pytest.param
DECISIONS = [
    P("GET", "/tasks/7", None, {}, "tasks-item-get", 0, id="methods-beat-any-method"),
    P("DELETE", "/tasks/7", None, {}, "tasks-item", 401, id="any-method-rule-anonymous-401"),
    P("DELETE", "/tasks/7", user("user"), {}, "tasks-item", 0, id="role-user"),
    P("DELETE", "/tasks/7", user("admin"), {}, "tasks-item", 0, id="inherit-two-levels"),
    P("DELETE", "/tasks/7", user("auditor"), {}, "tasks-item", 403, id="unrelated-role-403"),
    P("DELETE", "/tasks/7", user(), {}, "tasks-item", 403, id="no-roles-403"),
    P("GET", "/tasks/export", user("editor", "auditor"), {}, "tasks-export", 0, id="literal-beats-param"),
    P("GET", "/tasks/export", user("admin", "auditor"), {}, "tasks-export", 0, id="roles-all-inherited"),
    P("GET", "/tasks/export", user("editor"), {}, "tasks-export", 403, id="roles-all-one-missing"),
    P("GET", "/tasks/export", user("user", "auditor"), {}, "tasks-export", 403, id="roles-all-parent-not-child"),
    P("GET", "/tasks", None, {}, "tasks-tree", 401, id="doublestar-matches-zero-segments"),
    P("GET", "/tasks", user(), {}, "tasks-tree", 0, id="authenticated-no-roles"),
    P("GET", "/tasks/", None, {}, "tasks-slash", 0, id="written-trailing-slash"),
    P("GET", "/tasks/7/comments", user(scopes=("comments:write",)), {}, "tasks-comments", 0, id="star-scopes-any"),
    P("GET", "/tasks/7/comments", user("admin"), {}, "tasks-comments", 403, id="scopes-any-missing"),
    P("GET", "/tasks/7/comments/9", user(), {}, "tasks-tree", 0, id="doublestar-deep"),
    P("GET", "/tasks//comments", user(), {}, "tasks-tree", 0, id="param-never-empty"),
    P("GET", "/v2/items", None, {}, "versioned", 0, id="regex"),
    P("GET", "/v1/items", None, {}, "versioned", 0, id="regex-when-glob-method-differs"),
    P("POST", "/v1/items", user(scopes=("items:write", "items:read")), {}, "v1-items", 0, id="glob-beats-regex"),
    P("POST", "/v1/items", user(scopes=("items:write",)), {}, "v1-items", 403, id="scopes-all-one-missing"),
    P("GET", "/v1/items/", None, {}, None, 404, id="regex-fullmatch"),
    P("GET", "/v1/itemsx", None, {}, None, 404, id="regex-anchored"),
    P("GET", "/", None, {}, "root", 0, id="root"),
    P("POST", "/", None, {}, None, 404, id="root-other-method"),
    P("GET", "/nothing", user("admin"), {}, None, 404, id="no-rule"),
    P("get", "/tasks/7", None, {}, "tasks-item", 401, id="methods-case-sensitive"),
    P("GET", "/internal/x", None, {"client_ip": "10.1.2.3"}, "internal", 0, id="cidr-v4"),
    P("GET", "/internal/x", None, {"client_ip": "fd00::1"}, "internal", 0, id="cidr-v6"),
    P("GET", "/internal/x", None, {"client_ip": "::ffff:10.0.0.1"}, "internal", 0, id="cidr-v4-mapped"),
    P("GET", "/internal/x", None, {}, None, 404, id="cidr-outside"),
    P("GET", "/internal/x", None, {"client_ip": "not-an-ip"}, None, 404, id="cidr-unparsable-ip"),
    P("GET", "/tenants/acme/a", TENANT, ACME, "tenant", 0, id="claim-header"),
    P("GET", "/tenants/acme/a", TENANT, {"headers": {"X-Tenant": "evil"}}, "tenant", 403, id="claim-header-mismatch"),
    P("GET", "/tenants/acme/a", TENANT, {"headers": [("X-Tenant", "acme")] * 2}, "tenant", 403, id="header-twice"),
    P("GET", "/tenants/acme/a", TENANT, {}, "tenant", 403, id="claim-header-absent"),
    P("GET", "/tenants/acme/a", user(claims={"tenant": "acme", "plan": "free"}), ACME, "tenant", 403, id="claim-in"),
    P("GET", "/tenants/acme/a", user(claims={"plan": "pro"}), ACME, "tenant", 403, id="claim-missing"),
    P("GET", "/realm/a", user(claims=REALM_OK), {}, "realm", 0, id="claim-dotted-path-and-literal-name"),
    P("GET", "/realm/a", user(claims={**REALM_OK, "realm_access": {"roles": ["user"]}}), {}, "realm", 403,
      id="claim-list-without-value"),
    P("GET", "/realm/a", user(claims={**REALM_OK, VERIFIED: 1}), {}, "realm", 403, id="claim-bool-is-not-int"),
    P("GET", "/hosted/x", user("user"), {"host": "API.example.com:8443", "headers": {"X-Api-Key": "k"}},
      "hosted-api", 403, id="more-conditions-win"),
    P("GET", "/hosted/x", None, {"host": "api.example.com"}, "hosted", 0, id="header-absent-falls-back"),
    P("GET", "/hosted/x", None, {"host": "other.example.com", "headers": {"X-Api-Key": "k"}}, "hosted", 0,
      id="wildcard-host"),
    P("GET", "/hosted/x", None, {"host": "example.com"}, None, 404, id="wildcard-excludes-bare-domain"),
    P("GET", "/hosted/x", None, {"host": "evilexample.com"}, None, 404, id="wildcard-needs-dot"),
]  # fmt: skip


@pytest.mark.parametrize("method, path, who, extra, rule, status", DECISIONS)
def test_decision(
    policy: PolicySet,
    method: str,
    path: str,
    who: Principal | None,
    extra: dict[str, Any],
    rule: str | None,
    status: int,
) -> None:
    assert decide(policy, method, path, who, **extra) == (rule, status)


def _rule(rid: str, path: Any, **more: Any) -> dict[str, Any]:
    return {"id": rid, "match": {"path": path, **more}, "allow": "anonymous"}


PRECEDENCE = [
    P([_rule("lit", "/a/b"), _rule("par", "/a/{x}")], "GET", "/a/b", "lit", id="literal-beats-param"),
    P([_rule("par", "/a/{x}"), _rule("rest", "/a/**")], "GET", "/a/b", "par", id="param-beats-doublestar"),
    P([_rule("star", "/a/*"), _rule("rest", "/a/**")], "GET", "/a/b", "star", id="star-beats-doublestar"),
    P([_rule("left", "/a/b/{y}"), _rule("right", "/a/{x}/c")], "GET", "/a/b/c", "left", id="compared-from-the-left"),
    P([_rule("exact", "/a"), _rule("rest", "/a/**")], "GET", "/a", "exact", id="end-beats-doublestar"),
    P([_rule("short", "/a/**"), _rule("long", "/a/b/**")], "GET", "/a/b/c", "long", id="longer-literal-prefix"),
    P([_rule("short", "/a/**"), _rule("long", "/a/b/**")], "GET", "/a/c", "short", id="shorter-prefix-elsewhere"),
    P([_rule("any", "/a"), _rule("get", "/a", methods=["GET"])], "GET", "/a", "get", id="methods-beat-any"),
    P([_rule("any", "/a"), _rule("get", "/a", methods=["GET"])], "POST", "/a", "any", id="any-method-fallback"),
    P([_rule("rx", {"regex": "^/a$"}), _rule("all", "/**")], "GET", "/a", "all", id="regex-ranks-last"),
    P([_rule("rx", {"regex": "/a"}), _rule("post", "/a", methods=["POST"])], "GET", "/a", "rx", id="regex-fallback"),
    P([_rule("plain", "/a"), _rule("host", "/a", host="x.test")], "GET", "/a", "host", id="host-narrows"),
    P([_rule("all", "/**")], "GET", "/", "all", id="doublestar-matches-root"),
    P([_rule("multi", ["/x", "/a/{id}"]), _rule("rest", "/a/**")], "GET", "/a/1", "multi", id="pattern-list"),
]


@pytest.mark.parametrize("rules, method, path, winner", PRECEDENCE)
@pytest.mark.parametrize("order", ["as-written", "reversed"])
def test_precedence(
    policy_from: Callable[[Mapping[str, Any]], PolicySet],
    rules: list[dict[str, Any]],
    method: str,
    path: str,
    winner: str,
    order: str,
) -> None:
    policy = policy_from({"rules": rules if order == "as-written" else rules[::-1]})
    m = policy.match(Probe(method, path, host="x.test"), explain=True)
    assert m.rule is not None and m.rule.id == winner
    assert not m.ambiguous
    # the hot path (no losers) agrees with explain
    fast = policy.match(Probe(method, path, host="x.test"))
    assert fast.rule is m.rule and fast.candidates == ()


def test_losers_in_precedence_order(policy_from: Callable[[Mapping[str, Any]], PolicySet]) -> None:
    policy = policy_from(
        {
            "rules": [
                _rule("all", "/**"),
                _rule("rest", "/a/**"),
                _rule("rx", {"regex": "/a/.*"}),
                _rule("par", "/a/{x}"),
                _rule("lit", "/a/b"),
            ]
        }
    )
    m = policy.match(Probe("GET", "/a/b"), explain=True)
    assert m.rule is not None and m.rule.id == "lit"
    assert [r.id for r in m.losers] == ["par", "rest", "all", "rx"]


def test_role_graph_closure() -> None:
    graph = RoleGraph({"admin": ("editor", "billing"), "editor": ("user",), "user": ()})
    assert graph.effective(frozenset({"admin"})) == {"admin", "editor", "billing", "user"}
    assert graph.grantors("user") == {"user", "editor", "admin"}
    assert graph.grantors("billing") == {"billing", "admin"}
    assert graph.grantors("undeclared") == {"undeclared"}
    assert graph.effective(frozenset({"undeclared"})) == {"undeclared"}


def test_no_warnings_for_this_set(policy: PolicySet) -> None:
    assert policy.findings == ()


def test_rule_exposes_what_authentication_needs(policy: PolicySet) -> None:
    rule = policy.by_id["tasks-item-get"]
    assert rule.allows_anonymous and rule.mode == "enforce"
    assert rule.file.endswith("rules.yaml") and rule.line == 13
    assert not policy.by_id["tasks-item"].allows_anonymous


CACHE_RULES = """
rules:
  - id: item
    match: {path: "/items/{id}", methods: [GET]}
    allow: anonymous
  - id: items-any
    match: {path: "/items/**"}
    allow: authenticated
"""


def test_a_rule_set_without_host_header_or_address_conditions_caches_by_method_and_path(
    compile_yaml: CompileYaml,
) -> None:
    policy = compile_yaml(CACHE_RULES)
    probes = [Probe("GET", "/items/1"), Probe("POST", "/items/1"), Probe("GET", "/items/1/x"), Probe("GET", "/no")]
    first = [policy.match(p) for p in probes]
    again = [policy.match(p) for p in probes]
    assert [m.rule.id if m.rule else None for m in first] == ["item", "items-any", "items-any", None]
    assert all(a is b for a, b in zip(first, again, strict=True))  # the cached Match object itself
    assert policy.match(Probe("GET", "/items/1"), explain=True).losers  # explain is never served from the cache
    long = Probe("GET", "/items/" + "a" * 300)  # long keys are never kept: a client cannot pin memory with them
    assert policy.match(long).rule is not None and policy.match(long) is not policy.match(long)


def test_a_rule_set_with_a_host_condition_is_not_cached(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml(
        CACHE_RULES
        + """
  - id: hosted
    match: {path: "/items/{id}", methods: [GET], host: api.example.com}
    allow: anonymous
"""
    )
    assert policy.match(Probe("GET", "/items/1", host="api.example.com")).rule.id == "hosted"  # type: ignore[union-attr]
    assert policy.match(Probe("GET", "/items/1", host="other.example.com")).rule.id == "item"  # type: ignore[union-attr]
