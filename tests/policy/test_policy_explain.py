"""`bastion explain`: the decision, the rule that decided, and the rules that lost and why."""

from __future__ import annotations

from proxy.policy import PolicySet
from proxy.policy.explain import explain
from tests.policy.conftest import CompileYaml

RULES = """
roles: {admin: [user]}
rules:
  - id: everything
    match: {path: "/**"}
    allow: {roles_any: [admin]}
  - id: tasks-tree
    match: {path: "/tasks/**", methods: [GET]}
    allow: authenticated
  - id: task
    match: {path: "/tasks/{id}"}
    allow: {roles_any: [user]}
  - id: task-get
    match: {path: "/tasks/{id}", methods: [GET]}
    allow: {roles_any: [user], scopes_all: ["tasks:read"]}
  - id: task-office
    match: {path: "/tasks/{id}", methods: [GET], client_cidrs: [10.0.0.0/8]}
    allow: anonymous
    mode: shadow
"""


def test_explain_winner_and_losers(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml(RULES)
    f = policy.rules[0].file
    text = explain(policy, "GET", "/tasks/7", roles=["admin"], client_ip="10.1.1.1")
    assert text.splitlines() == [
        "request:  GET /tasks/7",
        "identity: roles=admin (effective: admin,user) scopes=-",
        "decision: allow: anonymous allowed",
        f"rule:     task-office  {f}:15  path /tasks/{{id}}  methods GET  mode shadow",
        "matched but lost:",
        f"  1. task-get  {f}:12  path /tasks/{{id}}: fewer match conditions (host, headers_present, client_cidrs)",
        f"  2. task  {f}:9  path /tasks/{{id}}: matches any method; the winner lists its methods",
        f"  3. tasks-tree  {f}:6  path /tasks/**: less specific path: at segment 2 a parameter beats **",
        f"  4. everything  {f}:3  path /**: less specific path: at segment 1 a literal segment beats **",
    ]


def test_explain_denial_and_canonical_path(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml(RULES)
    text = explain(policy, "GET", "/x/../tasks/7", roles=["user"])
    assert "request:  GET /x/../tasks/7  (canonical: /tasks/7)" in text
    assert "decision: deny 403: scope missing: tasks:read" in text
    assert "rule:     task-get " in text


def test_explain_anonymous_and_no_rule(shipped: PolicySet) -> None:
    text = explain(shipped, "GET", "/tasks")
    assert "identity: anonymous" in text and "decision: deny 401: authentication required" in text
    assert (
        explain(shipped, "PUT", "/nowhere", roles=["admin"]).splitlines()[-1] == "decision: deny 404: no rule matches"
    )
    assert (
        explain(shipped, "GET", "/%2e%2e/x").splitlines()[-1]
        == "decision: deny 400: bad path: dot segment above the root"
    )


def test_explain_shadow_denial(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml(
        RULES.replace("allow: anonymous\n    mode: shadow", "allow: {roles_any: [admin]}\n    mode: shadow")
    )
    text = explain(policy, "GET", "/tasks/7", client_ip="10.0.0.1")
    assert "shadow mode: the proxy logs would_deny and lets the request pass" in text


def test_explain_claims_and_headers(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml("""
        rules:
          - id: t
            match: {path: /t}
            allow: {claims: {tenant: {equals_header: X-Tenant}}}
        """)
    assert "decision: allow" in explain(policy, "GET", "/t", claims={"tenant": "a"}, headers={"X-Tenant": "a"})
    assert "does not equal header" in explain(policy, "GET", "/t", claims={"tenant": "a"}, headers={"X-Tenant": "b"})
    assert "decision: deny 403" in explain(policy, "GET", "/t", anonymous=False)
