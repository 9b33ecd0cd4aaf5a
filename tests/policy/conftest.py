"""Fixtures for the rule engine: rule sets from YAML text (on disk, so errors name a real file and
line), the shipped rules/, and RequestContext objects built directly (no server needed)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.context import RequestContext
from proxy.identity import Principal
from proxy.policy import PolicySet, compile_documents, compile_files
from proxy.yamlsource import Document

ROOT = Path(__file__).resolve().parents[2]

WriteRules = Callable[..., Path]
CompileYaml = Callable[..., PolicySet]
MakeCtx = Callable[..., RequestContext]


@pytest.fixture
def write_rules(tmp_path: Path) -> WriteRules:
    """Write dedented YAML to tmp_path/<name> and return the path."""

    def write(text: str, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def compile_yaml(write_rules: WriteRules) -> CompileYaml:
    def build(text: str, *, strict: bool = True, name: str = "rules.yaml") -> PolicySet:
        return compile_files([write_rules(text, name)], strict=strict)

    return build


@pytest.fixture(scope="session")
def shipped() -> PolicySet:
    return compile_files([ROOT / "rules"])


@pytest.fixture(scope="session")
def policy_from() -> Callable[[Mapping[str, Any]], PolicySet]:
    """A rule set from plain data (no file): for hypothesis, which refuses function-scoped fixtures."""

    def build(data: Mapping[str, Any]) -> PolicySet:
        return compile_documents([Document(Path("<memory>"), dict(data), {(): 1})])

    return build


@pytest.fixture
def make_ctx() -> MakeCtx:
    def build(
        method: str,
        path: str,
        *,
        principal: Principal | None = None,
        headers: Mapping[str, str] | None = None,
        host: str = "api.example.com",
        client_ip: str = "203.0.113.5",
    ) -> RequestContext:
        ctx = RequestContext(
            request_id="req-1",
            method=method,
            raw_target=path,
            headers=CIMultiDictProxy(CIMultiDict(headers or {})),
            peer_ip=client_ip,
            client_ip=client_ip,
            scheme="http",
            host=host,
            started=0.0,
            path=path,
        )
        ctx.principal = principal
        return ctx

    return build


def user(*roles: str, scopes: tuple[str, ...] = (), claims: Mapping[str, Any] | None = None) -> Principal:
    return Principal("alice", "https://idp.test", frozenset(roles), frozenset(scopes), dict(claims or {}))


@pytest.fixture(scope="session")
def principal() -> Callable[..., Principal]:
    return user
