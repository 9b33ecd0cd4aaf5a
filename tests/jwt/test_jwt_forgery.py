"""Forged, tampered and malformed tokens, one row per attack, each sent through the running proxy.

Every row must end in the same refusal (`assert_refused`): 401 with the RFC 6750 challenge, an
RFC 9457 body carrying the request id and nothing internal, the reason code in the access record,
and an upstream that never saw the request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.jwt.conftest import (
    AT_ISS,
    AUD,
    COOKIE,
    EC_ISS,
    HS_ISS,
    HS_SECRET,
    JWKS_ISS,
    RS_ISS,
    Forger,
    Gate,
    assert_refused,
    b64url,
    compact,
    public_pem,
    raw_ec_signature,
    to_jwk,
)

Build = Callable[[Forger], str]

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def resign(build: Build, change: Callable[[str, bytes], bytes]) -> Build:
    """A token whose signature is replaced by `change(signing_input, valid_signature)`."""

    def make(f: Forger) -> str:
        signing_input, _, sig = build(f).rpartition(".")
        return f"{signing_input}.{b64url(change(signing_input, b64decode(sig)))}"

    return make


def swap_payload(build: Build, **claims: object) -> Build:
    """A valid token with its payload replaced and the original signature kept."""

    def make(f: Forger) -> str:
        head, _, sig = build(f).split(".")
        return f"{head}.{b64url(json.dumps(f.claims(HS_ISS, **claims)).encode())}.{sig}"

    return make


def raw_payload(text: str, iss: str = HS_ISS) -> Build:
    return lambda f: f.token(iss, raw_payload=text)


def nested(depth: int) -> str:
    return json.dumps({"iss": HS_ISS, "exp": 4_000_000_000})[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"


NONE_SPELLINGS = ["none", "None", "NONE", "nOnE"]

ALG_NONE = [
    pytest.param(
        (lambda f, a=alg: f.token(header={"alg": a}, signature=b"")),
        "jwt_malformed",  # "h.p." has an empty part: refused before the header is even read
        id=f"alg-{alg}-empty-signature",
    )
    for alg in NONE_SPELLINGS
] + [
    pytest.param(
        (lambda f, a=alg: f.token(header={"alg": a}, signature=b"\x01" * 32)),
        "alg_none",
        id=f"alg-{alg}-with-signature",
    )
    for alg in NONE_SPELLINGS
]

ALGORITHMS = [
    pytest.param(lambda f: f.token(HS_ISS, alg="HS512"), "alg_not_allowed", id="hs512-to-hs256-issuer"),
    pytest.param(lambda f: f.token(HS_ISS, alg="HS384"), "alg_not_allowed", id="hs384-to-hs256-issuer"),
    pytest.param(lambda f: f.token(HS_ISS, alg="RS256", key=f.keys.rsa), "alg_not_allowed", id="rs256-to-hs-issuer"),
    pytest.param(lambda f: f.token(RS_ISS, alg="PS256"), "alg_not_allowed", id="ps256-to-rs256-issuer"),
    pytest.param(lambda f: f.token(EC_ISS, alg="ES384"), "alg_not_allowed", id="es384-to-es256-issuer"),
    pytest.param(lambda f: f.token(HS_ISS, header={"alg": "hs256"}), "alg_not_allowed", id="alg-lowercase-hs256"),
    pytest.param(lambda f: f.token(HS_ISS, header={"alg": "XX999"}), "alg_not_allowed", id="alg-unknown"),
    pytest.param(lambda f: f.token(HS_ISS, drop_header=["alg"]), "jwt_malformed", id="alg-missing"),
    pytest.param(lambda f: f.token(HS_ISS, header={"alg": ["HS256"]}), "jwt_malformed", id="alg-not-a-string"),
    pytest.param(lambda f: f.token(HS_ISS, header={"alg": None}), "jwt_malformed", id="alg-null"),
]

KEY_CONFUSION = [
    pytest.param(
        lambda f: f.token(RS_ISS, alg="HS256", key=public_pem(f.keys.rsa)),
        "alg_not_allowed",
        id="hs256-signed-with-rs-issuer-public-pem",
    ),
    pytest.param(
        lambda f: f.token(JWKS_ISS, alg="HS256", key=public_pem(f.keys.jwks_rsa)),
        "alg_not_allowed",
        id="hs256-signed-with-jwks-public-pem",
    ),
    pytest.param(
        lambda f: f.token(
            JWKS_ISS, alg="HS256", header={"kid": "rsa-1"}, key=json.dumps(to_jwk(f.keys.jwks_rsa, "rsa-1")).encode()
        ),
        "alg_not_allowed",
        id="hs256-signed-with-published-jwk-json",
    ),
    pytest.param(lambda f: f.token(RS_ISS, key=f.keys.attacker_rsa), "bad_signature", id="rs256-attacker-key"),
    pytest.param(lambda f: f.token(EC_ISS, key=f.keys.attacker_ec), "bad_signature", id="es256-attacker-key"),
    pytest.param(lambda f: f.token(JWKS_ISS, key=f.keys.attacker_rsa), "bad_signature", id="jwks-rs256-attacker-key"),
    pytest.param(
        lambda f: f.token(RS_ISS, alg="ES256", key=f.keys.ec),
        "kid_unknown",  # allowed for the issuer, but its one key is RSA: no key can serve ES256
        id="es256-to-rs-issuer-whose-key-is-rsa",
    ),
    pytest.param(
        lambda f: f.token(JWKS_ISS, alg="RS256", header={"kid": "ec-1"}, key=f.keys.jwks_rsa),
        "kid_unknown",
        id="rs256-naming-the-ec-kid",
    ),
    pytest.param(
        lambda f: f.token(HS_ISS, key=HS_SECRET[:-1]),
        "bad_signature",
        id="hs256-secret-off-by-one-byte",
    ),
]

KEY_CONFUSION += [
    pytest.param(
        lambda f: f.token(AT_ISS, key=HS_SECRET), "bad_signature", id="hs256-signed-with-another-issuers-secret"
    ),
    pytest.param(
        lambda f: f.token(JWKS_ISS, key=f.keys.rsa), "bad_signature", id="jwks-kid-signed-with-rs-issuers-key"
    ),
    pytest.param(
        lambda f: f.token(JWKS_ISS, header={"kid": "rsa-1"}, key=f.keys.jwks_rsa, claims={"iss": RS_ISS}),
        "bad_signature",
        id="jwks-signed-token-claiming-the-rs-issuer",
    ),
]

KIDS = [
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": "nope-1"}), "kid_unknown", id="kid-unknown"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": "../../etc/passwd"}), "bad_kid", id="kid-path-traversal"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": "' OR 1=1 --"}), "bad_kid", id="kid-sql-injection"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": "k" * 10240}), "bad_kid", id="kid-10kb"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": "rsa-1\u0000"}), "bad_kid", id="kid-nul-byte"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": ""}), "bad_kid", id="kid-empty"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": 1}), "bad_kid", id="kid-number"),
    pytest.param(lambda f: f.token(JWKS_ISS, header={"kid": ["rsa-1"]}), "bad_kid", id="kid-list"),
    pytest.param(lambda f: f.token(HS_ISS, header={"kid": "/dev/null"}), "bad_kid", id="kid-dev-null-hs-issuer"),
]

HEADERS = [
    pytest.param(lambda f: f.token(header={"jku": "https://evil.example/jwks.json"}), "forbidden_header", id="jku"),
    pytest.param(lambda f: f.token(header={"x5u": "https://evil.example/cert.pem"}), "forbidden_header", id="x5u"),
    pytest.param(
        lambda f: f.token(RS_ISS, header={"jwk": to_jwk(f.keys.attacker_rsa, None)}, key=f.keys.attacker_rsa),
        "forbidden_header",
        id="jwk-embedded-attacker-key",
    ),
    pytest.param(lambda f: f.token(header={"jwk": to_jwk(f.keys.rsa, None)}), "forbidden_header", id="jwk-valid-sig"),
    pytest.param(lambda f: f.token(header={"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"]}), "forbidden_header", id="x5c"),
    pytest.param(lambda f: f.token(header={"crit": ["exp-ext"], "exp-ext": 1}), "unknown_crit", id="crit-unknown"),
    pytest.param(lambda f: f.token(header={"crit": ["b64"], "b64": True}), "unknown_crit", id="crit-b64"),
    pytest.param(lambda f: f.token(header={"crit": []}), "unknown_crit", id="crit-empty-list"),
    pytest.param(lambda f: f.token(header={"b64": False}), "jwt_malformed", id="b64-false-unencoded-payload"),
    pytest.param(lambda f: f.token(header={"zip": "DEF"}), "jwt_malformed", id="zip-compressed"),
    pytest.param(lambda f: f.token(header={"enc": "A256GCM"}), "jwt_malformed", id="enc-in-a-jws"),
]

TIME_AND_ISSUER = [
    pytest.param(lambda f: f.token(drop=["exp"]), "missing_claim", id="exp-missing"),
    pytest.param(lambda f: f.token(AT_ISS, drop=["exp"]), "missing_claim", id="exp-missing-at-issuer"),
    pytest.param(lambda f: f.token(claims={"exp": f.claims()["iat"] - 31 - 60}), "expired", id="expired-beyond-leeway"),
    pytest.param(lambda f: f.token(claims={"exp": 1}), "expired", id="expired-1970"),
    pytest.param(lambda f: f.token(claims={"nbf": f.claims()["iat"] + 120}), "not_yet_valid", id="nbf-future"),
    pytest.param(lambda f: f.token(claims={"iat": f.claims()["iat"] + 120}), "issued_in_future", id="iat-future"),
    pytest.param(lambda f: f.token(claims={"exp": "4000000000"}), "bad_claims", id="exp-as-string"),
    pytest.param(lambda f: f.token(claims={"exp": True}), "bad_claims", id="exp-as-bool"),
    pytest.param(lambda f: f.token(claims={"nbf": [0]}), "bad_claims", id="nbf-as-list"),
    pytest.param(lambda f: f.token(claims={"iss": "https://evil.example"}), "unknown_issuer", id="iss-unknown"),
    pytest.param(lambda f: f.token(claims={"iss": HS_ISS + "/"}), "unknown_issuer", id="iss-trailing-slash"),
    pytest.param(lambda f: f.token(claims={"iss": HS_ISS.upper()}), "unknown_issuer", id="iss-other-case"),
    pytest.param(lambda f: f.token(drop=["iss"]), "unknown_issuer", id="iss-missing"),
    pytest.param(lambda f: f.token(claims={"iss": [HS_ISS]}), "unknown_issuer", id="iss-as-list"),
    pytest.param(lambda f: f.token(claims={"aud": "other"}), "wrong_audience", id="aud-wrong"),
    pytest.param(lambda f: f.token(claims={"aud": ["a", "b"]}), "wrong_audience", id="aud-list-without-ours"),
    pytest.param(lambda f: f.token(claims={"aud": []}), "wrong_audience", id="aud-empty-list"),
    pytest.param(lambda f: f.token(claims={"aud": [AUD, 1]}), "wrong_audience", id="aud-list-with-a-number"),
    pytest.param(lambda f: f.token(claims={"aud": {"api": True}}), "wrong_audience", id="aud-object"),
    pytest.param(lambda f: f.token(drop=["aud"]), "wrong_audience", id="aud-missing"),
    pytest.param(lambda f: f.token(RS_ISS, claims={"aud": "other"}), "wrong_audience", id="aud-wrong-rs-issuer"),
    pytest.param(lambda f: f.token(drop=["sub"]), "missing_claim", id="required-sub-missing"),
    pytest.param(lambda f: f.token(claims={"sub": 42}), "bad_claims", id="sub-number"),
    pytest.param(lambda f: f.token(claims={"sub": "alice\r\nX-Admin: 1"}), "bad_claims", id="sub-header-injection"),
    pytest.param(lambda f: f.token(claims={"sub": "a" * 257}), "bad_claims", id="sub-too-long"),
    pytest.param(lambda f: f.token(claims={"jti": 7}), "bad_claims", id="jti-number"),
]

TYP = [
    pytest.param(lambda f: f.token(AT_ISS, header={"typ": "JWT"}), "wrong_typ", id="typ-id-token-jwt"),
    pytest.param(lambda f: f.token(AT_ISS, drop_header=["typ"]), "wrong_typ", id="typ-missing"),
    pytest.param(lambda f: f.token(AT_ISS, header={"typ": "application/jwt"}), "wrong_typ", id="typ-application-jwt"),
    pytest.param(lambda f: f.token(AT_ISS, header={"typ": "at+jwt "}), "wrong_typ", id="typ-trailing-space"),
    pytest.param(lambda f: f.token(AT_ISS, header={"typ": "x/at+jwt"}), "wrong_typ", id="typ-other-media-prefix"),
    pytest.param(lambda f: f.token(AT_ISS, header={"typ": 1}), "wrong_typ", id="typ-number"),
]

ROLES_AND_SCOPES = [
    pytest.param(lambda f: f.token(claims={"roles": "admin"}), "bad_claims", id="roles-string"),
    pytest.param(lambda f: f.token(claims={"roles": [1]}), "bad_claims", id="roles-number"),
    pytest.param(lambda f: f.token(claims={"roles": [["admin"]]}), "bad_claims", id="roles-nested-list"),
    pytest.param(lambda f: f.token(claims={"roles": {"admin": True}}), "bad_claims", id="roles-object"),
    pytest.param(lambda f: f.token(claims={"roles": ["user,admin"]}), "bad_claims", id="role-with-comma"),
    pytest.param(lambda f: f.token(claims={"roles": ["user admin"]}), "bad_claims", id="role-with-space"),
    pytest.param(lambda f: f.token(claims={"roles": ["admin\t"]}), "bad_claims", id="role-with-tab"),
    pytest.param(lambda f: f.token(claims={"roles": ["admin\n"]}), "bad_claims", id="role-with-newline"),
    pytest.param(lambda f: f.token(claims={"roles": ["ad\u0000min"]}), "bad_claims", id="role-with-nul"),
    pytest.param(lambda f: f.token(claims={"roles": ["admin\u007f"]}), "bad_claims", id="role-with-del"),
    pytest.param(lambda f: f.token(claims={"roles": ["\u2003admin"]}), "bad_claims", id="role-with-unicode-space"),
    pytest.param(lambda f: f.token(claims={"roles": [""]}), "bad_claims", id="role-empty-string"),
    pytest.param(lambda f: f.token(claims={"scope": ["read"]}), "bad_claims", id="scope-list"),
    pytest.param(lambda f: f.token(claims={"scope": 1}), "bad_claims", id="scope-number"),
    pytest.param(lambda f: f.token(claims={"scope": "read,write"}), "bad_claims", id="scope-with-comma"),
    pytest.param(lambda f: f.token(claims={"scope": "read\nwrite"}), "bad_claims", id="scope-with-newline"),
    pytest.param(lambda f: f.token(claims={"scp": "read"}), "bad_claims", id="scp-string"),
]


def es256(f: Forger) -> str:
    return f.token(EC_ISS)


ECDSA = [
    pytest.param(resign(es256, lambda si, sig: bytes(64)), "bad_signature", id="es256-r0-s0"),
    pytest.param(resign(es256, lambda si, sig: bytes(32) + sig[32:]), "bad_signature", id="es256-r0"),
    pytest.param(resign(es256, lambda si, sig: sig[:32] + bytes(32)), "bad_signature", id="es256-s0"),
    pytest.param(
        resign(es256, lambda si, sig: P256_ORDER.to_bytes(32, "big") * 2), "bad_signature", id="es256-r-s-equal-n"
    ),
    pytest.param(resign(es256, lambda si, sig: sig[:63]), "bad_signature", id="es256-63-bytes"),
    pytest.param(resign(es256, lambda si, sig: sig + b"\x00"), "bad_signature", id="es256-65-bytes"),
    pytest.param(resign(es256, lambda si, sig: sig[:32]), "bad_signature", id="es256-r-only"),
    pytest.param(
        lambda f: resign(es256, lambda si, sig: f.keys.ec.sign(si.encode(), ec.ECDSA(hashes.SHA256())))(f),
        "bad_signature",
        id="es256-der-encoded",
    ),
    pytest.param(
        lambda f: resign(es256, lambda si, sig: raw_ec_signature(f.keys.p384, si.encode(), hashes.SHA256()))(f),
        "bad_signature",
        id="es256-signed-with-p384",
    ),
    pytest.param(
        resign(lambda f: f.token(JWKS_ISS, alg="ES256"), lambda si, sig: bytes(64)),
        "bad_signature",
        id="jwks-es256-r0-s0",
    ),
]

DUPLICATES = [
    pytest.param(
        lambda f: f.token(raw_header='{"alg":"HS256","typ":"JWT","alg":"none"}'),
        "jwt_duplicate_keys",
        id="header-duplicate-alg",
    ),
    pytest.param(
        lambda f: f.token(JWKS_ISS, raw_header='{"alg":"RS256","kid":"rsa-1","kid":"rsa-2"}'),
        "jwt_duplicate_keys",
        id="header-duplicate-kid",
    ),
    pytest.param(
        lambda f: f.token(raw_payload=json.dumps(f.claims())[:-1] + ', "sub": "admin"}'),
        "jwt_duplicate_keys",
        id="payload-duplicate-sub",
    ),
    pytest.param(
        lambda f: f.token(raw_payload=json.dumps(f.claims())[:-1] + ', "s\\u0075b": "admin"}'),
        "jwt_duplicate_keys",
        id="payload-duplicate-sub-via-escape",
    ),
    pytest.param(
        lambda f: f.token(raw_payload=json.dumps(f.claims())[:-1] + ', "iss": "https://evil.example"}'),
        "jwt_duplicate_keys",
        id="payload-duplicate-iss",
    ),
    pytest.param(
        lambda f: f.token(raw_payload=json.dumps(f.claims())[:-1] + ', "realm": {"roles": ["u"], "roles": ["admin"]}}'),
        "jwt_duplicate_keys",
        id="payload-duplicate-nested",
    ),
]

SHAPES = [
    pytest.param(
        lambda f: compact('{"alg":"RSA-OAEP","enc":"A256GCM"}', "k") + ".iv.cipher.tag",
        "jwt_malformed",
        id="jwe-5-parts",
    ),
    pytest.param(lambda f: f.token().rpartition(".")[0], "jwt_malformed", id="2-parts"),
    pytest.param(lambda f: f.token() + ".e30", "jwt_malformed", id="4-parts"),
    pytest.param(lambda f: "..", "jwt_malformed", id="all-parts-empty"),
    pytest.param(lambda f: "." + f.token().split(".", 1)[1], "jwt_malformed", id="header-empty"),
    pytest.param(lambda f: f.token().replace(".", "..", 1), "jwt_malformed", id="empty-part-inside"),
    pytest.param(lambda f: f.token()[:-2] + "+/", "jwt_malformed", id="base64-not-url-alphabet"),
    pytest.param(lambda f: f.token() + "==", "jwt_malformed", id="padding"),
    pytest.param(lambda f: f.token().replace(".", "=.", 1), "jwt_malformed", id="padding-in-header"),
    pytest.param(lambda f: f.token()[:-1] + "~", "jwt_malformed", id="tilde"),
    pytest.param(lambda f: f.token().replace(".", " .", 1), "jwt_malformed", id="space-inside"),
    pytest.param(lambda f: f.token().replace(".", "\t.", 1), "jwt_malformed", id="tab-inside"),
    pytest.param(lambda f: f.token()[:-1] + "é", "jwt_malformed", id="non-ascii"),
    pytest.param(lambda f: f.token()[:-1] + '"', "jwt_malformed", id="quote"),
    pytest.param(lambda f: f.token().replace(".", "A.", 1), "jwt_malformed", id="header-bad-base64-length"),
    pytest.param(lambda f: f.token(raw_header="alg=HS256"), "jwt_malformed", id="header-not-json"),
    pytest.param(lambda f: f.token(raw_header='["HS256"]'), "jwt_malformed", id="header-json-array"),
    pytest.param(lambda f: f.token(raw_header='\ufeff{"alg":"HS256"}'), "jwt_malformed", id="header-with-bom"),
    pytest.param(raw_payload("null"), "jwt_malformed", id="payload-null"),
    pytest.param(raw_payload('"alice"'), "jwt_malformed", id="payload-string"),
    pytest.param(raw_payload("{'sub': 'alice'}"), "jwt_malformed", id="payload-python-dict"),
    pytest.param(lambda f: f.token(raw_payload=b"\xff\xfe{}"), "jwt_malformed", id="payload-not-utf8-json"),
    pytest.param(raw_payload(nested(3000)), "jwt_malformed", id="payload-nested-3000-deep"),
]

TAMPERING = [
    pytest.param(swap_payload(lambda f: f.token(), sub="admin"), "bad_signature", id="payload-sub-swapped"),
    pytest.param(swap_payload(lambda f: f.token(), roles=["admin"]), "bad_signature", id="payload-roles-swapped"),
    pytest.param(
        swap_payload(lambda f: f.token(RS_ISS), iss=RS_ISS, sub="admin"), "bad_signature", id="payload-swapped-rs256"
    ),
    pytest.param(
        swap_payload(lambda f: f.token(EC_ISS), iss=EC_ISS, sub="admin"), "bad_signature", id="payload-swapped-es256"
    ),
    pytest.param(
        swap_payload(lambda f: f.token(JWKS_ISS), iss=JWKS_ISS, sub="admin"), "bad_signature", id="payload-swapped-jwks"
    ),
    pytest.param(
        lambda f: f.token(header={"typ": "at+jwt"}).split(".")[0] + "." + f.token().split(".", 1)[1],
        "bad_signature",
        id="header-swapped",
    ),
    pytest.param(
        resign(lambda f: f.token(), lambda si, sig: sig[:-1] + bytes([sig[-1] ^ 1])),
        "bad_signature",
        id="signature-bit-flipped",
    ),
    pytest.param(resign(lambda f: f.token(), lambda si, sig: sig[:16]), "bad_signature", id="signature-truncated"),
    pytest.param(resign(lambda f: f.token(RS_ISS), lambda si, sig: sig[:-1]), "bad_signature", id="rs256-truncated"),
    pytest.param(
        lambda f: f.token().rpartition(".")[0] + "." + f.token(claims={"sub": "bob"}).rpartition(".")[2],
        "bad_signature",
        id="signature-of-another-token",
    ),
]


@pytest.mark.parametrize(
    ("build", "reason"),
    ALG_NONE
    + ALGORITHMS
    + KEY_CONFUSION
    + KIDS
    + HEADERS
    + TIME_AND_ISSUER
    + TYP
    + ROLES_AND_SCOPES
    + ECDSA
    + DUPLICATES
    + SHAPES
    + TAMPERING,
)
async def test_forged_bearer_token_is_refused(gate: Gate, build: Build, reason: str) -> None:
    token = build(gate.forge)
    answer = await gate.bearer(token)
    await assert_refused(gate, answer, reason, hidden=[token[:40]])


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda f: f.token(header={"alg": "none"}, signature=b"x"), "alg_none", id="alg-none"),
        pytest.param(swap_payload(lambda f: f.token(), sub="admin"), "bad_signature", id="payload-swapped"),
        pytest.param(lambda f: f.token(claims={"roles": ["user,admin"]}), "bad_claims", id="role-with-comma"),
        pytest.param(
            lambda f: f.token(raw_payload=json.dumps(f.claims())[:-1] + ', "sub": "admin"}'),
            "jwt_duplicate_keys",
            id="payload-duplicate-sub",
        ),
    ],
)
async def test_forged_cookie_token_is_refused_the_same_way(gate: Gate, build: Build, reason: str) -> None:
    answer = await gate.send([("Cookie", f"{COOKIE}={build(gate.forge)}")])
    await assert_refused(gate, answer, reason)


def signed_payload(text: str) -> Build:
    """Claims exactly as written (JSON extensions included), properly signed by the HS issuer."""
    return lambda f: f.token(raw_payload=text.replace("ISS", HS_ISS).replace("AUD", AUD))


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(signed_payload('{"iss":"ISS","aud":"AUD","sub":"alice","exp":NaN}'), id="exp-NaN"),
        pytest.param(signed_payload('{"iss":"ISS","aud":"AUD","sub":"alice","exp":Infinity}'), id="exp-Infinity"),
        pytest.param(signed_payload('{"iss":"ISS","aud":"AUD","sub":"alice","exp":1e400}'), id="exp-1e400-overflows"),
        pytest.param(
            signed_payload('{"iss":"ISS","aud":"AUD","sub":"alice","exp":1' + "0" * 400 + "}"), id="exp-10^400-integer"
        ),
        pytest.param(
            signed_payload('{"iss":"ISS","aud":"AUD","sub":"alice","exp":4000000000,"nbf":NaN}'), id="nbf-NaN"
        ),
        pytest.param(
            signed_payload('{"iss":"ISS","aud":"AUD","sub":"alice","exp":4000000000,"iat":NaN}'), id="iat-NaN"
        ),
    ],
)
async def test_signed_token_with_non_finite_times_is_refused(gate: Gate, build: Build) -> None:
    # NaN and Infinity are not JSON (RFC 8259 §6) and a time that never comes is no expiry at all:
    # "a token without expiry is never accepted" (config.py). Even a signed one must get a 401, not a 500.
    answer = await gate.bearer(build(gate.forge))
    await assert_refused(gate, answer, "bad_claims")


async def test_refusals_do_not_tell_the_attacker_which_check_failed(gate: Gate) -> None:
    """authn.py: "the description stays generic: the reason code goes to the log only". A body that
    names the failed check is an oracle: it tells configured issuers (unknown-issuer vs anything
    else), published kids (kid-unknown vs bad-signature) and allowed algorithms apart."""
    f = gate.forge
    probes = {
        "unknown_issuer": f.token(claims={"iss": "https://guess.example"}),
        "alg_not_allowed": f.token(alg="HS512"),
        "kid_unknown": f.token(JWKS_ISS, header={"kid": "guess-1"}),
        "bad_signature": f.token(JWKS_ISS, key=f.keys.attacker_rsa),
        "expired": f.token(claims={"exp": 1}),
    }
    seen = set()
    for reason, token in probes.items():
        answer = await gate.bearer(token)
        await assert_refused(gate, answer, reason)
        doc = answer.json()
        seen.add((doc["type"], doc["title"], answer.headers["www-authenticate"]))
    assert len(seen) == 1, sorted(seen)
