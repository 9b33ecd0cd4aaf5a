"""`bastion test`: run the `tests:` entries of the rule files against the compiled PolicySet.

A test goes through the same steps as a proxied request (canonical path, match, decide), so
`path: /tasks/../admin` is tested the way the proxy would see it. Tests check the *decision*: a rule
in `mode: shadow` that denies is reported as a deny (marked "shadow"), because a test is written for
the day the rule is enforced.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.canonical import PathError, canonical_path
from proxy.identity import Principal
from proxy.policy.compiler import PolicyError, PolicySet, TestCase, compile_files
from proxy.policy.matcher import Match, Probe
from proxy.policy.model import TestRequest


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the proxy would do: `status` 0 when allowed, else 400 (bad path), 401, 403, 404 or 500."""

    allowed: bool
    status: int
    reason: str
    path: str
    match: Match | None = None

    @property
    def rule_id(self) -> str | None:
        return self.match.rule.id if self.match and self.match.rule else None

    def __str__(self) -> str:
        return "allow" if self.allowed else f"deny {self.status}"


def make_principal(
    roles: Sequence[str] = (), scopes: Sequence[str] = (), claims: Mapping[str, Any] | None = None
) -> Principal:
    claims = dict(claims or {})
    return Principal(
        subject=str(claims.get("sub", "test-user")),
        issuer=str(claims.get("iss", "bastion-test")),
        roles=frozenset(roles),
        scopes=frozenset(scopes),
        claims=claims,
    )


def evaluate(
    policy: PolicySet,
    method: str,
    path: str,
    principal: Principal | None,
    *,
    headers: Mapping[str, str] | None = None,
    host: str = "localhost",
    client_ip: str = "127.0.0.1",
    explain: bool = False,
) -> Outcome:
    """The decision for one request, as the RuleMatch and Authorize checks would reach it."""
    try:
        canon = canonical_path(path)
    except PathError as exc:
        return Outcome(False, 400, f"bad path: {exc}", path)
    hdrs = CIMultiDictProxy(CIMultiDict(headers or {}))
    m = policy.match(Probe(method, canon, host, client_ip, hdrs), explain=explain)
    if m.rule is None:
        return Outcome(False, 404, "no rule matches", canon, m)
    if m.ambiguous:
        return Outcome(False, 500, "ambiguous: " + ", ".join(r.id for r in (m.rule, *m.ambiguous)), canon, m)
    d = m.rule.decide(principal, hdrs)
    return Outcome(d.allowed, d.status, d.reason, canon, m)


def evaluate_request(policy: PolicySet, req: TestRequest, *, explain: bool = False) -> Outcome:
    principal = None if req.is_anonymous else make_principal(req.roles, req.scopes, req.claims)
    return evaluate(
        policy,
        req.method,
        req.path,
        principal,
        headers=req.headers,
        host=req.host,
        client_ip=req.client_ip,
        explain=explain,
    )


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False  # not a pytest class

    case: TestCase
    outcome: Outcome
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def run_tests(policy: PolicySet) -> list[TestResult]:
    results = []
    for case in policy.tests:
        spec = case.spec
        out = evaluate_request(policy, spec.request)
        failures = []
        if ("allow" if out.allowed else "deny") != spec.expect:
            failures.append(f"expected {spec.expect}, got {out} ({out.reason})")
        if spec.rule is not None and out.rule_id != spec.rule:
            failures.append(f"expected rule {spec.rule}, got {out.rule_id or 'none'}")
        if spec.status is not None and out.status != spec.status:
            failures.append(f"expected status {spec.status}, got {out.status or 'allowed'}")
        results.append(TestResult(case, out, tuple(failures)))
    return results


def describe(req: TestRequest) -> str:
    parts = [req.method, req.path]
    if req.is_anonymous:
        parts.append("anonymous")
    else:
        parts.append("roles=" + (",".join(req.roles) or "-"))
        if req.scopes:
            parts.append("scopes=" + ",".join(req.scopes))
        if req.claims:
            parts.append("claims=" + ",".join(f"{k}:{v}" for k, v in req.claims.items()))
    return " ".join(parts)


def report(results: Sequence[TestResult], out: TextIO = sys.stdout) -> int:
    """Print one table row per test; return the exit code: 0 when every test passed, else 1."""
    rows: list[list[str]] = [["WHERE", "REQUEST", "EXPECTED", "GOT", "RULE", "RESULT"]]
    for r in results:
        spec, o = r.case.spec, r.outcome
        expected = spec.expect + (f" {spec.status}" if spec.status else "") + (f" ({spec.rule})" if spec.rule else "")
        shadow = " (shadow)" if o.match and o.match.rule and o.match.rule.mode == "shadow" and not o.allowed else ""
        where = f"{r.case.file}:{r.case.line}"
        rows.append([where, describe(spec.request), expected, f"{o}{shadow}", o.rule_id or "-"])
        rows[-1].append("PASS" if r.passed else "FAIL")
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[5], file=out)
    failed = [r for r in results if not r.passed]
    for r in failed:
        for why in r.failures:
            print(f"{r.case.file}:{r.case.line}: {why}", file=out)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    return 1 if failed else 0


def main(paths: Sequence[str | Path], out: TextIO = sys.stdout) -> int:
    """`bastion test PATH...`: 0 all tests pass, 1 a test failed, 2 the rules do not load."""
    try:
        policy = compile_files(paths)
    except PolicyError as exc:
        for message in exc.messages:
            print(message, file=out)
        return 2
    return report(run_tests(policy), out)
