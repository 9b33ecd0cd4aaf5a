"""Optional adapter: libinjection's SQLi and XSS detectors behind the same `Detector` interface.

libinjection (the C library CRS and ModSecurity use for rules 942100/941100) tokenises SQL and HTML and
matches token fingerprints (`s&sos` for `1' or '1'='1`). The Python binding `libinjection-python`
1.1.6 is **GPL-3.0-or-later** and has had no release since 2022, so it is never a dependency of
Bastion: this module imports it lazily, only when an operator constructs one of these detectors,
and raises a clear error when it is absent. Measured side by side in benchmarks/corpus/RESULTS.md.

    from proxy.detect import DEFAULT_DETECTORS, Engine
    from proxy.detect.libinjection import LibinjectionSqli
    engine = Engine(["sqli"], detectors={**DEFAULT_DETECTORS, "sqli": (*DEFAULT_DETECTORS["sqli"], LibinjectionSqli())})

The binding takes `str` only and reads the raw field value (libinjection does its own decoding of
quotes and comments); its findings carry the libinjection fingerprint as the detector id suffix.
"""

from __future__ import annotations

import importlib
from typing import Any

from proxy.detect.base import Finding, snippet
from proxy.detect.fields import Field


def _load() -> Any:
    try:
        return importlib.import_module("libinjection")
    except ImportError as exc:  # pragma: no cover - depends on the optional package
        raise ImportError(
            "the libinjection detectors need the optional package libinjection-python (GPL-3.0-or-later): "
            "pip install libinjection-python==1.1.6"
        ) from exc


class LibinjectionSqli:
    """`libinjection.is_sql_injection` as a detector of class `sqli`."""

    name = "libinjection-sqli"
    cls = "sqli"

    def __init__(self) -> None:
        self._check = _load().is_sql_injection

    def match(self, value: str, field: Field) -> Finding | None:
        result = self._check(field.value)
        if not result["is_sqli"]:
            return None
        return Finding("sqli", f"sqli.libinjection.{result['fingerprint']}", field.name, snippet(field.value, 0))


class LibinjectionXss:
    """`libinjection.is_xss` as a detector of class `xss`."""

    name = "libinjection-xss"
    cls = "xss"

    def __init__(self) -> None:
        self._check = _load().is_xss

    def match(self, value: str, field: Field) -> Finding | None:
        if not self._check(field.value)["is_xss"]:
            return None
        return Finding("xss", "xss.libinjection", field.name, snippet(field.value, 0))
