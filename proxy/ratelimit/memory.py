"""The in-process store: the default backend, and the fallback of the Redis one under `fail_open`.

Per process: with `--workers N` or several replicas each process counts alone, so a limit of N
admits up to N per process (README "Rate limits" says so). Exact within the process: the event
loop runs each call to completion, so no two requests interleave between reading and writing a
bucket. Buckets and lockout records are dropped once they no longer hold anything (a full bucket,
a forgotten record), swept at most once a second, so memory is bounded by the keys active within
one burst window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from proxy.config import LoginLimits
from proxy.ratelimit import gcra, lockout
from proxy.ratelimit.base import Hit, LoginVerdict, Settle, Subject, Verdict

Clock = Callable[[], int]  # microseconds
_SWEEP_US = 1_000_000


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryStore:
    """>>> store = MemoryStore(clock=lambda: 0)  # a fixed clock (µs): nothing ever refills"""

    def __init__(self, login: LoginLimits | None = None, clock: Clock = monotonic_us) -> None:
        self.clock = clock
        self.rules = lockout.LoginRules.from_config(login or LoginLimits())
        self._buckets: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}
        self._records: dict[tuple[str, str], tuple[lockout.Record, int]] = {}  # (record, forget at)
        self._next_sweep = 0

    def __len__(self) -> int:
        return len(self._buckets) + len(self._records)

    async def hit(self, hits: Sequence[Hit]) -> Verdict:
        # gcra.level/stored inlined: this runs once per request on the default backend
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        buckets = self._buckets
        keys, policies, levels = [], [], []
        for p, values in hits:
            key = (p.name, values)
            held = buckets.get(key)
            d = 0 if held is None else max(0, (held[0] - now) * p.count + held[1])
            keys.append(key)
            policies.append(p)
            levels.append(d)
        verdict = gcra.decide(policies, levels)
        if verdict.allowed:
            for key, p, d in zip(keys, policies, levels, strict=True):
                q, frac = divmod(d + p.period_us, p.count)
                buckets[key] = (now + q, frac)
        return verdict

    async def attempt(self, subjects: Sequence[Subject]) -> LoginVerdict:
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        keys = [(s.name, s.value) for s in subjects]
        records = [self._record(k, now) for k in keys]
        allowed, waits, new = lockout.attempt(records, [s.max_failures for s in subjects], now, self.rules)
        for k, rec in zip(keys, new, strict=True):
            if rec is not None:
                self._records[k] = (rec, now + self.rules.keep_us(rec, now))
        if allowed:
            return LoginVerdict(True)
        locked = tuple(s.name for s, w in zip(subjects, waits, strict=True) if w > 0)
        return LoginVerdict(False, -(-max(waits) // 1_000_000), locked)

    async def settle(self, subjects: Sequence[Subject], outcome: Settle) -> None:
        now = self.clock()
        for s in subjects:
            key = (s.name, s.value)
            rec = self._record(key, now)
            clear = outcome == "success" and s.name == "login-username"
            new = lockout.clear(rec, now) if clear else lockout.refund(rec)
            if new is None:
                self._records.pop(key, None)
            elif key in self._records:  # a refund keeps the record's lifetime
                self._records[key] = (new, self._records[key][1])

    def _record(self, key: tuple[str, str], now: int) -> lockout.Record:
        entry = self._records.get(key)
        return entry[0] if entry is not None and entry[1] > now else lockout.EMPTY

    def _sweep(self, now: int) -> None:
        self._next_sweep = now + _SWEEP_US
        for bucket in [k for k, (tat, _) in self._buckets.items() if tat < now]:
            del self._buckets[bucket]
        for record in [k for k, (_, until) in self._records.items() if until <= now]:
            del self._records[record]
