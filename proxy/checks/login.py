"""Login brute-force protection on rules marked `login` (after the client limits, before authentication).

The body is read (bounded by `rate_limits.login.max_body`) to find the submitted username (the
rule's `username_field`, in a JSON object or a form). The attempt is counted against the client
address and, when one was submitted, the username, *before* it is forwarded; the answer then
settles it (`on_response`): a failure status (`failure_status`, 401 by default, whether Bastion's
own or the upstream's) keeps it counted, a success clears the username's record, anything else is
refunded. Charging first makes the count exact under concurrency: N parallel guesses are N
failures at once, not N guesses before the first failure is recorded.

Past the threshold the address or username is locked out (`lockout`, doubling each time up to
`max_lockout`), answered 429 `abnormal-usage-detected` with `Retry-After`, before the upstream is
reached. Usernames are compared NFKC-normalised and case-folded ("Alice", "alice ", "ａｌｉｃｅ" are
one username) and stored only hashed. A body naming the field twice is refused (400): the
upstream might read the other copy than the one counted.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from typing import Any
from urllib.parse import parse_qs

from multidict import CIMultiDict

from proxy.config import LoginLimits
from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.ratelimit.base import ABNORMAL_USAGE, Settle, StoreUnavailable, Subject
from proxy.ratelimit.keys import KeyValues, digest
from proxy.ratelimit.limiter import Limiter, unavailable

_MARK = "bastion.login"


class Ambiguous(ValueError):
    pass


def submitted_username(body: bytes, field: str) -> str | None:
    """The normalised username in a JSON object or form body; None when there is none."""
    text = body.strip()
    value: Any = None
    if text[:1] == b"{":
        try:
            doc = json.loads(text, object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, Ambiguous):
                raise
            return None
        value = doc.get(field) if isinstance(doc, dict) else None
    else:
        try:
            found = parse_qs(text.decode("utf-8", "strict"), keep_blank_values=True, max_num_fields=64).get(field, [])
        except ValueError:  # undecodable, or more fields than any login form has
            return None
        if len(found) > 1:
            raise Ambiguous(f"{field} given {len(found)} times")
        value = found[0] if found else None
    if value is None or isinstance(value, dict | list):
        return None
    name = unicodedata.normalize("NFKC", str(value)).casefold().strip()
    return name or None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise Ambiguous("a key given twice")
    return doc


class LoginGuard:
    name = "login_guard"

    def __init__(self, limiter: Limiter, cfg: LoginLimits, values: KeyValues) -> None:
        self.limiter = limiter
        self.values = values
        self.max_body = cfg.max_body
        self.ip_max = cfg.ip_max_failures
        self.user_max = cfg.max_failures
        self.failures = frozenset(cfg.failure_status)
        self._settling: set[asyncio.Task[None]] = set()

    @staticmethod
    def applies(rule: object) -> bool:
        return getattr(rule, "login", None) is not None

    async def __call__(self, ctx: RequestContext) -> None:
        spec = getattr(ctx.rule, "login", None)
        if spec is None:
            return
        body = await ctx.read_body(self.max_body)
        try:
            subjects = self.subjects(ctx, body, spec.username_field)
        except Ambiguous as exc:
            raise Denial(400, Reason.BAD_REQUEST, detail=f"login body: {exc}") from None
        try:
            verdict, local = await self.limiter.attempt(subjects)
        except StoreUnavailable as exc:
            raise unavailable(f"login guard: {exc}") from None
        if not verdict.allowed:
            ctx.log[_MARK] = "locked"
            raise Denial(
                429, Reason.LOGIN_LOCKED, detail="locked: " + ", ".join(verdict.locked),
                headers={"Retry-After": str(max(1, verdict.retry_after))}, public=ABNORMAL_USAGE,
                extra={"violated-policies": list(verdict.locked)},
            )
        ctx.log[_MARK] = "attempt_local" if local else "attempt"

    def subjects(self, ctx: RequestContext, body: bytes, field: str) -> list[Subject]:
        out = [Subject("login-ip", self.values.client(ctx.client_ip), self.ip_max)]
        user = submitted_username(body, field)
        if user is not None:
            out.append(Subject("login-username", digest(user), self.user_max))
        return out

    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None:
        mark = ctx.log.get(_MARK)
        if mark not in ("attempt", "attempt_local"):
            return
        if status in self.failures:
            ctx.log[_MARK] = "failure"
            return
        outcome: Settle = "success" if 200 <= status < 300 else "refund"
        ctx.log[_MARK] = outcome
        subjects = self.subjects(ctx, ctx.body or b"", ctx.rule.login.username_field)
        task = asyncio.get_running_loop().create_task(self.limiter.settle(subjects, outcome, mark == "attempt_local"))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
