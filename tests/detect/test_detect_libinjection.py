"""The optional libinjection adapter (GPL-3.0, never a dependency) keeps the Detector contract.

Without the binding installed (the default), constructing an adapter fails with a clear message;
with it installed (`pip install libinjection-python`), the adapters detect and pass like ours.
Both branches are real tests: which one runs depends on the environment, nothing is skipped.
"""

from __future__ import annotations

import importlib.util

import pytest

from proxy.detect import DEFAULT_DETECTORS, Engine, json_fields
from proxy.detect.libinjection import LibinjectionSqli, LibinjectionXss

INSTALLED = importlib.util.find_spec("libinjection") is not None


def test_adapters_detect_and_pass_or_explain_their_absence() -> None:
    if not INSTALLED:
        with pytest.raises(ImportError, match="libinjection"):
            LibinjectionSqli()
        return
    engine = Engine(
        ["sqli", "xss"], detectors={**DEFAULT_DETECTORS, "sqli": (LibinjectionSqli(),), "xss": (LibinjectionXss(),)}
    )
    hits = engine.scan(json_fields({"a": "1' or '1'='1", "b": "<script>alert(1)</script>", "c": "Conor O'Brien"}))
    assert [(h.cls, h.field_name) for h in hits] == [("sqli", "body.a"), ("xss", "body.b")]
    assert hits[0].detector_id.startswith("sqli.libinjection.")
