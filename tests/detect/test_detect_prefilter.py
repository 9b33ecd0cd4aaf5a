"""The cost work must not change what is detected (prefilter.py and the fast paths it brought).

- A screen is a necessary condition: wherever a rule's searcher matches, its screen matches too (on the
  tuning corpus, the class tables and random mixes of both). The joined screen covers every rule set's.
- Every screen alternative starts with punctuation, so `re` skips to it in C (and the joined screen
  compiles with a first-character set, where CPython's internals let us look).
- Each hand-optimised search gives what the simple version it replaced gives (the reference versions
  below are the code as it was), on hypothesis-generated text from the characters each one reacts to.
"""

from __future__ import annotations

import gc
import html
import random
import re
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.detect  # noqa: F401  (builds every detector and seals the joined screen)
from proxy.detect import crlf, prefilter, sqli, ssrf, xss
from proxy.detect.base import entity_decoded, normalise
from proxy.detect.searchers import Calls, Hit
from tests.detect.test_detect_classes import ATTACKS, BENIGN, FRESH_GENERALISED, GENERALISED, NEAR_MISSES

CORPUS = Path(__file__).resolve().parents[2] / "benchmarks" / "corpus"
RULE_SETS = [o for o in gc.get_objects() if isinstance(o, prefilter.Rules)]


def _texts() -> list[str]:
    lines = [line for folder in ("attacks", "attacks-fresh") for p in sorted((CORPUS / folder).glob("*.txt"))
             for line in p.read_text(encoding="utf-8").split("\n") if line]
    values = lines + [urllib.parse.unquote(line) for line in lines] + [v for _, v in ATTACKS] + BENIGN
    values += [v for _, v, _ in GENERALISED + FRESH_GENERALISED] + NEAR_MISSES
    rnd = random.Random(5)
    mixes = [rnd.choice(BENIGN) + " " + rnd.choice(values) + " " + rnd.choice(BENIGN) for _ in range(2000)]
    texts = [normalise(v) for v in values + mixes]
    return texts + [entity_decoded(t).lower() for t in texts if "&" in t]


TEXTS = _texts()


def test_every_rule_set_is_in_the_joined_screen() -> None:
    named = {r.cls for r in RULE_SETS if r.screen is not None and r.sealed}
    assert {"sqli", "nosqli", "xss", "lfi", "cmdi", "ssti"} <= named


@pytest.mark.parametrize("rules", [pytest.param(r, id=f"{r.cls}-{i}") for i, r in enumerate(RULE_SETS)])
def test_a_screen_matches_wherever_its_rule_fires(rules: prefilter.Rules) -> None:
    fired = 0
    for (rid, _needles, searcher), screen in rules.screens:
        if screen is None:
            continue
        pattern = re.compile(screen)
        for text in TEXTS:
            if searcher.search(text) is not None:
                fired += 1
                assert pattern.search(text) is not None, (rid, text)
                assert rules.screen is not None and rules.screen.search(text) is not None, (rid, text)
                if rules.sealed:
                    assert prefilter._merged is not None and prefilter._merged.search(text) is not None
    assert fired or all(s is None for _, s in rules.screens)


@pytest.mark.parametrize("rules", [pytest.param(r, id=f"{r.cls}-{i}") for i, r in enumerate(RULE_SETS) if r.sealed])
def test_no_screen_matches_before_the_joined_one(rules: prefilter.Rules) -> None:
    # a rule set searches its own screen from where the joined screen first matched (Rules.first)
    assert rules.screen is not None and prefilter._merged is not None
    for text in TEXTS:
        own = rules.screen.search(text)
        if own is not None:
            joined = prefilter._merged.search(text)
            assert joined is not None and joined.start() <= own.start(), text


@pytest.mark.parametrize("rules", [pytest.param(r, id=f"{r.cls}-{i}") for i, r in enumerate(RULE_SETS)])
def test_screens_start_with_punctuation(rules: prefilter.Rules) -> None:
    for (rid, _, _), screen in rules.screens:
        if screen is not None:
            for alternative in prefilter.alternatives(screen):
                assert prefilter.head(alternative) is not None, (rid, alternative)


def test_the_joined_screen_skips_to_its_first_characters() -> None:
    compiler = pytest.importorskip("re._compiler")
    parser = pytest.importorskip("re._parser")
    constants = pytest.importorskip("re._constants")
    assert prefilter._merged is not None
    code = compiler._code(parser.parse(prefilter._merged.pattern, 0), 0)
    assert code[0] == constants.INFO
    assert code[2] & (constants.SRE_INFO_PREFIX | constants.SRE_INFO_CHARSET)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param(r"a|(b|c)|[|]", ["a", "(b|c)", "[|]"], id="group-and-class"),
        pytest.param(r"\||x[^]|]|y", [r"\|", "x[^]|]", "y"], id="escaped-bar-and-leading-bracket"),
        pytest.param(r"'\s*(?:or|and)", [r"'\s*(?:or|and)"], id="one"),
    ],
)
def test_alternatives(pattern: str, expected: list[str]) -> None:
    assert prefilter.alternatives(pattern) == expected


@pytest.mark.parametrize(
    ("alternative", "head"),
    [("'x", "'"), (r"\(x", r"\("), (r"\nx", r"\n"), ("or", None), (r"\bor", None), ("[ab]", None), ("(?:a)", None),
     (r"\sx", None), ("", None), ("_x", None)],
)
def test_head(alternative: str, head: str | None) -> None:
    assert prefilter.head(alternative) == head


def test_grouped_and_starting() -> None:
    assert prefilter.starting(("'", '"'), r"\s*or") == r"'\s*or|" + '"' + r"\s*or"
    assert prefilter.grouped(["'a|;b", "'c"]) == "'(?:a|c)|;(?:b)"
    with pytest.raises(ValueError, match="punctuation"):
        prefilter.grouped(["union"])


def test_a_rule_set_built_after_sealing_uses_its_own_screen() -> None:
    late = prefilter.Rules("late", [("semi", ((";",),), re.compile(r";\s*rm\b"))])
    prefilter.prime("a; rm -rf")
    hit = late.first("a; rm -rf")
    assert not late.sealed and hit is not None and hit[0] == "late.semi"
    assert late.first("a, rm") is None


def test_crlf_encoded_characters_are_all_there_are() -> None:
    # the IGNORECASE classes of `_ENCODED` match these, and nothing else without a `%`
    found = {c for c in map(chr, range(0x110000)) if c != "%" and crlf._ENCODED.search(c)}
    assert found == set(crlf._ENCODED_CHARS)


# --- the simple versions the optimised searches replaced, compared on generated text ---

def _calls_reference(names: frozenset[str], then: re.Pattern[str] | None, text: str) -> int | None:
    i = text.find("(")
    while i != -1:
        j = i
        while j and text[j - 1] in " \t":
            j -= 1
        k = j
        while k and (text[k - 1].isalnum() or text[k - 1] in "_."):
            k -= 1
        if text[k:j] in names and (then is None or then.match(text, i + 1)):
            return k
        i = text.find("(", i + 1)
    return None


def _bool_compare_reference(text: str) -> int | None:
    for op in re.finditer(r"[=<>!]+", text):
        if op.group(0) in sqli._BC_EQUALITY:
            hit = sqli._BoolCompare._around(text, op.start(), op.end())
            if hit is not None:
                return hit.start()
    i = text.find("like")
    while i != -1:
        hit = sqli._BoolCompare._around(text, i - 1 if i and text[i - 1] == "r" else i, i + 4)
        if hit is not None:
            return hit.start()
        i = text.find("like", i + 4)
    return None


def _start(m: re.Match[str] | Hit | None) -> int | None:
    return None if m is None else m.start()


SQLISH = st.lists(st.sampled_from(["or", "and", " ", "'", '"', "1", "23", "=", "==", "<>", "!=", "<=>", "<", ">",
                                   "like", "rlike", "r", ")", "(", "\t", "\n", "x", "'a'", "²", "\x0c", "||", "&&",
                                   "-", "if", "iif", "elt", "pg_", "sleep", "dbms_lock.", "exp", ".", "_", "é"]),
                  max_size=16).map("".join)


@settings(max_examples=800, deadline=None)
@given(SQLISH)
def test_bool_compare_as_before(text: str) -> None:
    assert _start(sqli._BoolCompare().search(text)) == _bool_compare_reference(text)


@settings(max_examples=800, deadline=None)
@given(SQLISH)
def test_calls_as_before(text: str) -> None:
    names = frozenset({"if", "elt", "iif", "pg_sleep", "sleep", "dbms_lock.sleep", "exp"})
    then = re.compile(r"\s*\d+\s*=\s*\d+")
    for t in (None, then):
        assert _start(Calls(names, t).search(text)) == _calls_reference(names, t, text)


def _scheme_reference(text: str) -> int | None:
    i = text.find(":")
    while i != -1:
        window = text[max(0, i - 40) : i]
        if window.rstrip()[-1:] == "t":
            word = re.sub(r"\s+", "", window)
            for scheme in ("javascript", "vbscript", "livescript"):
                if word.endswith(scheme) and xss._SCHEME_AFTER.match(text, i + 1):
                    return max(0, i - len(scheme))
        i = text.find(":", i + 1)
    m = xss._DATA_URL.search(text)
    return None if m is None else m.start()


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["java", "script", "vb", "t", ":", " ", "\t", "\u2003", "alert(1)", "https", "data",
                                 ":text/html,", "x", "("]), max_size=10).map("".join))
def test_scheme_as_before(text: str) -> None:
    assert _start(xss._Scheme().search(text)) == _scheme_reference(text)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["&", "#", "x", "39", ";", "lt", "gt", "amp", "colon", "ref=", "LT", "Gt", "a",
                                 "quot", "nbsp", " ", "=", "1"]), max_size=10).map("".join))
def test_entity_decoding_as_before(text: str) -> None:
    assert entity_decoded(text) == html.unescape(text)


def _hosts_reference(url: str) -> set[str]:
    rests = [url.split("//", 1)[1]] if "//" in url[:40] else ([url, url.split(":", 1)[1]] if ":" in url else [url])
    candidates: set[str] = set()
    for rest in rests:
        candidates.add(re.split(r"[/?#]", rest.replace("\\", "/"), maxsplit=1)[0].rsplit("@", 1)[-1])
        for stops in (r"[/?\\]", r"[/?#]"):
            candidates.add(re.split(stops, rest, maxsplit=1)[0].rsplit("@", 1)[-1].split("#", 1)[0])
    hosts = set()
    for c in candidates:
        c = c.strip()
        if c.startswith("["):
            hosts.add(c.split("]", 1)[0] + "]")
        else:
            hosts.add(c.rsplit(":", 1)[0] if c.count(":") == 1 else c)
    return {h.rstrip(".") for h in hosts if h.rstrip(".")}


URLISH = st.lists(st.sampled_from(["http://", "//", "127.0.0.1", "[::1]", "::ffff:1.2.3.4", "fe80::1%eth0", "0x7f",
                                   "localhost", "a.b", "@", "#", "\\", "/", "?", ":", "80", "good.com", "1", "0", "[",
                                   "]", "."]), max_size=8).map("".join)


@settings(max_examples=800, deadline=None)
@given(URLISH)
def test_ssrf_hosts_as_before(url: str) -> None:
    assert ssrf._hosts(url) == _hosts_reference(url)


@settings(max_examples=800, deadline=None)
@given(URLISH)
def test_ssrf_internal_ip_shortcut(host: str) -> None:
    if ":" not in host and host[:1] not in "0123456789[":
        # the shortcut's claim: such a host is no address in any spelling `_internal_ip` reads
        assert ssrf._ipv4_legacy(host.split("%", 1)[0]) is None


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["'", "a", "_", " ", ".", "é", "1", "-", "(", "\u0301", "ⅷ", "²", "it's", "'s"]),
                max_size=12).map("".join))
def test_plain_check_with_apostrophes_as_before(value: str) -> None:
    from proxy.detect import engine

    assert engine._plain_with_apostrophes(value) == (engine._PLAIN.fullmatch(value) is not None)


# the patterns that started with `\b` or `(?:^|...)` (tried in full at every position), as they were
_WORD_HEADED = {
    "sqli.sleep": rf"(?:{sqli._BOOL}|,|^)\s*(?:not\s+|!\s*)?\(*\s*(?:sleep|pg_sleep)\s*\(\s*\d+\s*\)",
    "sqli.case-when": r"\bcase\s+when\s*\(*\s*\d+\s*=\s*\d+",
    "sqli.order-by": rf"\b(?:order|group)\s+by\s+\d+(?:\s*,\s*\d+)*\s*(?:{sqli._END}|$)",
    "cmdi.reverse-shell#1": r"\b(?:nc|ncat|netcat)\s[^;|&\n]{0,60}?-[a-z]*e\s",
    "cmdi.reverse-shell#3": r"\bmkfifo\b[^;|&\n]{0,40}/tmp/",
}


def _searcher(key: str) -> object:
    rid, _, nth = key.partition("#")
    rules = [o for o in RULE_SETS if rid.startswith(o.cls + ".")]
    found = [s for r in rules for (i, _n, s), _screen in r.screens if i == rid]
    return found[int(nth) if nth else 0]


WORDISH = st.lists(st.sampled_from(["or", "and", "xor", "for", "||", "&&", ",", " ", "(", ")", "not ", "!", "sleep",
                                    "pg_", "5", "12", "case", "when", "=", "order", "group", " by ", "--", "#", ";",
                                    "nc", "ncat", "netcat", "-e", "-lvpe", "mkfifo", "/tmp/", "_", "é", "where"]),
                   max_size=14).map("".join)


@pytest.mark.parametrize("key", list(_WORD_HEADED))
@settings(max_examples=500, deadline=None)
@given(text=WORDISH)
def test_word_headed_rules_as_before(key: str, text: str) -> None:
    searcher = _searcher(key)
    assert _start(searcher.search(text)) == _start(re.compile(_WORD_HEADED[key]).search(text))  # type: ignore[attr-defined]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text("abn_.-\x00/", min_size=1, max_size=5), min_size=1, max_size=8),
       st.text("abn_.-\x00/ ", max_size=20))
def test_words_finds_what_any_of_them_finds(items: list[str], text: str) -> None:
    assert (re.search(prefilter.words(items), text) is not None) == any(w in text for w in items)
