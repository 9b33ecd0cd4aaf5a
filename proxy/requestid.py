"""Request ids: kept from the client when short and plain, generated otherwise."""

from __future__ import annotations

import itertools
import os
import re

# SECURITY: a request id is echoed into logs and headers, so only short, plain tokens are kept.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique and unguessable without a syscall per request: a random per-process prefix and a counter."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def request_id_from(value: str | None) -> str:
    if value and _SAFE_ID.fullmatch(value):
        return value
    return new_request_id()
