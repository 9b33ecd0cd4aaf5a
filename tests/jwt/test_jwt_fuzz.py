"""Properties: whatever a client puts where a token goes, Bastion answers, and never with a 5xx."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.jwt.conftest import COOKIE, Gate

# any latin-1 text an HTTP/1.1 field value can carry on the wire: no CR, LF or NUL
FIELD_TEXT = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=255, blacklist_characters="\r\n"), max_size=300
)
# near-misses of a real token: a slice replaced by arbitrary text
MUTATION = st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=8), FIELD_TEXT)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written outside the test tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def mutate(token: str, at: int, cut: int, text: str) -> str:
    i = at % (len(token) + 1)
    return token[:i] + text + token[i + cut :]


async def assert_answered_without_5xx(gate: Gate, headers: list[tuple[str, str]]) -> None:
    answer = await gate.send(headers)
    assert 200 <= answer.status < 500, (headers, answer.status, answer.body[:200])


@FUZZ
@given(
    value=st.one_of(FIELD_TEXT, FIELD_TEXT.map(lambda s: "Bearer " + s), MUTATION),
)
async def test_any_authorization_value_is_answered_without_a_5xx(gate: Gate, value: str | tuple[int, int, str]) -> None:
    if isinstance(value, tuple):
        value = "Bearer " + mutate(gate.forge.legit(), *value)
    await assert_answered_without_5xx(gate, [("Authorization", value)])


@FUZZ
@given(value=st.one_of(FIELD_TEXT, MUTATION))
async def test_any_token_cookie_is_answered_without_a_5xx(gate: Gate, value: str | tuple[int, int, str]) -> None:
    if isinstance(value, tuple):
        value = mutate(gate.forge.legit(), *value)
    await assert_answered_without_5xx(gate, [("Cookie", f"{COOKIE}={value}")])
