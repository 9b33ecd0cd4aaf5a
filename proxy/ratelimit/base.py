"""The types every rate-limit backend and check shares: compiled policies, verdicts, the store protocol.

Strategy is kept apart from storage, as in `limits`: `gcra.py` and `lockout.py` hold the maths,
`memory.py` and `redis_store.py` hold state, and both backends pass the same contract tests
(tests/ratelimit/test_store_contract.py). One store interface serves the hot path (`hit`, every
limit of a pipeline stage in one call), the login guard (`attempt`, `settle`) and, through
`revocations.py`, the token deny-list, so one Redis carries all shared state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from proxy.config import LimitSpec

# the draft's problem types (draft-ietf-httpapi-ratelimit-headers-11 §6, RFC 9457)
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
ABNORMAL_USAGE = "https://iana.org/assignments/http-problem-types#abnormal-usage-detected"
REDUCED_CAPACITY = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"


class StoreUnavailable(Exception):
    """The shared store did not answer in time (or its circuit is open); `store.on_failure` decides."""


@dataclass(frozen=True, slots=True)
class Policy:
    """One compiled limit. `name` is what clients see; it is also the bucket's name, so it is unique:
    rule policies are qualified by the rule id (`login.ip`), global names may not contain a dot.

    >>> p = compile_limits((LimitSpec(key="ip", rate="5/minute"),), scope="login")[0]
    >>> (p.name, p.count, p.period_us, p.burst, p.item)
    ('login.ip', 5, 60000000, 5, '"login.ip";q=5;w=60')
    """

    name: str
    keys: tuple[str, ...]  # "ip" | "sub" | "route" | "header:<lower-case name>"
    count: int
    period_us: int
    burst: int
    limit: int = field(init=False)  # burst × period: the GCRA's tolerance scaled by the count
    identity: bool = field(init=False)  # keyed by `sub`: checked after authentication
    item: str = field(init=False)  # its `RateLimit-Policy` list member
    args: bytes = field(init=False)  # "period count burst", as the Lua script reads them

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "limit", self.burst * self.period_us)
        set_(self, "identity", "sub" in self.keys)
        # draft-11: q is the quota, w the window in seconds. GCRA admits `burst` at once and refills one
        # request per period/count, so q = burst over the time a full refill takes.
        window = max(1, -(-self.burst * self.period_us // (self.count * 1_000_000)))
        set_(self, "item", f'"{self.name}";q={self.burst};w={window}')
        set_(self, "args", f"{self.period_us} {self.count} {self.burst}".encode())

    def state_after(self, new_level: int) -> PolicyState:
        """What is left once a request raised the level to `new_level` (see gcra.py for the units)."""
        remaining = (self.limit - new_level) // self.period_us
        if remaining >= self.burst:
            return PolicyState(self, self.burst, 0)
        # the next unit frees up once the level has fallen to (burst − remaining − 1) × period
        wait_us = -(-(new_level - (self.burst - remaining - 1) * self.period_us) // self.count)
        return PolicyState(self, remaining, -(-wait_us // 1_000_000))


def compile_limits(specs: Sequence[LimitSpec], scope: str | None = None) -> tuple[Policy, ...]:
    """Config or rule limits → policies; `scope` (a rule id) qualifies the names of rule limits."""
    out = []
    for spec in specs:
        count, period = spec.rate
        name = f"{scope}.{spec.policy_name}" if scope else spec.policy_name
        out.append(Policy(name, spec.key, count, round(period * 1_000_000), spec.burst or count))
    return tuple(out)


Hit = tuple[Policy, tuple[str, ...]]  # a policy and the key values of this request


class PolicyState(NamedTuple):
    policy: Policy
    remaining: int  # r
    reset: int  # t: whole seconds until more quota is available (0 when full)
    retry_us: int = 0  # denied: exactly when this policy admits the request


class Verdict:
    """Allowed: every policy with what is left. Denied: only the violated policies (nothing was consumed).

    An allowed verdict computes its states only when asked (the `RateLimit` field, tests): most
    answers never show them, and this is the per-request path."""

    __slots__ = ("allowed", "retry_after", "_states", "_after")

    def __init__(
        self,
        allowed: bool,
        states: tuple[PolicyState, ...] | None = None,
        retry_after: int = 0,
        after: tuple[tuple[Policy, int], ...] = (),
    ) -> None:
        self.allowed = allowed
        self.retry_after = retry_after  # whole seconds, never earlier than any violated policy's `t`
        self._states = states
        self._after = after  # allowed: (policy, level after this request)

    @property
    def states(self) -> tuple[PolicyState, ...]:
        if self._states is None:
            self._states = tuple([p.state_after(level) for p, level in self._after])
        return self._states

    def __repr__(self) -> str:
        return f"Verdict(allowed={self.allowed}, retry_after={self.retry_after}, states={self.states})"


ALLOWED = Verdict(True, ())


@dataclass(frozen=True, slots=True)
class Subject:
    """Something a login attempt is counted against: the client address or the submitted username."""

    name: str  # "login-ip" | "login-username": the policy name the 429 names
    value: str  # a key value (the username already hashed)
    max_failures: int


@dataclass(frozen=True, slots=True)
class LoginVerdict:
    allowed: bool
    retry_after: int = 0
    locked: tuple[str, ...] = ()


Settle = Literal["refund", "success"]


class RateStore(Protocol):
    async def hit(self, hits: Sequence[Hit]) -> Verdict:
        """Check and, only if every one admits the request, consume one unit of each policy, atomically."""
        ...

    async def attempt(self, subjects: Sequence[Subject]) -> LoginVerdict:
        """Refuse if a subject is locked; else count the attempt as a failure until `settle` says otherwise."""
        ...

    async def settle(self, subjects: Sequence[Subject], outcome: Settle) -> None:
        """Undo an attempt's charge: `refund` (not a failure), `success` (also clears the username's record)."""
        ...
