"""GCRA (the generic cell rate algorithm) in exact integer arithmetic, shared by both backends.

A bucket is its theoretical arrival time (TAT). With rate `count/period` one request "costs"
T = period/count; a request at `now` is admitted when `max(TAT, now) + T - now <= burst × T`, and
then TAT moves on by T. Unlike fixed or sliding windows there is no window edge at which two bursts
fit back to back, and the state is one number per key.

T is rarely a whole number of microseconds (3/s → 333333.3 µs), and rounding it would let the rate
drift. So every quantity is kept *scaled by the count*: the stored TAT is `tat_us + frac/count`
(`frac` in [0, count)), and the "level" L = (TAT − now) × count is an integer in µs·count, where
T × count = period_us and the tolerance is burst × period_us. All values stay below 2^52, so the
Lua copy of this file (scripts.py) computes exactly the same numbers in Redis's doubles.

Both stores read a bucket's level as `max(0, (tat_us − now) × count + frac)` and, when every
policy of the request admits it, store `divmod(level + period_us, count)` as the new (tat_us − now,
frac); this module decides from the levels.

>>> p = Policy("x", ("ip",), 3, 1_000_000, 2)  # 3/s, burst 2: tolerance 2_000_000
>>> decide([p], [0]).states[0].remaining, decide([p], [1_000_000]).allowed, decide([p], [1_000_001]).allowed
(1, True, False)
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.ratelimit.base import Policy, PolicyState, Verdict

_S = 1_000_000


def ttl_us(new_level: int, count: int) -> int:
    """When the bucket is full again and its key can be forgotten."""
    return -(-new_level // count)


def decide(policies: Sequence[Policy], levels: Sequence[int]) -> Verdict:
    """The verdict for levels read before this request (as the store saw them, atomically)."""
    after = []
    violated: list[PolicyState] | None = None
    for p, d in zip(policies, levels, strict=True):
        new = d + p.period_us
        if new > p.limit:
            wait = ttl_us(new - p.limit, p.count)
            (violated := violated or []).append(PolicyState(p, 0, -(-wait // _S), wait))
        after.append((p, new))
    if violated:
        return Verdict(False, tuple(violated), max(s.reset for s in violated))
    return Verdict(True, after=tuple(after))
