"""The verified-token cache: signature checks happen once per token, not once per request.

A bounded LRU keyed by a SHA-256 of the token (so the cache never holds bearer tokens), each entry
living until `min(exp, now + ttl)`. It keeps the Principal and the identity headers derived from it,
so a cache hit costs a hash and a dict lookup. Revocation is NOT cached: it is checked on every request.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from proxy.identity import Principal

# (the verified principal, the identity headers for the upstream)
Entry = tuple[Principal, tuple[tuple[str, str], ...]]


class TokenCache:
    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[Entry, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        value, until = entry
        if self.clock() >= until:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: bytes, value: Entry) -> None:
        if self.size <= 0:
            return
        self._entries[key] = (value, min(value[0].expires_at, self.clock() + self.ttl))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
