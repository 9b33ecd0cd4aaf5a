"""SSRF: literal internal addresses in every spelling, internal names, schemes, parser differentials."""

from __future__ import annotations

import pytest

from proxy.detect import Engine, json_fields

INTERNAL = [
    "http://127.0.0.1/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f000001/", "http://0x7f.0.0.1/",
    "http://127.1/", "http://017700000001/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[::]:80/", "http://0.0.0.0:8080/", "http://0/", "http://localhost/", "http://LOCALHOST./x",
    "http://api.localhost/", "http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/",
    "http://100.100.100.200/", "http://[fd00:ec2::254]/", "http://10.1.2.3/", "http://172.16.0.1/",
    "http://192.168.1.1/", "http://[fe80::1%25eth0]/", "http://good.com@127.0.0.1/", "http://127.0.0.1#@good.com/",
    "http://good.com\\@127.0.0.1/", "http://127.0.0.1.nip.io/", "http://redis:6379/", "127.0.0.1:8080/x",
    "localhost:80", "//127.0.0.1/x", "http://%31%32%37.0.0.1/", "http://①②⑦.0.0.1/", "HTTP://[0:0:0:0:0:0:0:1]/",
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "dict://localhost:11211/stat", "ftp://internal/",
    "jar:http://x!/", "http://instance-data/latest/",
]
EXTERNAL = [
    "https://example.com/hook", "https://api.github.com/repos", "http://8.8.8.8/", "https://sub.example.co.uk:8443/a?b=c",
    "https://user:pw@example.com/", "https://example.com/?next=http://127.0.0.1", "https://[2606:4700::1111]/",
    "https://1.1.1.1/dns-query", "https://example.com#127.0.0.1",
]


@pytest.mark.parametrize("url", [pytest.param(u, id=u) for u in INTERNAL])
def test_internal_targets_are_flagged(url: str) -> None:
    hits = Engine(["ssrf"], url_fields=["body.webhook"]).scan(json_fields({"webhook": url}))
    assert [h.cls for h in hits] == ["ssrf"]


@pytest.mark.parametrize("url", [pytest.param(u, id=u) for u in EXTERNAL])
def test_public_targets_pass(url: str) -> None:
    assert Engine(["ssrf"], url_fields=["body.webhook"]).scan(json_fields({"webhook": url})) == []


def test_ssrf_only_runs_on_url_fields() -> None:
    engine = Engine(["ssrf"], url_fields=["body.hooks[*].url"])
    assert engine.scan(json_fields({"note": "http://127.0.0.1/"})) == []
    hits = engine.scan(json_fields({"hooks": [{"url": "https://ok.example"}, {"url": "http://127.0.0.1/"}]}))
    assert [h.field_name for h in hits] == ["body.hooks[1].url"]
