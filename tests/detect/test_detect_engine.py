"""Engine behaviour: exclusions, first_only, snippets, the clean cache, the `detect:` spec."""

from __future__ import annotations

import pytest

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
