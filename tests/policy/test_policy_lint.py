"""The linter's findings on purpose-built bad files (written to tmp_path)."""

from __future__ import annotations

import pytest

from proxy.policy import Finding, lint
from proxy.policy.lint import pattern_problem
from proxy.policy.rule import parse_glob
from tests.policy.conftest import CompileYaml

BAD = """
roles:
  admin: [user]
rules:
  - id: dup
    match: {path: /a}
    allow: anonymous
  - id: dup
    match: {path: /b}
    allow: {roles_any: [admn], roles_all: [user, ghost]}
  - id: items
    match: {path: "/items/{id}", methods: [GET]}
    allow: anonymous
  - id: items-star
    match: {path: "/items/*", methods: [GET, HEAD]}
    allow: anonymous
  - id: weird
    match: {path: ["/x/./y", "/x//y", "/%7Euser", "relative", "/caf\\u00e9", "/a%2fb", "/ok/"]}
    allow: anonymous
tests:
  - {request: {method: GET, path: /a, roles: [intern]}, expect: allow, rule: nope}
"""


@pytest.fixture
def findings(compile_yaml: CompileYaml) -> list[Finding]:
    return lint(compile_yaml(BAD, strict=False))


def test_errors_in_file_order(findings: list[Finding]) -> None:
    file = findings[0].file
    assert all(f.file == file and f.level == "error" for f in findings)
    assert [(f.line, f.message) for f in findings] == [
        (7, f"rules[1].id: duplicate rule id 'dup' (first defined at {file}:4)"),
        (9, "rules[1].allow.roles_any[0]: unknown role 'admn' (declare it under roles:)"),
        (9, "rules[1].allow.roles_all[1]: unknown role 'ghost' (declare it under roles:)"),
        (
            13,
            f"rules[3]: rules 'items-star' ({file}:13, path /items/*) and 'items' ({file}:10, path /items/{{id}}) "
            "have equal precedence for GET: make one more specific",
        ),
        (17, "rules[4].match.path[0]: '/x/./y' has a dot segment: canonical paths never do, it can never match"),
        (
            17,
            "rules[4].match.path[1]: '/x//y' has an empty segment ('//'): canonical paths never do, it can never match",
        ),
        (
            17,
            "rules[4].match.path[2]: '/%7Euser': segment '%7Euser' is not canonical (requests arrive as '~user'); "
            "it can never match",
        ),
        (17, "rules[4].match.path[3]: 'relative' does not start with '/': it can never match"),
        (
            17,
            "rules[4].match.path[4]: '/café': segment 'café' is not canonical (requests arrive as 'caf%C3%A9'); "
            "it can never match",
        ),
        (17, "rules[4].match.path[5]: '/a%2fb': segment 'a%2fb' can never appear in a canonical path (encoded '/')"),
        (20, "tests[0].request.roles[0]: unknown role 'intern' (declare it under roles:)"),
        (20, "tests[0].rule: no rule has id 'nope'"),
    ]


@pytest.mark.parametrize(
    "pattern, problem",
    [
        pytest.param("/tasks/{id}/**", None, id="ok"),
        pytest.param("/", None, id="root"),
        pytest.param("/a/", None, id="trailing-slash"),
        pytest.param("/a/...", None, id="three-dots-is-a-name"),
        pytest.param("/a%20b/%C3%A9", None, id="canonical-escapes"),
        pytest.param("/a/..", "dot segment", id="dotdot"),
        pytest.param("//a", "empty segment", id="leading-double-slash"),
        pytest.param("/a%2Db", "not canonical", id="encoded-unreserved"),
        pytest.param("/a%c3%a9", "not canonical", id="lower-case-escape"),
        pytest.param("/a\\b", "backslash", id="backslash"),
        pytest.param("/a%zz", "invalid percent-encoding", id="bad-escape"),
        pytest.param("*/a", "does not start with '/'", id="unrooted"),
    ],
)
def test_pattern_problem(pattern: str, problem: str | None) -> None:
    found = pattern_problem(parse_glob(pattern))
    assert (found is None) if problem is None else (found is not None and problem in found)


SHADOWED = """
rules:
  - id: everything
    match: {path: "/**"}
    allow: {roles_any: [admin]}
  - id: versioned
    match: {path: {regex: "^/v[0-9]+/items$"}}
    allow: anonymous
  - id: task
    match: {path: "/tasks/{id}"}
    allow: authenticated
  - id: numeric-task
    match: {path: {regex: "/tasks/[0-9]+"}}
    allow: anonymous
roles: {admin: []}
"""


def test_shadowed_rules_are_warnings(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml(SHADOWED)  # warnings do not stop the load
    file = policy.rules[0].file
    assert [(f.level, f.line, f.message) for f in policy.findings] == [
        (
            "warning",
            5,
            f"rules[1]: rule 'versioned' never decides a request on the 4 sample requests it matches: "
            f"'everything' ({file}:2) always wins",
        ),
        (
            "warning",
            11,
            f"rules[3]: rule 'numeric-task' never decides a request on the 6 sample requests it matches: "
            f"'task' ({file}:8) always wins",
        ),
    ]
    assert lint(policy) == list(policy.findings)


def test_not_shadowed_when_it_wins_somewhere(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml("""
        rules:
          - id: reads
            match: {path: "/a/{x}", methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]}
            allow: anonymous
          - id: rest
            match: {path: "/a/{x}"}
            allow: anonymous
          - id: host
            match: {path: "/a/{x}", host: "*.example.com", methods: [GET]}
            allow: anonymous
          - id: rx
            match: {path: {regex: "/b/[0-9]+"}}
            allow: anonymous
        """)
    assert policy.findings == ()


def test_regex_without_samples_is_not_reported(compile_yaml: CompileYaml) -> None:
    policy = compile_yaml('rules:\n  - {id: rx, match: {path: {regex: "(a)\\\\1"}}, allow: anonymous}\n')
    assert policy.findings == ()
