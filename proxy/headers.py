"""Header sets that are fixed by the standards and precomputed once (RFC 9110 §7.6.1)."""

from __future__ import annotations

from multidict import CIMultiDictProxy

# SECURITY: RFC 9110 §7.6.1 hop-by-hop fields, plus the obsolete ones proxies still see.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authorization",
    )
)


def connection_named(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Every header named in `Connection` (RFC 9110 §7.6.1): those are hop-by-hop too."""
    values = headers.getall("Connection", ())
    if not values:
        return frozenset()
    return frozenset(t.strip().lower() for v in values for t in v.split(",") if t.strip())


def end_to_end(headers: CIMultiDictProxy[str], drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The (name, value) pairs without hop-by-hop fields, `Connection`-named fields and the `drop` set
    (lower-case, and a superset of HOP_BY_HOP when given: callers precompute `HOP_BY_HOP | their
    names` once). A list, so callers add their own fields and build a multidict in one call.

    SECURITY: `X_User_Id` is dropped like `X-User-Id`: some upstream frameworks (WSGI/CGI environ,
    nginx with underscores_in_headers) read both as the same header (oauth2-proxy CVE-2025-64484).
    """
    skip = drop or HOP_BY_HOP
    if "Connection" in headers:
        skip = skip | connection_named(headers)
    return [
        (k, v)
        for k, v in headers.items()
        if (lk := k.lower()) not in skip and not ("_" in lk and lk.replace("_", "-") in skip)
    ]
