"""The values a limit is keyed by, taken from what Bastion has established about the request.

Bypass resistance lives here:
- `ip` is `ctx.client_ip`, which the trusted-proxy rule produced (an untrusted peer's
  `X-Forwarded-For` never reaches it); IPv4-mapped IPv6 counts as the IPv4 address, and an IPv6
  client is keyed by its /64 (`rate_limits.ipv6_prefix`): one host usually owns a whole /64, so
  rotating addresses inside it earns nothing.
- `route` is the matched rule's id, never the raw path: every spelling of a path that reaches the
  rule (case, percent-encoding, dot segments, all resolved by the canonical path) shares its limit.
- `header:<name>` (an API key) is hashed before use, so the key itself is never stored; a header
  sent more than once is refused rather than picking one value the upstream may not pick.
- `sub` is the verified subject qualified by its issuer: two issuers' "alice" are two identities.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from functools import lru_cache

from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.ratelimit.base import Policy


def digest(value: str) -> str:
    """96 bits of BLAKE2b, base64url: the stored form of a key value."""
    raw = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).digest()
    return base64.urlsafe_b64encode(raw).decode()


class KeyValues:
    def __init__(self, ipv6_prefix: int = 64) -> None:
        self.ipv6_prefix = ipv6_prefix
        self.client = lru_cache(maxsize=8192)(self._client)

    def _client(self, ip: str) -> str:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return ip  # not an address (a unix-socket peer): the text is the key
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return str(addr.ipv4_mapped)
            return str(ipaddress.IPv6Network((addr, self.ipv6_prefix), strict=False))
        return ip

    def values(self, policy: Policy, ctx: RequestContext) -> tuple[str, ...] | None:
        """The key values of `policy` for this request; None when the limit does not apply to it
        (a `sub` limit on an anonymous request, a header limit without the header)."""
        out: list[str] = []
        for part in policy.keys:
            if part == "ip":
                out.append(self.client(ctx.client_ip))
            elif part == "route":
                out.append(getattr(ctx.rule, "id", None) or "-")
            elif part == "sub":
                p = ctx.principal
                if p is None:
                    return None
                out.append(f"{p.issuer}\x00{p.subject}")
            else:
                name = part[7:]  # header:<name>
                found = ctx.headers.getall(name, ())
                if not found:
                    return None
                if len(found) > 1:
                    detail = f"rate-limit key header {name} sent {len(found)} times"
                    raise Denial(400, Reason.BAD_REQUEST, detail=detail)
                out.append(digest(found[0]))
        return tuple(out)
