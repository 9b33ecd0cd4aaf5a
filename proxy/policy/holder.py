"""The PolicySet in force, swapped whole by hot reload.

A holder rather than a module global so that the composition root owns it and tests can build as
many as they like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.policy.compiler import PolicySet


class PolicyHolder:
    """Hot reload calls `swap()`; a request reads `current` once and keeps what it got (`ctx.rule`),
    so a reload mid-request never mixes two rule sets. A plain attribute store is atomic under the
    GIL and on the single event-loop thread: no lock.

    >>> holder = PolicyHolder(old_set)   # doctest: +SKIP
    >>> holder.swap(new_set) is old_set  # doctest: +SKIP
    True
    """

    __slots__ = ("current",)

    def __init__(self, current: PolicySet) -> None:
        self.current = current

    def swap(self, new: PolicySet) -> PolicySet:
        """Install `new`; return the set it replaced."""
        old, self.current = self.current, new
        return old
