"""Tell the sidecar about revocations: its admin endpoint `POST /revocations`.

The upstream issues the tokens but the sidecar verifies them, so a logout or a detected refresh
token reuse only takes effect once the sidecar knows. Best effort: the auth service logs and goes
on if the sidecar cannot be reached (its tokens are short-lived either way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

Notify = Callable[[str, str, int], Awaitable[None]]


def sidecar_notifier(url: str, token: str, timeout: float = 2.0) -> Notify:
    async def notify(kind: str, value: str, expires_at: int) -> None:
        body: dict[str, object] = {"jti": value, "expires_at": expires_at} if kind == "jti" else {"sub": value}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
                if resp.status != 204:
                    raise RuntimeError(f"sidecar answered {resp.status}")

    return notify
