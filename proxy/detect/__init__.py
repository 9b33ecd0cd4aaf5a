"""Attack detection over the fields of a request (issue 5): pure functions and small classes, no I/O,
no aiohttp. Build `spec = parse_detect(rule["detect"])` at load time; per request call
`spec.engine.scan(request_fields(...), first_only=spec.blocking)`."""

from __future__ import annotations

from proxy.detect.base import CLASSES, Detector, Finding, normalise
from proxy.detect.engine import DEFAULT_DETECTORS, Engine, Exclusion
from proxy.detect.fields import (
    Field,
    FieldLimitError,
    FieldLimits,
    cookie_pairs,
    json_fields,
    pair_fields,
    path_fields,
    query_fields,
    request_fields,
)
from proxy.detect.spec import DetectConfigError, DetectSpec, parse_detect

__all__ = [
    "CLASSES", "DEFAULT_DETECTORS", "DetectConfigError", "DetectSpec", "Detector", "Engine", "Exclusion", "Field",
    "FieldLimitError", "FieldLimits", "Finding", "cookie_pairs", "json_fields", "normalise", "pair_fields",
    "parse_detect", "path_fields", "query_fields", "request_fields",
]
