"""The pipeline runs every check before the rule match for every request, and after it only the
checks that apply under the matched rule (a per-rule plan, cached)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.context import RequestContext
from proxy.pipeline import Pipeline


class Rule:
    def __init__(self, name: str, wants: frozenset[str] = frozenset()) -> None:
        self.id = name
        self.wants = wants


class Recorder:
    def __init__(self, name: str, calls: list[str], *, decides: Rule | None = None, per_rule: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.decides = decides
        if decides is not None:
            self.decides_rule = True
        if per_rule:
            self.applies = lambda rule: rule is not None and name in rule.wants
        self.asked: list[Any] = []

    async def __call__(self, ctx: RequestContext) -> None:
        self.calls.append(self.name)
        if self.decides is not None:
            ctx.rule = self.decides


def ctx() -> RequestContext:
    return RequestContext("id", "GET", "/", CIMultiDictProxy(CIMultiDict()), "1", "1", "http", "h", time.monotonic())


@pytest.mark.parametrize(
    "wants, expected",
    [
        (frozenset(), ["ingress", "match", "always"]),
        (frozenset({"validate"}), ["ingress", "match", "always", "validate"]),
        (frozenset({"validate", "detect"}), ["ingress", "match", "always", "validate", "detect"]),
    ],
)
async def test_checks_after_the_rule_match_run_only_when_they_apply(wants: frozenset[str], expected: list[str]) -> None:
    calls: list[str] = []
    rule = Rule("r", wants)
    pipe = Pipeline(
        [
            Recorder("ingress", calls),
            Recorder("match", calls, decides=rule),
            Recorder("always", calls),  # no `applies`: runs under every rule
            Recorder("validate", calls, per_rule=True),
            Recorder("detect", calls, per_rule=True),
        ]
    )
    await pipe.run(ctx())
    assert calls == expected
    calls.clear()
    await pipe.run(ctx())  # the cached plan gives the same answer
    assert calls == expected


async def test_without_a_rule_deciding_check_every_check_is_planned_for_no_rule() -> None:
    calls: list[str] = []
    pipe = Pipeline([Recorder("ingress", calls), Recorder("validate", calls, per_rule=True)])
    assert pipe.head == ()
    await pipe.run(ctx())
    assert calls == ["ingress"]  # validate's applies(None) is False


async def test_the_plan_is_asked_once_per_rule_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import proxy.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "_MAX_PLANS", 3)
    asked: list[str] = []

    class Counting:
        name = "counting"

        def applies(self, rule: Rule | None) -> bool:
            asked.append(rule.id if rule is not None else "(none)")
            return True

        async def __call__(self, ctx: RequestContext) -> None:
            return None

    pipe = Pipeline([Counting()])
    assert asked == ["(none)"]  # the plan without a rule is made once, up front
    rules = [Rule(f"r{i}") for i in range(4)]
    for rule in (*rules[:3], *rules[:3]):
        pipe.plan(rule)
    pipe.plan(None)
    assert asked == ["(none)", "r0", "r1", "r2"]  # cached after the first ask
    pipe.plan(rules[3])  # the fourth starts the cache over
    pipe.plan(rules[0])
    assert asked == ["(none)", "r0", "r1", "r2", "r3", "r0"]


def test_plans_do_not_keep_the_rules_of_a_replaced_rule_set_alive() -> None:
    import gc
    import weakref

    class Applies:
        name = "applies"

        def applies(self, rule: object) -> bool:
            return True

        async def __call__(self, ctx: RequestContext) -> None:
            return None

    pipe = Pipeline([Applies()])
    old = Rule("old")
    pipe.plan(old)
    gone = weakref.ref(old)
    del old
    gc.collect()
    assert gone() is None
    fresh = Rule("fresh")  # may reuse the freed rule's id: it must get a plan of its own
    assert pipe.plan(fresh) == pipe.tail
