"""Where a token may come from: exactly one token, from one configured place, of a bounded size,
and a cookie token on an unsafe method only from our own origin (CSRF)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from tests.jwt.conftest import (
    APP_ORIGIN,
    CHALLENGE_INVALID,
    CHALLENGE_MISSING,
    COOKIE,
    HOST,
    Forger,
    Gate,
    MakeGate,
    assert_refused,
)

Headers = Sequence[tuple[str, str]]
BuildHeaders = Callable[[Forger], Headers]


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


def cookie(token: str) -> tuple[str, str]:
    return ("Cookie", f"{COOKIE}={token}")


@pytest.mark.parametrize(
    ("build", "reason", "challenge"),
    [
        pytest.param(lambda f: [], "jwt_missing", CHALLENGE_MISSING, id="no-credentials"),
        pytest.param(
            lambda f: [("Cookie", "other=1; session=abc")],
            "jwt_missing",
            CHALLENGE_MISSING,
            id="unrelated-cookies-only",
        ),
        pytest.param(
            lambda f: [(f"{COOKIE}", f.legit())],
            "jwt_missing",
            CHALLENGE_MISSING,
            id="token-in-a-header-named-like-the-cookie",
        ),
        pytest.param(
            lambda f: [bearer(f.legit()), bearer(f.legit())],
            "jwt_multiple",
            CHALLENGE_INVALID,
            id="two-authorization-headers",
        ),
        pytest.param(
            lambda f: [bearer(f.legit()), ("authorization", "Bearer x.y.z")],
            "jwt_multiple",
            CHALLENGE_INVALID,
            id="two-authorization-headers-different-case",
        ),
        pytest.param(
            lambda f: [("Authorization", f.legit())], "jwt_wrong_scheme", CHALLENGE_INVALID, id="bearer-missing"
        ),
        pytest.param(
            lambda f: [("Authorization", "Basic YWxpY2U6c2VjcmV0")], "jwt_wrong_scheme", CHALLENGE_INVALID, id="basic"
        ),
        pytest.param(
            lambda f: [("Authorization", f"Token {f.legit()}")],
            "jwt_wrong_scheme",
            CHALLENGE_INVALID,
            id="other-scheme",
        ),
        pytest.param(
            lambda f: [("Authorization", f"Bearer\t{f.legit()}")],
            "jwt_wrong_scheme",
            CHALLENGE_INVALID,
            id="scheme-tab-separated",
        ),
        pytest.param(lambda f: [("Authorization", "Bearer")], "jwt_malformed", CHALLENGE_INVALID, id="bearer-no-token"),
        pytest.param(
            lambda f: [("Authorization", f"Bearer  {f.legit()}")],
            "jwt_malformed",
            CHALLENGE_INVALID,
            id="bearer-two-spaces",
        ),
        pytest.param(
            lambda f: [("Authorization", f"Bearer {f.legit()} {f.legit()}")],
            "jwt_malformed",
            CHALLENGE_INVALID,
            id="two-tokens-one-header",
        ),
        pytest.param(
            lambda f: [("Authorization", f"Bearer {f.legit()},{f.legit()}")],
            "jwt_malformed",
            CHALLENGE_INVALID,
            id="two-tokens-comma-joined",
        ),
        pytest.param(
            lambda f: [bearer("e" * (16 * 1024 + 1))],
            "jwt_too_large",
            CHALLENGE_INVALID,
            id="token-over-max-token-bytes",
        ),
        pytest.param(
            lambda f: [bearer(f.token(claims={"pad": "x" * 13_000}))],
            "jwt_too_large",
            CHALLENGE_INVALID,
            id="signed-token-over-max-token-bytes",
        ),
        pytest.param(
            lambda f: [bearer(f.legit()), cookie(f.legit())], "jwt_multiple", CHALLENGE_INVALID, id="header-and-cookie"
        ),
        pytest.param(
            lambda f: [bearer(f.legit()), cookie("junk")],
            "jwt_multiple",
            CHALLENGE_INVALID,
            id="header-and-junk-cookie",
        ),
        pytest.param(
            lambda f: [("Cookie", f"{COOKIE}={f.legit()}; {COOKIE}={f.legit()}")],
            "jwt_multiple",
            CHALLENGE_INVALID,
            id="cookie-twice-in-one-header",
        ),
        pytest.param(
            lambda f: [cookie(f.legit()), cookie(f.legit())],
            "jwt_multiple",
            CHALLENGE_INVALID,
            id="cookie-in-two-headers",
        ),
        pytest.param(lambda f: [cookie("junk")], "jwt_malformed", CHALLENGE_INVALID, id="cookie-junk"),
        pytest.param(
            lambda f: [cookie(f.legit()[:-2] + "\xff\xfe")],
            "jwt_malformed",
            CHALLENGE_INVALID,
            id="cookie-token-not-utf8",
        ),
        pytest.param(
            lambda f: [cookie(f'"{f.legit()}"')], "jwt_malformed", CHALLENGE_INVALID, id="cookie-token-quoted"
        ),
    ],
)
async def test_token_transport_attack_is_refused(gate: Gate, build: BuildHeaders, reason: str, challenge: str) -> None:
    answer = await gate.send(build(gate.forge))
    await assert_refused(gate, answer, reason, challenge=challenge)


@pytest.mark.parametrize(
    "place",
    [pytest.param(bearer, id="authorization-header"), pytest.param(cookie, id="cookie")],
)
async def test_token_over_max_token_bytes_is_refused_wherever_it_comes_from(
    make_gate: MakeGate, place: Callable[[str], tuple[str, str]]
) -> None:
    gate = await make_gate(auth={"max_token_bytes": 4096})
    token = gate.forge.legit(pad="x" * 5000)  # properly signed: only its size is wrong
    assert len(token) > 4096
    answer = await gate.send([place(token)])
    await assert_refused(gate, answer, "jwt_too_large")


UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


@pytest.mark.parametrize(
    ("method", "extra"),
    [pytest.param(m, [], id=f"{m.lower()}-no-origin") for m in UNSAFE]
    + [
        pytest.param("POST", [("Origin", "https://evil.example")], id="origin-foreign"),
        pytest.param("POST", [("Origin", "null")], id="origin-null"),
        pytest.param("POST", [("Origin", f"https://{HOST}")], id="origin-other-scheme"),
        pytest.param("POST", [("Origin", f"http://{HOST}.evil.example")], id="origin-suffix"),
        pytest.param("POST", [("Origin", f"http://{HOST}:8443")], id="origin-other-port"),
        pytest.param("POST", [("Origin", APP_ORIGIN + ".evil.example")], id="origin-allowed-as-prefix"),
        pytest.param("POST", [("Sec-Fetch-Site", "cross-site")], id="sec-fetch-cross-site"),
        pytest.param("POST", [("Sec-Fetch-Site", "same-site")], id="sec-fetch-same-site"),
        pytest.param("POST", [("Sec-Fetch-Site", "none")], id="sec-fetch-none"),
        pytest.param(
            "POST", [("Origin", "https://evil.example"), ("Sec-Fetch-Site", "same-origin")], id="origin-wins-over-sfs"
        ),
    ],
)
async def test_cookie_token_on_unsafe_method_needs_our_origin(gate: Gate, method: str, extra: Headers) -> None:
    answer = await gate.send([cookie(gate.forge.legit()), *extra], method=method)
    await assert_refused(gate, answer, "csrf_origin_mismatch", status=403, challenge=None)


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        pytest.param("POST", [("Origin", f"http://{HOST}")], id="origin-matches-host"),
        pytest.param("POST", [("Origin", f"http://{HOST.upper()}/")], id="origin-matches-host-case-and-slash"),
        pytest.param("POST", [("Origin", APP_ORIGIN)], id="origin-in-cookie-origins"),
        pytest.param("DELETE", [("Origin", APP_ORIGIN + "/")], id="origin-in-cookie-origins-trailing-slash"),
        pytest.param("POST", [("Sec-Fetch-Site", "same-origin")], id="sec-fetch-same-origin"),
        pytest.param("GET", [], id="get-no-origin"),
        pytest.param("HEAD", [], id="head-no-origin"),
        pytest.param("OPTIONS", [], id="options-no-origin"),
    ],
)
async def test_cookie_token_from_our_origin_passes(gate: Gate, method: str, extra: Headers) -> None:
    answer = await gate.send([cookie(gate.forge.legit()), *extra], method=method)
    assert answer.status == 200, answer.body
    [seen] = gate.upstream.seen
    assert seen.method == method
    assert seen.header("X-User-Id") == "alice"


@pytest.mark.parametrize("method", UNSAFE)
async def test_header_token_needs_no_origin(gate: Gate, method: str) -> None:
    answer = await gate.bearer(gate.forge.legit(), method=method)
    assert answer.status == 200, answer.body
    assert [s.method for s in gate.upstream.seen] == [method]
