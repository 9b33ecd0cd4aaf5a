"""The RuleMatch and Authorize pipeline checks: status, reason, log fields, shadow modes, hot swap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proxy.checks.rules import Authorize, RuleMatch
from proxy.decision import Denial, Reason
from proxy.pipeline import Pipeline
from proxy.policy import PolicyHolder, PolicySet
from tests.policy.conftest import ROOT, CompileYaml, MakeCtx, user

RULES = """
roles: {admin: [user]}
rules:
  - id: public
    match: {path: /public}
    allow: anonymous
  - id: tasks
    match: {path: "/tasks/**"}
    allow: {roles_any: [user]}
  - id: beta
    match: {path: /beta}
    allow: {roles_any: [admin]}
    mode: shadow
"""


@pytest.fixture
def holder(compile_yaml: CompileYaml) -> PolicyHolder:
    return PolicyHolder(compile_yaml(RULES))


async def test_allow(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    ctx = make_ctx("GET", "/tasks/1", principal=user("admin"))
    await Pipeline([RuleMatch(holder), Authorize()]).run(ctx)
    assert ctx.rule.id == "tasks"
    assert ctx.log == {"bastion.rule": "tasks", "bastion.decision": "allow"}


async def test_anonymous_rule_with_or_without_principal(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    for who in (None, user()):
        ctx = make_ctx("POST", "/public", principal=who)
        await RuleMatch(holder)(ctx)
        assert ctx.rule.allows_anonymous
        await Authorize()(ctx)
        assert ctx.log["bastion.decision"] == "allow"


async def test_no_rule_is_404_and_reveals_nothing(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    ctx = make_ctx("GET", "/admin")
    with pytest.raises(Denial) as info:
        await RuleMatch(holder)(ctx)
    d = info.value
    assert (d.status, d.reason, d.headers) == (404, Reason.NO_RULE, {})
    assert d.detail == "no rule matches GET /admin"
    assert d.problem("r") == {
        "type": "https://bastion.dev/problems/no-rule",
        "title": "Not Found",
        "status": 404,
        "request_id": "r",
    }
    assert ctx.rule is None and ctx.log == {"bastion.decision": "deny"}


async def test_missing_identity_is_401_with_challenge(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    ctx = make_ctx("GET", "/tasks")
    await RuleMatch(holder)(ctx)
    with pytest.raises(Denial) as info:
        await Authorize()(ctx)
    d = info.value
    assert (d.status, d.reason, d.headers) == (401, Reason.AUTH_REQUIRED, {"WWW-Authenticate": "Bearer"})
    assert d.detail == "authentication required"
    assert ctx.log == {"bastion.rule": "tasks", "bastion.decision": "deny"}


async def test_lacking_role_is_403_and_rule_stays_in_the_log(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    ctx = make_ctx("DELETE", "/tasks/1", principal=user("guest"))
    await RuleMatch(holder)(ctx)
    with pytest.raises(Denial) as info:
        await Authorize()(ctx)
    d = info.value
    assert (d.status, d.reason, d.headers) == (403, Reason.FORBIDDEN, {})
    assert d.detail == "role missing: any of [user]"
    body = d.problem("r")
    assert "tasks" not in str(body) and "role" not in str(body)
    assert ctx.log == {"bastion.rule": "tasks", "bastion.decision": "deny"}


async def test_rule_in_shadow_mode_logs_would_deny(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    ctx = make_ctx("GET", "/beta", principal=user("user"))
    await Pipeline([RuleMatch(holder), Authorize()]).run(ctx)
    assert ctx.log == {
        "bastion.rule": "beta",
        "bastion.decision": "would_deny",
        "bastion.reason": "forbidden",
        "bastion.detail": "403 role missing: any of [admin]",
    }


@pytest.mark.parametrize(
    "method, path, reason",
    [
        pytest.param("GET", "/tasks/1", "auth_required", id="401"),
        pytest.param("GET", "/nowhere", "no_rule", id="404"),
    ],
)
async def test_global_shadow_mode(holder: PolicyHolder, make_ctx: MakeCtx, method: str, path: str, reason: str) -> None:
    ctx = make_ctx(method, path)
    await Pipeline([RuleMatch(holder, shadow=True), Authorize(shadow=True)]).run(ctx)
    assert ctx.log["bastion.decision"] == "would_deny"
    assert ctx.log["bastion.reason"] == reason


async def test_global_shadow_no_rule_is_anonymous_friendly(holder: PolicyHolder, make_ctx: MakeCtx) -> None:
    ctx = make_ctx("GET", "/nowhere")
    await RuleMatch(holder, shadow=True)(ctx)
    assert ctx.rule is holder.current.no_rule and ctx.rule.allows_anonymous
    await Authorize()(ctx)  # the stand-in rule is itself in shadow mode: never blocks
    assert ctx.log == {
        "bastion.rule": "(no rule)",
        "bastion.decision": "would_deny",
        "bastion.reason": "no_rule",
        "bastion.detail": "404 no rule matches",
    }


async def test_authorize_without_rule_fails_closed(make_ctx: MakeCtx) -> None:
    with pytest.raises(Denial) as info:
        await Authorize(shadow=True)(make_ctx("GET", "/x"))
    assert info.value.status == 404


async def test_rule_set_is_read_once_per_request(
    holder: PolicyHolder, compile_yaml: CompileYaml, make_ctx: MakeCtx
) -> None:
    ctx = make_ctx("GET", "/tasks/1", principal=user("user"))
    await RuleMatch(holder)(ctx)
    old = holder.swap(
        compile_yaml(
            "rules:\n  - {id: locked, match: {path: /**}, allow: {roles_any: [root]}}\nroles: {root: []}\n",
            name="new.yaml",
        )
    )
    assert old.by_id["tasks"] is ctx.rule
    await Authorize()(ctx)  # decided by the rule the request started with
    assert ctx.log["bastion.decision"] == "allow"
    later = make_ctx("GET", "/tasks/1", principal=user("user"))
    await RuleMatch(holder)(later)
    assert later.rule.id == "locked"


async def test_runtime_tie_fails_closed(compile_yaml: CompileYaml, make_ctx: MakeCtx) -> None:
    policy: PolicySet = compile_yaml(
        'rules:\n  - {id: a, match: {path: {regex: "/v.*"}}, allow: anonymous}\n'
        '  - {id: b, match: {path: {regex: "/v.*"}}, allow: anonymous}\n',
        strict=False,
    )
    ctx = make_ctx("GET", "/v1")
    with pytest.raises(Denial) as info:
        await RuleMatch(PolicyHolder(policy))(ctx)
    assert (info.value.status, info.value.reason) == (500, Reason.AMBIGUOUS_RULE)
    assert info.value.detail == "rules a, b tie for GET /v1"


def test_policy_modules_do_not_import_aiohttp() -> None:
    code = (
        "import sys, proxy.policy, proxy.policy.explain, proxy.policy.testing, proxy.checks.rules;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
