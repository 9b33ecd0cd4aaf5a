"""`bastion explain METHOD PATH`: which rule decides a request, what it says, and who lost and why.

Runs the same evaluation as `bastion test` (canonical path, match with losers, decide), then
spells out the precedence step that put each losing rule behind the winner, so an author can see
why `/tasks/**` did not decide `/tasks/7`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy.policy.compiler import PolicySet
from proxy.policy.matcher import Entry
from proxy.policy.rule import LITERAL, PARAM
from proxy.policy.testing import evaluate, make_principal

_KIND = {LITERAL: "a literal segment", PARAM: "a parameter", None: "the end of the path"}


def explain(
    policy: PolicySet,
    method: str,
    path: str,
    roles: Sequence[str] = (),
    scopes: Sequence[str] = (),
    claims: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    host: str = "localhost",
    client_ip: str = "127.0.0.1",
    *,
    anonymous: bool | None = None,
) -> str:
    """A human-readable account. `anonymous=None` means anonymous when no roles, scopes or claims are given."""
    anon = anonymous if anonymous is not None else not (roles or scopes or claims)
    principal = None if anon else make_principal(roles, scopes, claims)
    out = evaluate(policy, method, path, principal, headers=headers, host=host, client_ip=client_ip, explain=True)
    lines = [f"request:  {method} {path}" + (f"  (canonical: {out.path})" if out.path != path else "")]
    if principal is None:
        lines.append("identity: anonymous")
    else:
        effective = ",".join(sorted(policy.roles.effective(principal.roles))) or "-"
        token_roles = ",".join(sorted(principal.roles)) or "-"
        scopes = ",".join(sorted(principal.scopes)) or "-"
        lines.append(f"identity: roles={token_roles} (effective: {effective}) scopes={scopes}")
    lines.append(f"decision: {out}: {out.reason}")
    m = out.match
    if m is None or m.rule is None:
        return "\n".join(lines)
    rule = m.rule
    methods = ",".join(sorted(rule.methods)) if rule.methods is not None else "any"
    lines.append(
        f"rule:     {rule.id}  {rule.location}  path {m.pattern.text if m.pattern else '-'}  "
        f"methods {methods}  mode {rule.mode}"
    )
    if rule.mode == "shadow" and not out.allowed:
        lines.append("          shadow mode: the proxy logs would_deny and lets the request pass")
    if len(m.candidates) > 1:
        lines.append("matched but lost:")
        win = m.candidates[0]
        for i, e in enumerate(m.candidates[1:], 1):
            lines.append(f"  {i}. {e.rule.id}  {e.rule.location}  path {e.pattern.text}: {why_lost(win, e)}")
    return "\n".join(lines)


def why_lost(win: Entry, loser: Entry) -> str:
    """The first precedence step that ranks `loser` after `win` (see proxy.policy.matcher)."""
    if win.key == loser.key:
        return "equal precedence: ambiguous, the request fails with 500"
    if loser.pattern.is_regex and not win.pattern.is_regex:
        return "regex rules rank after path patterns"
    wk, lk = win.pattern.kinds, loser.pattern.kinds
    if wk != lk:
        for i in range(max(len(wk), len(lk))):
            a = wk[i] if i < len(wk) else None
            b = lk[i] if i < len(lk) else None
            if a != b:
                return f"less specific path: at segment {i + 1} {_KIND.get(a, '**')} beats {_KIND.get(b, '**')}"
    if win.key[2] != loser.key[2]:
        return "matches any method; the winner lists its methods"
    return "fewer match conditions (host, headers_present, client_cidrs)"
