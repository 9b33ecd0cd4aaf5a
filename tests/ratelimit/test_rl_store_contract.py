"""One contract, both backends (memory and a real redis-server): exactness, atomicity, lockouts."""

from __future__ import annotations

import asyncio

import pytest

from proxy.ratelimit.base import RateStore, Subject
from proxy.ratelimit.redis_store import RedisStore
from tests.ratelimit.conftest import policy

IP = ("192.0.2.7",)


@pytest.mark.parametrize("limit", [pytest.param(1, id="one"), pytest.param(17, id="seventeen")])
async def test_concurrent_hits_admit_exactly_the_limit(store: RateStore, limit: int) -> None:
    p = policy("ip", f"{limit}/hour")
    verdicts = await asyncio.gather(*(store.hit([(p, IP)]) for _ in range(200)))
    assert sum(v.allowed for v in verdicts) == limit
    assert all(v.retry_after >= 1 for v in verdicts if not v.allowed)


async def test_all_limits_of_a_request_are_one_decision(store: RateStore) -> None:
    per_ip, per_route = policy("ip", "5/hour", name="a"), policy(["ip", "route"], "2/hour", name="b")
    both = [(per_ip, IP), (per_route, (IP[0], "items"))]
    verdicts = await asyncio.gather(*(store.hit(both) for _ in range(4)))
    assert [v.allowed for v in verdicts].count(True) == 2
    rest = await store.hit([(per_ip, IP)])
    assert rest.allowed and rest.states[0].remaining == 2, "denied requests consumed nothing of `a`"


async def test_keys_and_policies_are_separate_buckets(store: RateStore) -> None:
    p, q = policy("ip", "1/hour", name="p"), policy("ip", "1/hour", name="q")
    results = [await store.hit(h) for h in ([(p, IP)], [(p, ("192.0.2.8",))], [(q, IP)], [(p, IP)])]
    assert [r.allowed for r in results] == [True, True, True, False]


async def test_remaining_counts_down_and_the_429_says_when(store: RateStore) -> None:
    p = policy("ip", "3/hour")
    got = [await store.hit([(p, IP)]) for _ in range(4)]
    assert [v.states[0].remaining for v in got[:3]] == [2, 1, 0]
    assert not got[3].allowed and got[3].states[0].remaining == 0
    assert 1190 <= got[3].retry_after <= 1200, "3/hour frees one unit every 20 minutes"


def subjects(ip: str = "192.0.2.9", user: str | None = "alice", ip_max: int = 5) -> list[Subject]:
    out = [Subject("login-ip", ip, ip_max)]
    if user is not None:
        out.append(Subject("login-username", user, 3))
    return out


async def test_login_locks_after_max_failures_and_then_doubles(store: RateStore) -> None:
    alice = subjects(ip_max=100)
    for _ in range(3):
        assert (await store.attempt(alice)).allowed
    tripped = await store.attempt(alice)
    assert not tripped.allowed and tripped.locked == ("login-username",) and tripped.retry_after == 1
    assert not (await store.attempt(alice)).allowed, "still locked"
    await asyncio.sleep(0.25)  # the first lockout is 200 ms
    for _ in range(3):
        assert (await store.attempt(alice)).allowed
    assert not (await store.attempt(alice)).allowed  # second lockout: 400 ms
    await asyncio.sleep(0.25)
    assert not (await store.attempt(alice)).allowed, "the second lockout lasts twice as long"
    await asyncio.sleep(0.2)
    assert (await store.attempt(alice)).allowed


async def test_login_ip_is_locked_across_usernames(store: RateStore) -> None:
    results = [(await store.attempt(subjects(user=f"user{i}"))).allowed for i in range(7)]
    assert results == [True] * 5 + [False] * 2
    assert (await store.attempt(subjects(ip="192.0.2.10", user="user0"))).allowed


async def test_login_refunds_and_success_clear_the_count(store: RateStore) -> None:
    for _ in range(3):
        assert (await store.attempt(subjects())).allowed
        await store.settle(subjects(), "refund")
    assert (await store.attempt(subjects())).allowed and (await store.attempt(subjects())).allowed
    await store.settle(subjects(), "success")
    for _ in range(3):
        assert (await store.attempt(subjects())).allowed, "a success wiped the username's failures"


async def test_concurrent_login_attempts_are_charged_exactly(store: RateStore) -> None:
    verdicts = await asyncio.gather(*(store.attempt(subjects(user="bob")) for _ in range(20)))
    assert sum(v.allowed for v in verdicts) == 3


async def test_redis_keys_expire_and_hold_no_client_value(redis_server: object) -> None:
    from tests.ratelimit.conftest import redis_store_config

    store = RedisStore(redis_store_config(redis_server.url))  # type: ignore[attr-defined]
    await store.start()
    try:
        await store.hit([(policy(["ip", "header:x-api-key"], "5/hour"), ("203.0.113.5", "secret-key"))])
        await store.attempt([Subject("login-username", "carol", 3)])
        keys = await store.client.keys(store.prefix + "*")
        assert len(keys) == 2
        for key in keys:
            assert 0 < await store.client.pttl(key) <= 901_000, key
            assert b"203.0.113.5" not in key and b"secret-key" not in key and b"carol" not in key
        assert any(k.startswith(store.prefix.encode() + b"rl:{") for k in keys), "hash tag per identity"
    finally:
        await store.close()


async def test_noscript_is_reloaded(redis_server: object) -> None:
    from tests.ratelimit.conftest import redis_store_config

    store = RedisStore(redis_store_config(redis_server.url))  # type: ignore[attr-defined]
    await store.start()
    try:
        p = policy("ip", "2/hour")
        assert (await store.hit([(p, IP)])).allowed
        await store.client.script_flush()
        assert (await store.hit([(p, IP)])).allowed
        assert not (await store.hit([(p, IP)])).allowed
        assert store.breaker.closed and store.breaker.opened == 0
    finally:
        await store.close()
