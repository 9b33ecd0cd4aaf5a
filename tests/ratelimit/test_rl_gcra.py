"""GCRA maths on a controllable clock: bursts and refills are exact to the microsecond, with no drift."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.ratelimit import gcra
from proxy.ratelimit.memory import MemoryStore
from tests.ratelimit.conftest import Clock, policy

IP = ("192.0.2.1",)


async def burst(store: MemoryStore, p: object, n: int) -> list[bool]:
    return [(await store.hit([(p, IP)])).allowed for _ in range(n)]  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("rate", "burst_size", "admitted"),
    [
        pytest.param("5/minute", None, 5, id="burst-defaults-to-count"),
        pytest.param("100/s", 200, 200, id="burst-above-rate"),
        pytest.param("3/s", 1, 1, id="no-burst"),
        pytest.param("1/day", 1, 1, id="one-a-day"),
        pytest.param("50000/day", None, 50000, id="largest-exact-burst"),
    ],
)
async def test_exactly_the_burst_is_admitted_at_one_instant(rate: str, burst_size: int | None, admitted: int) -> None:
    store = MemoryStore(clock=Clock())
    p = policy("ip", rate, burst_size)
    got = await burst(store, p, admitted + 3)
    assert got == [True] * admitted + [False] * 3


@pytest.mark.parametrize(
    ("rate", "interval_us"),
    [
        pytest.param("10/s", 100_000, id="whole-microseconds"),
        pytest.param("3/s", 333_334, id="fractional-interval-rounds-up-to-the-first-whole-us"),
        pytest.param("7/minute", 8_571_429, id="fractional-minutes"),
    ],
)
async def test_refill_is_exact_to_the_microsecond(rate: str, interval_us: int) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    p = policy("ip", rate, 1)
    assert (await store.hit([(p, IP)])).allowed
    clock.advance(interval_us - 1)
    denied = await store.hit([(p, IP)])
    assert not denied.allowed and denied.states[0].retry_us == 1
    clock.advance(1)
    assert (await store.hit([(p, IP)])).allowed


async def test_a_fractional_rate_never_drifts_over_many_periods() -> None:
    """3/s for 1000 s with a client retrying exactly when told: 3000 + burst requests, not one more or less."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    p = policy("ip", "3/s", 2)
    start, admitted = clock.now, 0
    while clock.now - start <= 1000 * 1_000_000:
        v = await store.hit([(p, IP)])
        if v.allowed:
            admitted += 1
        else:
            clock.advance(v.states[0].retry_us)
    assert admitted == 3000 + 2


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 50),
    period_ms=st.integers(1, 5000),
    burst=st.integers(1, 20),
    gaps=st.lists(st.integers(0, 400_000), min_size=1, max_size=120),
)
def test_admissions_never_exceed_burst_plus_rate_times_time(
    count: int, period_ms: int, burst: int, gaps: list[int]
) -> None:
    """Over any prefix of any arrival pattern: admitted ≤ burst + elapsed × count / period (exact fractions)."""
    import asyncio

    clock = Clock()
    store = MemoryStore(clock=clock)
    p = policy("ip", f"{count}/{period_ms}ms", burst)
    start, first, admitted = clock.now, None, 0
    for gap in gaps:
        clock.advance(gap)
        if asyncio.run(store.hit([(p, IP)])).allowed:
            first = clock.now if first is None else first
            admitted += 1
            elapsed = Fraction(clock.now - first)
            assert admitted <= burst + elapsed * count / (period_ms * 1000)
    assert clock.now >= start


async def test_one_denied_limit_consumes_none_of_the_others() -> None:
    store = MemoryStore(clock=Clock())
    wide, narrow = policy("ip", "10/hour", name="wide"), policy("ip", "1/hour", name="narrow")
    assert (await store.hit([(wide, IP), (narrow, IP)])).allowed
    denied = await store.hit([(wide, IP), (narrow, IP)])
    assert not denied.allowed and [s.policy.name for s in denied.states] == ["narrow"]
    alone = await store.hit([(wide, IP)])
    assert alone.states[0].remaining == 8, "the denied request must not have used the wide limit"


@pytest.mark.parametrize(
    ("levels", "remaining", "reset", "allowed"),
    [
        pytest.param([0], 9, 6, True, id="first-request-leaves-burst-minus-one"),
        pytest.param([9 * 60_000_000], 0, 6, True, id="last-unit"),
        pytest.param([10 * 60_000_000], 0, 6, False, id="empty-waits-one-interval"),
        pytest.param([9 * 60_000_000 + 5], 0, 1, False, id="a-microsecond-short-rounds-up-to-a-second"),
    ],
)
def test_remaining_and_reset_from_the_level(levels: list[int], remaining: int, reset: int, allowed: bool) -> None:
    p = policy("ip", "10/minute")  # one unit per 6 s; level scale is µs × count
    v = gcra.decide([p], levels)
    assert v.allowed is allowed
    assert (v.states[0].remaining, v.states[0].reset) == (remaining, reset)
    if not allowed:
        assert v.retry_after >= v.states[0].reset >= 1


async def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    p = policy("ip", "10/s")
    for i in range(50):
        await store.hit([(p, (f"198.51.100.{i}",))])
    assert len(store) == 50
    clock.advance(2_000_000)
    await store.hit([(p, IP)])
    assert len(store) == 1
