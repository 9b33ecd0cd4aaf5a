"""Properties: matching is deterministic and independent of rule order, and what a rule denies stays
denied under every dot-segment / duplicate-slash / escape spelling of the path once the ingress
check has canonicalised it (the bypasses of `/admin/..;/` fame live in those spellings)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.checks.ingress import Ingress
from proxy.checks.rules import Authorize, RuleMatch
from proxy.config import Limits
from proxy.context import RequestContext
from proxy.decision import Denial
from proxy.identity import Principal
from proxy.pipeline import Pipeline
from proxy.policy import PolicyHolder, PolicySet, Probe
from tests.policy.conftest import user

SEGMENTS = st.sampled_from(["tasks", "admin", "users", "7", "healthz", "auth", "login", "refresh", "x", "a.b", "~u"])
WHO = st.sampled_from([None, user(), user("user", scopes=("tasks:read", "tasks:write")), user("admin")])
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"])


def _escape_one(seg: str, i: int) -> str:
    """Percent-encode one unreserved character: the canonical form decodes it again."""
    if not seg:
        return seg
    i %= len(seg)
    return seg[:i] + f"%{ord(seg[i]):02x}" + seg[i + 1 :]


@st.composite
def spelled(draw: st.DrawFn) -> tuple[str, str]:
    """(canonical path, another spelling of it)."""
    segs = draw(st.lists(SEGMENTS, max_size=4))
    trailing = draw(st.booleans()) and bool(segs)
    canonical = "/" + "/".join(segs) + ("/" if trailing else "")
    out: list[str] = []
    for seg in segs:
        trick = draw(st.sampled_from(["plain", "dot", "dotdot", "slashes", "escape", "encoded-dot"]))
        if trick == "dot":
            out += [".", seg]
        elif trick == "dotdot":
            out += [draw(SEGMENTS), "..", seg]
        elif trick == "slashes":
            out += ["", seg]
        elif trick == "escape":
            out.append(_escape_one(seg, draw(st.integers(0, 20))))
        elif trick == "encoded-dot":
            out += ["%2E", seg]
        else:
            out.append(seg)
    variant = "/" + "/".join(out) + ("/" if trailing else "")
    return canonical, variant


def _ctx(method: str, target: str, who: Principal | None) -> RequestContext:
    ctx = RequestContext(
        "r", method, target, CIMultiDictProxy(CIMultiDict()), "127.0.0.1", "127.0.0.1", "http", "localhost", 0.0
    )
    ctx.principal = who
    return ctx


def _through_pipeline(policy: PolicySet, method: str, target: str, who: Principal | None) -> tuple[Any, ...]:
    """Ingress (canonical path) -> RuleMatch -> Authorize, as the proxy runs them; authn is stood in by `who`."""
    ctx = _ctx(method, target, who)
    pipeline = Pipeline([Ingress(Limits()), RuleMatch(PolicyHolder(policy)), Authorize()])
    try:
        asyncio.run(pipeline.run(ctx))
    except Denial as d:
        return ("deny", d.status, ctx.log.get("bastion.rule"), ctx.path)
    return ("allow", 0, ctx.log.get("bastion.rule"), ctx.path)


@settings(max_examples=300, deadline=None)
@given(spelled(), METHODS, WHO)
def test_denied_stays_denied_under_other_spellings(
    shipped: PolicySet, paths: tuple[str, str], method: str, who: Principal | None
) -> None:
    canonical, variant = paths
    want = _through_pipeline(shipped, method, canonical, who)
    got = _through_pipeline(shipped, method, variant, who)
    assert got == want, (canonical, variant)


POOL: list[dict[str, Any]] = [
    {"id": "all", "match": {"path": "/**"}},
    {"id": "a-tree", "match": {"path": "/a/**"}},
    {"id": "a-tree-host", "match": {"path": "/a/**", "host": "*.example.com"}},
    {"id": "a-param", "match": {"path": "/a/{x}"}},
    {"id": "a-param-get", "match": {"path": "/a/{x}", "methods": ["GET"]}},
    {"id": "a-b", "match": {"path": "/a/b"}},
    {"id": "a-b-tree", "match": {"path": "/a/b/**"}},
    {"id": "a-x-c", "match": {"path": "/a/{x}/c"}},
    {"id": "a-b-y", "match": {"path": "/a/b/{y}", "methods": ["POST", "GET"]}},
    {"id": "a-num", "match": {"path": {"regex": "^/a/[0-9]+$"}}},
    {"id": "b-slash", "match": {"path": "/b/"}},
    {"id": "b", "match": {"path": ["/b", "/c/*"]}},
]
PATHS = st.lists(st.sampled_from(["a", "b", "c", "1", "22", ""]), max_size=4).map(lambda s: "/" + "/".join(s))


@settings(max_examples=150, deadline=None)
@given(
    st.permutations(POOL),
    st.lists(
        st.tuples(st.sampled_from(["GET", "POST", "PUT"]), PATHS, st.sampled_from(["x.example.com", "other.test"])),
        max_size=8,
    ),
)
def test_matching_is_deterministic_and_order_free(
    policy_from: Callable[[Mapping[str, Any]], PolicySet],
    order: list[dict[str, Any]],
    requests: list[tuple[str, str, str]],
) -> None:
    rules = [{**r, "allow": "anonymous"} for r in order]
    base = policy_from({"rules": [{**r, "allow": "anonymous"} for r in POOL]})
    permuted = policy_from({"rules": rules})
    for method, path, host in requests:
        probe = Probe(method, path, host)
        first = base.match(probe, explain=True)
        again = permuted.match(probe, explain=True)
        assert [e.rule.id for e in first.candidates] == [e.rule.id for e in again.candidates]
        fast = permuted.match(probe)
        assert (fast.rule.id if fast.rule else None) == (first.rule.id if first.rule else None)
        assert not first.ambiguous
