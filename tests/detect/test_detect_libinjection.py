"""The optional libinjection adapter keeps the Detector contract (skipped when the GPL binding is absent)."""

from __future__ import annotations

import pytest

from proxy.detect import DEFAULT_DETECTORS, Engine, json_fields

pytest.importorskip("libinjection")

from proxy.detect.libinjection import LibinjectionSqli, LibinjectionXss  # noqa: E402


def test_adapters_detect_and_pass() -> None:
    engine = Engine(["sqli", "xss"], detectors={**DEFAULT_DETECTORS, "sqli": (LibinjectionSqli(),),
                                                  "xss": (LibinjectionXss(),)})
    hits = engine.scan(json_fields({"a": "1' or '1'='1", "b": "<script>alert(1)</script>", "c": "Conor O'Brien"}))
    assert [(h.cls, h.field_name) for h in hits] == [("sqli", "body.a"), ("xss", "body.b")]
    assert hits[0].detector_id.startswith("sqli.libinjection.")
