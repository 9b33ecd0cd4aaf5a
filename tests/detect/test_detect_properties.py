"""Properties: scanning arbitrary input never raises and stays fast (linear patterns, no backtracking)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detect import CLASSES, Engine, json_fields, query_fields, request_fields

ENGINE = Engine(CLASSES, url_fields=["body.url", "query.url"])
ALPHABET = st.sampled_from(
    list("'\"`;|&$(){}[]<>=/\\.%-#*!@ \t\r\n:,+~^?0aAeinorstuvxz") + ["\x00", "é", "．", "\udcc0"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(ALPHABET, max_size=200),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(ALPHABET, max_size=20), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.text(ALPHABET, max_size=400), st.text(max_size=200))
def test_any_text_scans_without_error(value: str, other: str) -> None:
    for doc in ({"url": value, "x": other}, [value, other]):
        ENGINE.scan(json_fields(doc))
    ENGINE.scan(query_fields("url=" + value + "&q=" + other))
    ENGINE.scan(request_fields(path="/" + value.replace("/", "_"), headers=[("User-Agent", other)]))


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_any_json_scans_without_error(doc: object) -> None:
    ENGINE.scan(json_fields(doc))


@settings(max_examples=30, deadline=None)
@given(st.text(ALPHABET, min_size=1, max_size=8))
def test_long_repetitive_input_stays_linear(unit: str) -> None:
    value = (unit * (20_000 // len(unit)))[:20_000]
    start = time.perf_counter()
    ENGINE.scan(json_fields({"url": value, "text": value}))
    assert time.perf_counter() - start < 0.5  # a backtracking pattern would take seconds here


# adversarial repetitions for the patterns added for the fresh set's shapes (cmdi arith, variable, `+` blanks,
# echo's followers, quoted bare commands; lfi's hex literals, lone overlong lead bytes, U+FFFD runs)
ADVERSARIAL = [
    "a$((1+", "$((1+1))", "$((1+1)", "$(( 1 +", ";$a", "$a=1;$a;", "a=", "|echo a", "echo a$", "; + + +", "++++",
    "|+", ";'", "'uname -n", "'ls -la /", "\n+dir+", "<!--#exec ", "0x2f", "..0x5c", "\ufffd", "..\ufffd",
    "%c0%2f", "..%c0", "\udcc0/", "..\udcc0.", "^ ", "<+", "^+ls", "<l", "/etc/a",
]


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_new_patterns_stay_linear(unit: str) -> None:
    for value in ((unit * (20_000 // len(unit)))[:20_000], "x" + unit * (20_000 // len(unit)) + "=;$x"):
        start = time.perf_counter()
        ENGINE.scan(json_fields({"url": value, "text": value}))
        ENGINE.scan(query_fields("q=" + value[:4000]))
        assert time.perf_counter() - start < 0.5, unit


PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


@pytest.mark.parametrize("blank", [" ", "\t", "\n", "+"])
def test_a_run_of_blanks_after_punctuation_stays_linear(blank: str) -> None:
    # `<` and 20,000 spaces took seconds (`<\s*/?\s*` in the XSS tag pattern tried every split of the run), and
    # so did `)`, `]`, `}` (`\s*;?\s*` after a closer) and a quote and a closer (`\s*[;)}\]]*\s*`)
    heads = list(PUNCTUATION) + [q + c for q in "'\"`" for c in PUNCTUATION]
    for head in heads:
        for value in (head + blank * 20_000, head + blank * 20_000 + "x", head + (blank + "/") * 10_000):
            start = time.perf_counter()
            ENGINE.scan(json_fields({"url": value, "text": value}))
            assert time.perf_counter() - start < 0.5, (head, blank)


# the word-headed rules (found from a literal word, then blanks): a run of blanks after the word, or after the
# word and one more token, must not make a pattern try every split of the run
WORD_HEADS = ["or", "and", "x or", "' or", "x' and", "or a", "or (", "hi or a=", "declare", "declare @a", "exec",
              "exec(", "exec('a'", "select", "(select", "(select(", "order by", "order by 1", "call", "desc",
              "start-sleep", ";start-sleep", "iex", "onerror=", "a onerror=", "=alert", "+alert(", "createelement(",
              "./", "/a/", "/opt", "proc/self", "union", "case", "sleep(", "'a'=", "email is", "|{echo,", "{alert(",
              "<x:", "(alert", "child_process", "=alert(", "for", "for /f", "for /f /d", "%a in", "c$@", "c'", "w^",
              "'collate", "email notnull", "email ilike", "iex (", "invoke-webrequest", ".ssh/"]


@pytest.mark.parametrize("blank", [" ", "\t", "\n", "+"])
def test_a_run_of_blanks_after_words_stays_linear(blank: str) -> None:
    for head in WORD_HEADS:
        for value in (head + blank * 20_000, head + blank * 20_000 + "x", head + (blank + head) * 2_000):
            start = time.perf_counter()
            ENGINE.scan(json_fields({"url": value, "text": value}))
            assert time.perf_counter() - start < 0.5, (head, blank)


def test_many_handlers_after_runs_of_lt_stay_linear() -> None:
    # `<<<<<<< onabc=` repeated: the handler rule once walked back over every `<` in Python for each `on...=`
    # (1 MB took ~4 s); it now finds the open tag with one search
    value = ("<" * 7 + " onabc=") * 21_428
    start = time.perf_counter()
    ENGINE.scan(json_fields({"text": value}))
    assert time.perf_counter() - start < 0.5
