"""Which key may verify which algorithm, decided at load time, never by the token.

PyJWT's algorithm objects do the signature maths; this module pins each algorithm to the one key
type and curve it may be used with (RFC 8725 §3.1, §3.2): an HMAC secret never verifies an RS/ES
token and a public key never serves as an HMAC secret (key confusion), an ES256 token is only
checked with a P-256 key, an RSA key must have at least 2048 bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import Algorithm, get_default_algorithms

ALGORITHMS: Mapping[str, Algorithm] = get_default_algorithms()
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
# ECDSA signature size (r || s): a wrong size, r = 0 or s = 0 is refused before any maths
# (CVE-2022-21449 "psychic signatures"; OpenSSL is not affected, but the check costs nothing)
_EC_SIG_SIZE = {"ES256": 64, "ES384": 96, "ES512": 132}


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A key ready for one family of algorithms; `key` is what PyJWT's `Algorithm.verify` takes."""

    key: Any
    algorithms: frozenset[str]


def compatible(alg: str, key: Any) -> bool:
    if alg.startswith("HS"):
        return isinstance(key, bytes)
    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
    if alg in _CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES[alg])
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def make_key(key: Any, allowed: frozenset[str]) -> VerifyKey | None:
    """The algorithms of `allowed` this key can serve; None when it serves none of them."""
    usable = frozenset(a for a in allowed if compatible(a, key))
    return VerifyKey(key, usable) if usable else None


def load_public_key(path: Path) -> Any:
    return load_pem_public_key(path.read_bytes())


def ecdsa_signature_ok(alg: str, signature: bytes) -> bool:
    size = _EC_SIG_SIZE.get(alg)
    if size is None:
        return True
    if len(signature) != size:
        return False
    half = size // 2
    return any(signature[:half]) and any(signature[half:])


def verify_signature(alg: str, key: VerifyKey, signing_input: bytes, signature: bytes) -> bool:
    if alg not in key.algorithms or not ecdsa_signature_ok(alg, signature):
        return False
    try:
        return bool(ALGORITHMS[alg].verify(signing_input, key.key, signature))
    except Exception:  # malformed signature bytes of any kind are simply a bad signature
        return False
