"""Issuer config → key lookups and a Verifier. Keys are loaded and typed here, once."""

from __future__ import annotations

from proxy.config import Auth, Issuer
from proxy.jwt.jwks import Fetch, JwksKeys
from proxy.jwt.keys import VerifyKey, load_public_key, make_key
from proxy.jwt.verifier import IssuerPolicy, KeyLookup, Verifier


class KeyConfigError(ValueError):
    pass


def _static(issuer: Issuer) -> KeyLookup:
    algs = frozenset(issuer.algorithms)
    if issuer.public_key_file is not None:
        try:
            raw = load_public_key(issuer.public_key_file)
        except (OSError, ValueError) as exc:
            raise KeyConfigError(f"issuer {issuer.issuer}: cannot load public_key_file: {exc}") from None
    else:
        raw = issuer.secret_bytes()
    key: VerifyKey | None = make_key(raw, algs)
    if key is None:
        raise KeyConfigError(f"issuer {issuer.issuer}: the key fits none of the algorithms {sorted(algs)}")

    async def lookup(kid: str | None, alg: str) -> VerifyKey | None:
        return key if alg in key.algorithms else None

    return lookup


def build_verifier(auth: Auth, fetch: Fetch, jwks: list[JwksKeys] | None = None) -> tuple[Verifier, list[JwksKeys]]:
    """Static keys are (re)loaded from their files here; JWKS caches are reused when given (reload)."""
    policies: list[IssuerPolicy] = []
    existing = {k.url: k for k in jwks or ()}
    jwks = []
    for issuer in auth.issuers:
        if issuer.jwks_url is not None:
            keys = existing.get(issuer.jwks_url) or JwksKeys(
                issuer.jwks_url, issuer.jwks_cache, frozenset(issuer.algorithms), fetch
            )
            jwks.append(keys)
            policies.append(IssuerPolicy(issuer, keys.get))
        else:
            policies.append(IssuerPolicy(issuer, _static(issuer)))
    return Verifier(auth, policies), jwks
