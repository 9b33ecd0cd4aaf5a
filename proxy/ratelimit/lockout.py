"""Login brute-force lockouts: the record kept per subject (client address, username) and its rules.

A record is (failures, level, locked_until_us). An attempt is *charged* as a failure before it is
forwarded, and refunded when the answer is not a failure (`settle`): counting after the answer
would let N concurrent guesses through before the first failure is recorded. Past
`max_failures`, the subject is locked for `lockout × 2^level` (capped), its count starts again and
its level goes up, so each further lockout is twice as long. A record is forgotten `window` after
the last attempt (plus the lock). The Lua copy of these rules is `scripts.LOGIN`.

>>> rules = LoginRules(window_us=900_000_000, lockout_us=60_000_000, max_lockout_us=3_600_000_000)
>>> attempt([(5, 0, 0)], [5], 0, rules)
(False, [60000000], [(0, 1, 60000000)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proxy.config import LoginLimits

Record = tuple[int, int, int]  # failures, level, locked_until_us
EMPTY: Record = (0, 0, 0)
_MAX_LEVEL = 40  # 2^40 × any lockout is past every cap


@dataclass(frozen=True, slots=True)
class LoginRules:
    window_us: int
    lockout_us: int
    max_lockout_us: int

    @classmethod
    def from_config(cls, cfg: LoginLimits) -> LoginRules:
        us = 1_000_000
        return cls(round(cfg.window * us), round(cfg.lockout * us), round(max(cfg.max_lockout, cfg.lockout) * us))

    def lock_for(self, level: int) -> int:
        return min(self.lockout_us << min(level, _MAX_LEVEL), self.max_lockout_us)

    def keep_us(self, record: Record, now_us: int) -> int:
        """How long a record must be kept: the window, plus what is left of its lock."""
        return self.window_us + max(0, record[2] - now_us)


def attempt(
    records: Sequence[Record], maxima: Sequence[int], now_us: int, rules: LoginRules
) -> tuple[bool, list[int], list[Record | None]]:
    """(allowed, wait µs per subject, records to write: None = unchanged) for one login attempt."""
    waits = [max(0, r[2] - now_us) for r in records]
    if any(waits):  # locked: refused, and a refused attempt counts nothing
        return False, waits, [None] * len(records)
    tripped = [r[0] + 1 > m for r, m in zip(records, maxima, strict=True)]
    if any(tripped):
        out: list[Record | None] = []
        for r, trip in zip(records, tripped, strict=True):
            if trip:
                out.append((0, min(r[1] + 1, _MAX_LEVEL), now_us + rules.lock_for(r[1])))
            else:
                out.append(None)
        return False, [o[2] - now_us if o else 0 for o in out], out
    return True, [0] * len(records), [(r[0] + 1, r[1], r[2]) for r in records]


def refund(record: Record) -> Record:
    return (max(0, record[0] - 1), record[1], record[2])


def clear(record: Record, now_us: int) -> Record | None:
    """A successful login wipes the username's failures and level; a lock set meanwhile stays."""
    return (0, 0, record[2]) if record[2] > now_us else None
