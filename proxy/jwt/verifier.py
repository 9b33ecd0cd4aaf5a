"""Token verification that is stricter than PyJWT alone (RFC 8725, RFC 9068).

PyJWT accepts duplicate JSON keys (last wins) and ignores `jku`/`x5u`/`jwk`/`x5c` instead of
rejecting them, so we parse the compact form ourselves, refuse duplicates with an
`object_pairs_hook`, apply every header rule, pick the issuer by the unverified `iss`, and only
then let PyJWT's algorithm objects check the signature with that issuer's keys. Claims are checked
here too, so that every failure has its own stable reason code (Envoy's `Status` enum).

>>> principal = await verifier.verify(token)        # raises TokenError(Reason.EXPIRED, ...) etc.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from proxy.config import Auth, Issuer
from proxy.decision import Reason
from proxy.identity import Principal
from proxy.jwt.errors import TokenError
from proxy.jwt.jwks import JwksUnavailable
from proxy.jwt.keys import VerifyKey, verify_signature

# SECURITY: RFC 8725 §3.10: these make a verifier fetch or trust keys named by the token itself.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_KID = re.compile(r"[A-Za-z0-9._:+=\-]{1,128}")
# a role or scope becomes part of a comma-joined header: no comma, whitespace or control characters
_ATOM = re.compile(r"[^\s,\x00-\x1f\x7f]{1,256}")
_HEADER_VALUE = re.compile(r"[^\x00-\x1f\x7f]*")

KeyLookup = Callable[[str | None, str], Awaitable[VerifyKey | None]]


def _b64decode(part: bytes) -> bytes:
    if not _B64URL.fullmatch(part):
        raise TokenError(Reason.JWT_MALFORMED, "not base64url")
    try:
        return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(Reason.JWT_MALFORMED, "bad base64url") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise TokenError(Reason.JWT_DUPLICATE_KEYS, f"duplicate key {k[:32]!r}")
        out[k] = v
    return out


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except TokenError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenError(Reason.JWT_MALFORMED, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError(Reason.JWT_MALFORMED, f"{what} is not a JSON object")
    return value


def parse(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and decode a compact JWS: exactly three base64url parts (a JWE has five)."""
    raw = token.encode("ascii", errors="replace")
    parts = raw.split(b".")
    if len(parts) != 3 or not all(parts):
        raise TokenError(Reason.JWT_MALFORMED, f"{len(parts)} parts")
    header = _json_object(_b64decode(parts[0]), "header")
    payload = _json_object(_b64decode(parts[1]), "payload")
    signature = _b64decode(parts[2])
    return header, payload, parts[0] + b"." + parts[1], signature


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(Reason.BAD_CLAIMS, f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise TokenError(Reason.BAD_CLAIMS, f"{name} is out of range") from None
    if not math.isfinite(number):  # SECURITY: exp NaN/Infinity would be valid forever
        raise TokenError(Reason.BAD_CLAIMS, f"{name} is not finite")
    return number


def _string_list(value: Any, name: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) and _ATOM.fullmatch(x) for x in value):
        raise TokenError(Reason.BAD_CLAIMS, f"{name} must be a list of plain strings")
    return frozenset(value)


class IssuerPolicy:
    """One configured issuer, resolved for the hot path."""

    def __init__(self, cfg: Issuer, keys: KeyLookup) -> None:
        self.cfg = cfg
        self.name = cfg.issuer
        self.algorithms = frozenset(cfg.algorithms)
        self.audiences = frozenset(cfg.audiences)
        self.required = tuple(cfg.required_claims)
        self.leeway = cfg.leeway
        self.typ = cfg.typ.lower() if cfg.typ else None
        self.keys = keys


class Verifier:
    def __init__(self, auth: Auth, issuers: list[IssuerPolicy], clock: Callable[[], float] = time.time) -> None:
        self.by_name = {i.name: i for i in issuers}
        self.roles_claim = auth.roles_claim
        self.clock = clock

    async def verify(self, token: str) -> Principal:
        header, claims, signing_input, signature = parse(token)
        issuer = self._check_header(header, claims)
        alg = header["alg"]
        kid = header.get("kid")
        try:
            key = await issuer.keys(kid, alg)
        except JwksUnavailable:
            raise TokenError(Reason.JWKS_UNAVAILABLE) from None
        if key is None:
            raise TokenError(Reason.KID_UNKNOWN, "no key for this kid and alg")
        if not verify_signature(alg, key, signing_input, signature):
            raise TokenError(Reason.BAD_SIGNATURE)
        return self._principal(issuer, claims)

    def _check_header(self, header: dict[str, Any], claims: dict[str, Any]) -> IssuerPolicy:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenError(Reason.JWT_MALFORMED, "alg missing")
        if alg.lower() == "none":
            raise TokenError(Reason.ALG_NONE)
        forbidden = FORBIDDEN_HEADERS.intersection(header)
        if forbidden:
            raise TokenError(Reason.FORBIDDEN_HEADER, ",".join(sorted(forbidden)))
        if "crit" in header:  # we implement no extensions, so any critical one is unknown (RFC 7515 §4.1.11)
            raise TokenError(Reason.UNKNOWN_CRIT)
        if header.get("b64") is False or "zip" in header or "enc" in header:
            raise TokenError(Reason.JWT_MALFORMED, "unsupported header")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid)):
            raise TokenError(Reason.BAD_KID)  # a kid is only ever a dictionary key: no paths, SQL or essays
        iss = claims.get("iss")
        issuer = self.by_name.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenError(Reason.UNKNOWN_ISSUER)
        if alg not in issuer.algorithms:
            raise TokenError(Reason.ALG_NOT_ALLOWED, alg[:16])
        if issuer.typ is not None:
            typ = header.get("typ")
            typ = typ.lower() if isinstance(typ, str) else ""
            if typ != issuer.typ and typ != "application/" + issuer.typ:
                raise TokenError(Reason.WRONG_TYP)
        return issuer

    def _principal(self, issuer: IssuerPolicy, claims: dict[str, Any]) -> Principal:
        for name in issuer.required:
            if name not in claims:
                raise TokenError(Reason.MISSING_CLAIM, name)
        now = self.clock()
        exp = _number(claims, "exp")
        if exp is None:
            raise TokenError(Reason.MISSING_CLAIM, "exp")
        if now > exp + issuer.leeway:
            raise TokenError(Reason.EXPIRED)
        nbf = _number(claims, "nbf")
        if nbf is not None and now + issuer.leeway < nbf:
            raise TokenError(Reason.NOT_YET_VALID)
        iat = _number(claims, "iat")
        if iat is not None and now + issuer.leeway < iat:
            raise TokenError(Reason.ISSUED_IN_FUTURE)
        if issuer.audiences:
            aud = claims.get("aud")
            auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
            if auds is None or not all(isinstance(a, str) for a in auds) or not issuer.audiences.intersection(auds):
                raise TokenError(Reason.WRONG_AUDIENCE)
        sub = claims.get("sub", "")
        if not isinstance(sub, str) or not _HEADER_VALUE.fullmatch(sub) or len(sub) > 256:
            raise TokenError(Reason.BAD_CLAIMS, "sub")
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise TokenError(Reason.BAD_CLAIMS, "jti")
        roles = claims.get(self.roles_claim)
        return Principal(
            subject=sub,
            issuer=issuer.name,
            roles=_string_list(roles, self.roles_claim) if roles is not None else frozenset(),
            scopes=_scopes(claims),
            claims=claims,
            token_id=jti,
            expires_at=exp,
            issued_at=iat,
        )


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    scope = claims.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise TokenError(Reason.BAD_CLAIMS, "scope must be a space-separated string")
        parts = scope.split(" ")
        if not all(_ATOM.fullmatch(p) for p in parts if p):
            raise TokenError(Reason.BAD_CLAIMS, "scope")
        scopes.update(p for p in parts if p)
    scp = claims.get("scp")
    if scp is not None:
        scopes.update(_string_list(scp, "scp"))
    return frozenset(scopes)
