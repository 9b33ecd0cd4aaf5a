"""`bastion test`: the tests: entries of the rule files, on the shipped rules and on a failing file."""

from __future__ import annotations

import io
from pathlib import Path

from proxy.policy import PolicySet, compile_files
from proxy.policy.testing import main, report, run_tests
from tests.policy.conftest import ROOT, WriteRules


def test_shipped_rules_pass_their_tests(shipped: PolicySet) -> None:
    results = run_tests(shipped)
    assert len(results) >= 20
    assert [r.case.line for r in results if not r.passed] == []
    expects = {(r.case.spec.expect, r.outcome.status) for r in results}
    assert {("allow", 0), ("deny", 401), ("deny", 403), ("deny", 404)} <= expects


def test_main_prints_a_table_and_exits_zero() -> None:
    out = io.StringIO()
    assert main([ROOT / "rules"], out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["WHERE", "REQUEST", "EXPECTED", "GOT", "RULE", "RESULT"]
    assert lines[1].startswith(f"{ROOT / 'rules' / 'tasks.yaml'}:")
    assert all(line.endswith("PASS") for line in lines[1:-1])
    assert lines[-1].endswith(" passed, 0 failed")


FAILING = """
roles: {admin: [user]}
rules:
  - id: tasks
    match: {path: "/tasks/{id}", methods: [GET]}
    allow: {roles_any: [user]}
  - id: beta
    match: {path: /beta}
    allow: {roles_any: [admin], claims: {tenant: {equals_header: X-Tenant}}}
    mode: shadow
  - id: office
    match: {path: /office, client_cidrs: [10.0.0.0/8], host: intranet.test}
    allow: anonymous
tests:
  - {request: {method: GET, path: /tasks/1, roles: [admin]}, expect: allow, rule: tasks}
  - {request: {method: GET, path: /tasks/1}, expect: allow}
  - {request: {method: GET, path: /tasks/1, roles: [user]}, expect: allow, rule: beta}
  - {request: {method: GET, path: /tasks/1, anonymous: false}, expect: deny, status: 401}
  - {request: {method: GET, path: /beta, roles: [admin]}, expect: deny, status: 403, rule: beta}
  - request: {method: GET, path: /beta, roles: [admin], claims: {tenant: t1}, headers: {X-Tenant: t1}}
    expect: allow
  - {request: {method: GET, path: /office, host: intranet.test, client_ip: 10.2.3.4}, expect: allow, rule: office}
  - {request: {method: GET, path: /office, host: intranet.test}, expect: deny, status: 404}
  - {request: {method: GET, path: /tasks/../../etc}, expect: deny, status: 400}
"""


def test_failing_file(write_rules: WriteRules) -> None:
    path = write_rules(FAILING)
    results = run_tests(compile_files([path]))
    assert [(r.case.line, r.failures) for r in results if not r.passed] == [
        (15, ("expected allow, got deny 401 (authentication required)",)),
        (16, ("expected rule beta, got tasks",)),
        (17, ("expected status 401, got 403",)),
    ]
    assert len(results) == 9
    out = io.StringIO()
    assert report(results, out) == 1
    text = out.getvalue()
    rows = {line.split()[0]: line for line in text.splitlines()[1:10]}
    assert rows[f"{path}:15"].split()[-1] == "FAIL"
    assert rows[f"{path}:18"].split()[-5:] == ["deny", "403", "(shadow)", "beta", "PASS"]
    assert "GET /tasks/1 anonymous" in rows[f"{path}:15"]
    assert "GET /tasks/1 roles=-" in rows[f"{path}:17"]
    assert f"{path}:16: expected rule beta, got tasks" in text
    assert text.rstrip().endswith("6 passed, 3 failed")


def test_main_on_rules_that_do_not_load(write_rules: WriteRules, tmp_path: Path) -> None:
    write_rules("rules:\n  - id: a\n    match: {path: /a}\n    allow: maybe\n")
    out = io.StringIO()
    assert main([tmp_path], out) == 2
    assert out.getvalue().startswith(f"{tmp_path / 'rules.yaml'}:4: rules[0].allow:")


def test_main_with_a_failing_test_exits_one(write_rules: WriteRules) -> None:
    path = write_rules(FAILING)
    assert main([path], io.StringIO()) == 1
