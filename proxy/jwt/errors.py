"""The one failure type of token verification: a stable reason code for logs and metrics."""

from __future__ import annotations

from proxy.decision import Reason


class TokenError(Exception):
    __slots__ = ("reason", "detail")

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail
