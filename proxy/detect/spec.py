"""The `detect:` block of a rule, validated once at load time.

    detect:
      mode: block            # block | detect (log and count only)
      classes: [sqli, xss, lfi, cmdi, ssti, nosqli, crlf, ssrf]   # or "all" (the default)
      exclude:
        - {field: body.comment, classes: [xss]}
        - {field: body.snippet, classes: [sqli]}
      url_fields: [query.callback, body.webhook]

`parse_detect()` collects every problem before failing (oauth2-proxy's `Validate()`, STYLE.md lesson 7)
and returns a frozen `DetectSpec` whose `engine` is built once; the request path only calls
`spec.engine.scan(...)`. Field names are dotted and start with their source: `query.`, `body.`,
`cookie.`, `header.` or `path[`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from proxy.detect.base import CLASSES
from proxy.detect.engine import Engine, Exclusion

_SOURCES = ("query.", "body", "cookie.", "header.", "path[")
_KEYS = {"mode", "classes", "exclude", "url_fields"}


class DetectConfigError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class DetectSpec:
    mode: Literal["block", "detect"]
    classes: tuple[str, ...]
    exclude: tuple[Exclusion, ...] = ()
    url_fields: tuple[str, ...] = ()
    engine: Engine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        engine = Engine(self.classes, url_fields=self.url_fields, exclusions=self.exclude)
        object.__setattr__(self, "engine", engine)

    @property
    def blocking(self) -> bool:
        return self.mode == "block"


def _classes(raw: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if raw == "all":
        return CLASSES
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        errors.append(f"{where}: must be a list of class names or 'all'")
        return ()
    unknown = [c for c in raw if c not in CLASSES]
    if unknown:
        errors.append(f"{where}: unknown classes {unknown} (known: {', '.join(CLASSES)})")
    return tuple(c for c in raw if c in CLASSES)


def _field_name(raw: Any, where: str, errors: list[str]) -> str | None:
    if not isinstance(raw, str) or not raw.startswith(_SOURCES):
        errors.append(f"{where}: field must be a string starting with one of {', '.join(_SOURCES)}")
        return None
    return raw


def parse_detect(raw: Mapping[str, Any]) -> DetectSpec:
    errors: list[str] = []
    extra = set(raw) - _KEYS
    if extra:
        errors.append(f"detect: unknown keys {sorted(extra)}")
    mode = raw.get("mode", "block")
    if mode not in ("block", "detect"):
        errors.append(f"detect.mode: must be 'block' or 'detect', not {mode!r}")
    classes = _classes(raw.get("classes", "all"), "detect.classes", errors)
    exclusions: list[Exclusion] = []
    for i, item in enumerate(raw.get("exclude") or []):
        where = f"detect.exclude[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"field", "classes"}:
            errors.append(f"{where}: must be {{field: ..., classes: [...]}}")
            continue
        name = _field_name(item.get("field"), where, errors)
        excluded = _classes(item.get("classes", "all"), f"{where}.classes", errors)
        if name is not None:
            exclusions.append(Exclusion(name, frozenset(excluded)))
    url_fields = [
        name for i, f in enumerate(raw.get("url_fields") or [])
        if (name := _field_name(f, f"detect.url_fields[{i}]", errors)) is not None
    ]
    if url_fields and "ssrf" not in classes:
        errors.append("detect.url_fields: set, but 'ssrf' is not among the enabled classes")
    if errors:
        raise DetectConfigError(errors)
    return DetectSpec(mode, classes, tuple(exclusions), tuple(url_fields))
