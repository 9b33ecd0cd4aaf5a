"""YAML → plain data, remembering the line of every key, with `${VAR}` substitution.

Hand-written (about 100 lines) because no maintained library gives both: PyYAML's `safe_load`
and pydantic-settings drop line numbers, and a config error must name `file:line: key.path`.
We walk PyYAML's node graph (`yaml.compose`), which keeps `start_mark.line` on every node.
The same loader serves `config.yaml` and the rule files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is ~10x faster; both build the same node graph
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Loc = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SourceError(Exception):
    """One or more problems in one file, each already formatted as `file:line: key: message`."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


class Document:
    """Parsed YAML data plus a map from key path to 1-based line number."""

    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, loc: Iterable[str | int]) -> int:
        """The line of the deepest part of `loc` that exists in the file."""
        parts = tuple(loc)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), 1)

    def error(self, loc: Iterable[str | int], message: str) -> str:
        loc = tuple(loc)
        dotted = format_loc(loc) or "(top level)"
        return f"{self.path}:{self.line_of(loc)}: {dotted}: {message}"


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Document:
    """Read and compose one YAML file; raise SourceError naming the file and line on any problem."""
    p = Path(path)
    env = os.environ if env is None else env
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError([f"{p}: cannot read: {exc.__class__.__name__}: {exc}"]) from None
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceError([f"{p}:{line}: invalid YAML: {exc.problem or exc.context}"]) from None
    lines: dict[Loc, int] = {}
    errors: list[str] = []
    if root is None:
        return Document(p, {}, {(): 1})
    data = _convert(root, (), lines, env, errors, p)
    if errors:
        raise SourceError(errors)
    return Document(p, data, lines)


def _convert(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], env: Mapping[str, str], errors: list[str], path: Path
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                errors.append(f"{path}:{key_node.start_mark.line + 1}: {format_loc(loc)}: keys must be strings")
                continue
            key = key_node.value
            if key == "<<":
                errors.append(f"{path}:{key_node.start_mark.line + 1}: {format_loc(loc)}: merge keys are not supported")
                continue
            child = (*loc, key)
            if key in out:
                errors.append(f"{path}:{key_node.start_mark.line + 1}: {format_loc(child)}: duplicate key")
                continue
            lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, lines, env, errors, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*loc, i), lines, env, errors, path) for i, item in enumerate(node.value)]
    value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)  # type: ignore[no-untyped-call]
    if isinstance(value, str) and "${" in value:
        value = _substitute(value, loc, node, env, errors, path)
    return value


def _substitute(value: str, loc: Loc, node: yaml.Node, env: Mapping[str, str], errors: list[str], path: Path) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append(f"{path}:{node.start_mark.line + 1}: {format_loc(loc)}: environment variable {name} is not set")
        return ""

    return _ENV.sub(repl, value)
