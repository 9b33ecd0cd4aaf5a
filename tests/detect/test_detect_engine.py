"""Engine behaviour: exclusions, first_only, snippets, the clean cache, the `detect:` spec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detect import (
    CLASSES,
    DetectConfigError,
    Engine,
    Exclusion,
    json_fields,
    parse_detect,
    query_fields,
    request_fields,
)
from proxy.detect.engine import DEFAULT_DETECTORS
from proxy.detect.fields import Field


def test_exclusion_applies_to_the_field_and_below() -> None:
    engine = Engine(CLASSES, exclusions=[Exclusion("body.profile", frozenset({"xss"}))])
    doc = {"profile": {"bio": "<script>x</script>"}, "other": "<script>x</script>"}
    assert [h.field_name for h in engine.scan(json_fields(doc))] == ["body.other"]


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        pytest.param("body.items[*].title", "body.items[12].title", True, id="any-index"),
        pytest.param("body.items[*].title", "body.items.title", False, id="index-required"),
        pytest.param("body.*.bio", "body.user.bio", True, id="one-segment"),
        pytest.param("body.*.bio", "body.a.b.bio", False, id="only-one-segment"),
        pytest.param("body.comment", "body.comment_count", False, id="no-prefix-leak"),
        pytest.param("body.comment", "body.comment.text", True, id="subtree"),
    ],
)
def test_field_patterns(pattern: str, name: str, covered: bool) -> None:
    from proxy.detect.engine import compile_field_pattern

    assert (compile_field_pattern(pattern).fullmatch(name) is not None) is covered


def test_excluding_one_class_keeps_the_others() -> None:
    engine = Engine(CLASSES, exclusions=[Exclusion("body.snippet", frozenset({"sqli"}))])
    assert engine.scan(json_fields({"snippet": "SELECT a FROM t UNION SELECT b FROM u"})) == []
    assert [h.cls for h in engine.scan(json_fields({"snippet": "<script>alert(1)</script>"}))] == ["xss"]


def test_first_only_stops_at_the_first_finding() -> None:
    fields = json_fields({"a": "' or 1=1--", "b": "<script>x</script>", "c": "; id"})
    assert len(Engine(CLASSES).scan(fields)) == 3
    assert len(Engine(CLASSES).scan(fields, first_only=True)) == 1


def test_snippet_is_short_and_escaped() -> None:
    value = "x" * 500 + "' or 'a'='a" + "y" * 500 + "\r\n"
    (hit,) = Engine(["sqli"]).scan(json_fields({"q": value}))
    assert len(hit.snippet) <= 64 and "' or 'a'='a" in hit.snippet and value not in hit.snippet


def test_clean_cache_does_not_hide_a_url_field() -> None:
    engine = Engine(CLASSES, url_fields=["body.url"])
    assert engine.scan(json_fields({"name": "localhost:80"})) == []  # plain text: remembered as clean
    assert [h.cls for h in engine.scan(json_fields({"url": "localhost:80"}))] == ["ssrf"]


def test_keys_are_inspected() -> None:
    hits = Engine(CLASSES).scan(json_fields({"name' or '1'='1": 1, "password": {"$ne": None}}))
    assert sorted(h.cls for h in hits) == ["nosqli", "sqli"]


def test_iis_percent_u_escapes_are_decoded() -> None:
    # `%uff1c` is IIS's spelling of a full-width `<`, which NFKC makes `<`
    found = Engine(CLASSES).scan(query_fields("var=%uff1cscript%u0020%uff1ealert%281%29%uff1c/script%uff1e"))
    assert [f.detector_id for f in found] == ["xss.tag"]


def test_whole_request_double_encoded_query() -> None:
    fields = request_fields(path="/files/report", query="name=..%252f..%252fetc%252fpasswd",
                            headers=[("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")])
    assert {h.cls for h in Engine(CLASSES).scan(fields)} == {"lfi"}
    assert Engine(CLASSES).scan(query_fields("q=O%27Brien&sort=-created")) == []


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown detection classes"):
        Engine(["sqli", "rce"])


def test_parse_detect_builds_the_engine() -> None:
    spec = parse_detect({"mode": "block", "classes": ["sqli", "xss", "ssrf"],
                         "exclude": [{"field": "body.comment", "classes": ["xss"]}], "url_fields": ["body.webhook"]})
    assert spec.blocking and spec.classes == ("sqli", "xss", "ssrf")
    hits = spec.engine.scan(json_fields({"comment": "<b onclick=x()>", "webhook": "http://[::1]/"}))
    assert [h.cls for h in hits] == ["ssrf"]
    assert parse_detect({}).classes == CLASSES and parse_detect({"mode": "detect"}).blocking is False


def test_parse_detect_reports_every_error() -> None:
    with pytest.raises(DetectConfigError) as err:
        parse_detect({"mode": "shout", "classes": ["sqli", "rce"], "exclude": [{"field": "comment"}],
                      "url_fields": ["webhook"], "extra": 1})
    assert len(err.value.errors) == 5


class _Ungated:
    """A detector without its `plain` gate: the engine then runs it on every value."""

    def __init__(self, detector: object) -> None:
        self.cls = detector.cls  # type: ignore[attr-defined]
        self.match = detector.match  # type: ignore[attr-defined]


_REFERENCE = Engine(CLASSES, detectors={c: tuple(_Ungated(d) for d in ds) for c, ds in DEFAULT_DETECTORS.items()})
# plain characters, combining marks, what the gates look for, and the few non-plain characters that a
# plain-looking value could hide (NUL)
_PLAINISH = st.lists(st.sampled_from(
    list("aeiostx019 .,@+-:/?!#_'") + ["\u0301", "\u0307", "İ", "é", "\x00", " or ", " and ", "xor ", "union",
    " select ", " by ", "@@", "'or ", "'and ", "'where ", "..", "/etc/", "etc/passwd", "/proc/self/", "/dev/",
    "whoami", "ls ", "sleep ", "nc ", "python", "data:", "script:", "1 or 1", ".php", ".jpg", "'collate ", "--",
    "invoke-webrequest ", "http://x/a.ps1", "iex ", ".ssh/", ".env", " having ", "notnull", "./", "/opt/", "httpd.conf",
]), max_size=14).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_PLAINISH, st.sampled_from([("body", False), ("body", True), ("query", False)]))
def test_plain_gates_never_hide_a_finding(value: str, place: tuple[str, bool]) -> None:
    # the plain fast path (gates, the clean cache) is an optimisation only: every detector run on every
    # value finds the same. Found: a NUL-truncated extension (`shell.php\x00.jpg`) and a leading blank or
    # sign (` or 3#`, `-1 or 2#`) and a quote inside a word (`admin'or 1#`) were once skipped as plain.
    source, is_key = place
    field = Field(source, f"{source}.x", value, is_key)  # type: ignore[arg-type]
    gated = [f.detector_id for f in Engine(CLASSES).scan([field])]
    assert gated == [f.detector_id for f in _REFERENCE.scan([field])]


@pytest.mark.parametrize("value", ["shell.php\x00.jpg", " or 3#", "-1 or 2#", "  whoami", "+whoami", "admin'or 1#"])
def test_plain_looking_attacks_are_found(value: str) -> None:
    assert Engine(CLASSES).scan(json_fields({"f": value}))
