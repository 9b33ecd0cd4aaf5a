"""`store:`, `rate_limits:` and the per-rule `rate_limit` / `login` keys: shapes, errors with file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.cli import summary
from proxy.config import Config, ConfigError, load_config, parse_rate
from proxy.policy import PolicyError, compile_files
from proxy.ratelimit.setup import redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("100/s", (100, 1.0), id="per-second"),
        pytest.param("5/minute", (5, 60.0), id="per-minute-word"),
        pytest.param("5 / minutes", (5, 60.0), id="plural-and-spaces"),
        pytest.param("1000/hour", (1000, 3600.0), id="per-hour"),
        pytest.param("20/10s", (20, 10.0), id="per-duration"),
        pytest.param("3/500ms", (3, 0.5), id="sub-second"),
        pytest.param("10/d", (10, 86400.0), id="per-day-letter"),
    ],
)
def test_rates(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("100", id="no-period"),
        pytest.param("0/s", id="zero"),
        pytest.param("-1/s", id="negative"),
        pytest.param("ten/s", id="not-a-number"),
        pytest.param("5/week", id="unknown-unit"),
        pytest.param("1/2d", id="longer-than-a-day"),
    ],
)
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.messages


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        pytest.param(
            "rate_limits:\n  default: [{key: ip, rate: fast}]\n",
            "c.yaml:3: rate_limits.default[0].rate: invalid rate",
            id="rate",
        ),
        pytest.param("rate_limits:\n  default: [{key: cookie, rate: 1/s}]\n", "invalid key 'cookie'", id="key"),
        pytest.param("rate_limits:\n  default: [{key: [ip, ip], rate: 1/s}]\n", "each at most once", id="dup-key"),
        pytest.param("rate_limits:\n  default: [{key: ip, rate: 1/s, per: 2}]\n", "[0].per: unknown key", id="typo"),
        pytest.param(
            "rate_limits:\n  default: [{key: ip, rate: 1/s}, {key: ip, rate: 9/hour}]\n", "policy names must be unique",
            id="same-name",
        ),
        pytest.param("rate_limits:\n  default: [{key: ip, rate: 1/day, burst: 60000}]\n", "2^52", id="inexact"),
        pytest.param("rate_limits:\n  default: [{key: ip, rate: 1/s, name: a.b}]\n", "name", id="dotted-name"),
        pytest.param("store:\n  backend: memcached\n", "store.backend", id="backend"),
        pytest.param("store:\n  redis: {url: 'http://r:6379'}\n", "invalid redis url", id="redis-url"),
        pytest.param("store:\n  redis: {timeout: 0}\n", "timeout must be above 0", id="zero-timeout"),
        pytest.param("store:\n  on_failure: ignore\n", "store.on_failure", id="on-failure"),
        pytest.param("rate_limits:\n  login: {lockout: soon}\n", "rate_limits.login.lockout", id="lockout"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, yaml: str, expected: str) -> None:
    messages = _errors(tmp_path, "rules: []\n" + yaml)
    assert any(expected in m for m in messages), messages


def test_defaults_are_memory_and_no_limits() -> None:
    cfg = Config.model_validate({"rules": []})
    assert cfg.store.backend == "memory" and cfg.store.on_failure == "fail_open"
    assert cfg.store.redis.timeout == 0.05 and cfg.rate_limits.default == ()


def _rules(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: r1\n    match: {path: /x}\n    allow: anonymous\n" + body)
    return compile_files([path])


def test_rule_limits_compile_to_qualified_policies(tmp_path: Path) -> None:
    limits = "    rate_limit: [{key: ip, rate: 5/minute}, {key: [sub, route], rate: 20/s, burst: 40}]\n"
    rule = _rules(tmp_path, limits).by_id["r1"]
    got = [(p.name, p.identity, p.burst) for p in rule.rate_limits]
    assert got == [("r1.ip", False, 5), ("r1.sub-route", True, 40)]
    assert rule.rate_limits[0].item == '"r1.ip";q=5;w=60' and rule.login is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param("    login: true\n", "username", id="true"),
        pytest.param("    login: {username_field: email}\n", "email", id="named-field"),
        pytest.param("    login: false\n", None, id="false-is-off"),
    ],
)
def test_login_key(tmp_path: Path, body: str, field: str | None) -> None:
    login = _rules(tmp_path, body).by_id["r1"].login
    assert (login.username_field if login else None) == field


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("    login: {field: email}\n", "r.yaml:5: rules[0].login.field: unknown key", id="login-typo"),
        pytest.param("    rate_limit: [{key: ip, rate: 1/s, brust: 3}]\n", "[0].brust: unknown key", id="limit-typo"),
        pytest.param("    rate_limit: [{key: ip, rate: 1/s}, {key: ip, rate: 2/s}]\n", "unique", id="same-name"),
        pytest.param("    ratelimit: [{key: ip, rate: 1/s}]\n", "rules[0].ratelimit: unknown key", id="key-typo"),
    ],
)
def test_rule_errors(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(PolicyError) as err:
        _rules(tmp_path, body)
    assert any(expected in m for m in err.value.messages), err.value.messages


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        pytest.param({}, "in memory, per process", id="memory"),
        pytest.param(
            {"backend": "redis", "redis": {"url": "redis://:hunter2@cache:6379/0"}},
            "redis redis://***@cache:6379/0: rate limits, lockouts, revocations shared; redis down → per-process",
            id="redis-fail-open",
        ),
        pytest.param({"backend": "redis", "on_failure": "fail_closed"}, "redis down → 503", id="redis-fail-closed"),
    ],
)
def test_check_summary_says_what_is_shared(store: dict[str, Any], expected: str) -> None:
    cfg = Config.model_validate({"rules": [], "store": store})
    line = next(x for x in summary("c.yaml", cfg).splitlines() if x.strip().startswith("state"))
    assert expected in line and "hunter2" not in line


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("redis://:pw@h:1/0", "redis://***@h:1/0", id="password-only"),
        pytest.param("rediss://user:pw@h:1", "rediss://user:***@h:1", id="user-and-password"),
        pytest.param("redis://h:1/0", "redis://h:1/0", id="none"),
    ],
)
def test_redis_url_is_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown
