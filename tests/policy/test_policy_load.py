"""Loading rule files: every problem is reported at once, as `file:line: key.path: message`."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.policy import PolicyError, compile_files
from tests.policy.conftest import WriteRules


def errors_of(paths: list[Path]) -> list[str]:
    with pytest.raises(PolicyError) as info:
        compile_files(paths)
    return info.value.messages


SHAPE = [
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: anonymous\n    rate: 5\n",
        ":5: rules[0].rate: unknown key",
        id="unknown-rule-key",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a, method: [GET]}\n    allow: anonymous\n",
        ":3: rules[0].match.method: unknown key",
        id="unknown-match-key",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n", ":2: rules[0].allow: required key is missing", id="allow-missing"
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: everyone\n",
        ":4: rules[0].allow: Input should be 'anonymous' or 'authenticated' (got 'everyone')",
        id="allow-unknown-name",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: {roles_any: admin}\n",
        ":4: rules[0].allow.roles_any: Input should be a list",
        id="roles-not-a-list",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: {}\n",
        ":4: rules[0].allow: an empty allow mapping",
        id="allow-empty-mapping",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: [x]\n",
        ":4: rules[0].allow: must be anonymous, authenticated or a mapping of conditions",
        id="allow-wrong-type",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a, methods: []}\n    allow: anonymous\n",
        ":3: rules[0].match.methods: at least one method is required",
        id="methods-empty",
    ),
    pytest.param(
        'rules:\n  - id: a\n    match: {path: /a, methods: ["GE T"]}\n    allow: anonymous\n',
        ":3: rules[0].match.methods: invalid method 'GE T'",
        id="method-not-a-token",
    ),
    pytest.param(
        'rules:\n  - id: a\n    match: {path: {regex: "("}}\n    allow: anonymous\n',
        ":3: rules[0].match.path.regex: invalid regex: missing ), unterminated subpattern",
        id="bad-regex",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: 7}\n    allow: anonymous\n",
        ":3: rules[0].match.path: must be a pattern, a list of patterns or {regex: ...}",
        id="path-type",
    ),
    pytest.param(
        'rules:\n  - id: a\n    match: {path: /a, host: "x.test:80"}\n    allow: anonymous\n',
        ":3: rules[0].match.host: invalid host 'x.test:80'",
        id="host-with-port",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a, client_cidrs: [10.0.0.0/33]}\n    allow: anonymous\n",
        ":3: rules[0].match.client_cidrs[0]: invalid CIDR",
        id="bad-cidr",
    ),
    pytest.param(
        "rules:\n  - id: a b\n    match: {path: /a}\n    allow: anonymous\n",
        ":2: rules[0].id: String should match pattern",
        id="bad-id",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: {claims: {t: {}}}\n",
        ":4: rules[0].allow.claims.t: give at least one of equals, in, equals_header",
        id="empty-claim",
    ),
    pytest.param(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: anonymous\n    mode: audit\n",
        ":5: rules[0].mode: Input should be 'enforce' or 'shadow'",
        id="bad-mode",
    ),
    pytest.param(
        'rules:\n  - id: a\n    match: {path: "/a/**/b"}\n    allow: anonymous\n',
        ":3: rules[0].match.path: '/a/**/b': `**` is only allowed as the last segment",
        id="inner-doublestar",
    ),
    pytest.param(
        'rules:\n  - id: a\n    match: {path: [/a, "/f/*.png"]}\n    allow: anonymous\n',
        ":3: rules[0].match.path[1]: '/f/*.png': segment '*.png': wildcards must fill a whole segment",
        id="partial-wildcard",
    ),
    pytest.param(
        'rules:\n  - id: a\n    match: {path: "/a/{x}/{x}"}\n    allow: anonymous\n',
        ":3: rules[0].match.path: '/a/{x}/{x}': parameter {x} appears twice",
        id="duplicate-param",
    ),
    pytest.param(
        "tests:\n  - {request: {method: GET, path: /}, expect: yes}\n",
        ":2: tests[0].expect: Input should be 'allow' or 'deny'",
        id="bad-expect",
    ),
    pytest.param(
        "tests:\n  - {request: {method: GET, path: /, anonymous: true, roles: [a]}, expect: deny}\n",
        ":2: tests[0].request: an anonymous request has no roles",
        id="anonymous-with-roles",
    ),
    pytest.param("- just\n- a list\n", ":1: (top level): the top level must be a mapping", id="top-level-list"),
    pytest.param("rules: [\n", ":2: invalid YAML", id="yaml-syntax"),
    pytest.param("rules:\n  - id: a\n    id: b\n", ":3: rules[0].id: duplicate key", id="yaml-duplicate-key"),
]


@pytest.mark.parametrize("text, expected", SHAPE)
def test_shape_errors_name_file_line_and_key(write_rules: WriteRules, text: str, expected: str) -> None:
    path = write_rules(text)
    messages = errors_of([path])
    assert any(m.startswith(f"{path}{expected}") for m in messages), messages


def test_every_file_and_problem_reported_together(write_rules: WriteRules) -> None:
    a = write_rules(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: nobody\n  - id: b\n    match: {}\n    allow: anonymous\n",
        "a.yaml",
    )
    b = write_rules("rules:\n  - id: c\n    match: {path: /c}\n    allow: anonymous\n    extra: 1\n", "b.yaml")
    messages = errors_of([a, b])
    assert [m.split(": ")[0] for m in messages] == [f"{a}:4", f"{a}:6", f"{b}:5"]


def test_tie_names_both_rules_files_and_lines(write_rules: WriteRules) -> None:
    a = write_rules(
        'rules:\n  - id: items\n    match: {path: "/items/{id}", methods: [GET, PUT]}\n    allow: anonymous\n', "a.yaml"
    )
    b = write_rules(
        'rules:\n  - id: other\n    match: {path: "/items/*", methods: [GET]}\n    allow: anonymous\n', "b.yaml"
    )
    assert errors_of([a, b]) == [
        f"{b}:2: rules[0]: rules 'other' ({b}:2, path /items/*) and 'items' ({a}:2, path /items/{{id}}) "
        "have equal precedence for GET: make one more specific"
    ]


TIES = [
    pytest.param({"path": "/a"}, {"path": "/a"}, True, id="same-pattern"),
    pytest.param({"path": "/a/{x}"}, {"path": "/a/*"}, True, id="param-equals-star"),
    pytest.param({"path": "/a/**"}, {"path": "/a/**", "methods": ["GET"]}, False, id="methods-break-tie"),
    pytest.param({"path": "/a", "methods": ["GET"]}, {"path": "/a", "methods": ["POST"]}, False, id="disjoint-methods"),
    pytest.param(
        {"path": "/a", "methods": ["GET", "PUT"]}, {"path": "/a", "methods": ["PUT"]}, True, id="overlapping-methods"
    ),
    pytest.param({"path": "/a", "host": "a.test"}, {"path": "/a", "host": "b.test"}, False, id="disjoint-hosts"),
    pytest.param(
        {"path": "/a", "host": "*.x.test"}, {"path": "/a", "host": "api.x.test"}, True, id="wildcard-covers-host"
    ),
    pytest.param(
        {"path": "/a", "client_cidrs": ["10.0.0.0/8"]},
        {"path": "/a", "client_cidrs": ["10.9.0.0/16"]},
        True,
        id="nested-cidrs",
    ),
    pytest.param(
        {"path": "/a", "client_cidrs": ["10.0.0.0/8"]},
        {"path": "/a", "client_cidrs": ["::/0"]},
        False,
        id="v4-v6-cidrs",
    ),
    pytest.param(
        {"path": "/a", "host": "a.test"}, {"path": "/a", "headers_present": ["X-K"]}, True, id="one-condition-each"
    ),
    pytest.param({"path": "/a/{x}"}, {"path": "/{y}/b"}, False, id="different-shapes-rank-differently"),
    pytest.param({"path": {"regex": "^/a$"}}, {"path": {"regex": "^/a$"}}, True, id="same-regex"),
    pytest.param({"path": {"regex": "/v[0-9]+"}}, {"path": {"regex": "/v1|/w"}}, True, id="overlapping-regexes"),
    pytest.param({"path": {"regex": "/v[0-9]+"}}, {"path": {"regex": "/w[0-9]+"}}, False, id="disjoint-regexes"),
]


@pytest.mark.parametrize("first, second, tie", TIES)
def test_ties(write_rules: WriteRules, first: dict[str, object], second: dict[str, object], tie: bool) -> None:
    import json

    rules = [{"id": "one", "match": first, "allow": "anonymous"}, {"id": "two", "match": second, "allow": "anonymous"}]
    path = write_rules(json.dumps({"rules": rules}))  # JSON is YAML
    if tie:
        assert any("equal precedence" in m and "'one'" in m and "'two'" in m for m in errors_of([path]))
    else:
        compile_files([path])


def test_roles_merge_across_files(write_rules: WriteRules) -> None:
    a = write_rules("roles:\n  admin: [user]\n", "a.yaml")
    b = write_rules(
        "roles:\n  admin: [user]\n  auditor: []\nrules:\n  - id: r\n    match: {path: /r}\n"
        "    allow: {roles_any: [user, auditor]}\n",
        "b.yaml",
    )
    policy = compile_files([a, b])
    assert policy.roles.grantors("user") == {"user", "admin"}


def test_role_with_different_parents_is_an_error(write_rules: WriteRules) -> None:
    a = write_rules("roles:\n  user: []\n  admin: [user]\n", "a.yaml")
    b = write_rules("roles:\n  auditor: []\n  admin: [auditor]\n", "b.yaml")
    assert errors_of([a, b]) == [
        f"{b}:3: roles.admin: role 'admin' defined with parents ['auditor'] here and ['user'] at {a}:3"
    ]


def test_role_cycles(write_rules: WriteRules) -> None:
    path = write_rules("roles:\n  a: [b]\n  b: [c]\n  c: [a]\n  d: [d]\n")
    assert errors_of([path]) == [
        f"{path}:2: roles.a: role cycle: a -> b -> c -> a",
        f"{path}:5: roles.d: role cycle: d -> d",
    ]


def test_directory_expands_to_yaml_files(write_rules: WriteRules, tmp_path: Path) -> None:
    write_rules("rules:\n  - id: a\n    match: {path: /a}\n    allow: anonymous\n", "x/a.yaml")
    write_rules("rules:\n  - id: b\n    match: {path: /b}\n    allow: anonymous\n", "x/sub/b.yml")
    write_rules("not yaml at all: [", "x/README.md")
    policy = compile_files([tmp_path / "x"])
    assert [r.id for r in policy.rules] == ["a", "b"]


def test_missing_file(tmp_path: Path) -> None:
    messages = errors_of([tmp_path / "nope.yaml"])
    assert messages[0].startswith(f"{tmp_path / 'nope.yaml'}: cannot read")


def test_strict_false_returns_what_compiles(write_rules: WriteRules) -> None:
    path = write_rules(
        "rules:\n  - id: a\n    match: {path: /a}\n    allow: anonymous\n"
        "  - id: a\n    match: {path: /b}\n    allow: anonymous\n"
    )
    assert "duplicate rule id 'a'" in errors_of([path])[0]
    assert [r.id for r in compile_files([path], strict=False).rules] == ["a", "a"]


def test_shipped_rules_load_clean(shipped: object) -> None:
    from proxy.policy import PolicySet

    assert isinstance(shipped, PolicySet)
    assert shipped.findings == ()
    assert {r.id for r in shipped.rules} >= {"health", "auth", "tasks-read", "tasks-write", "admin"}
