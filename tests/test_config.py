"""Config loading: every bad value is named by file, line and key path, and nothing starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import ConfigError, load_config
from proxy.units import parse_duration, parse_size
from tests.conftest import ROOT

BAD = [
    pytest.param(
        "upstream:\n  url: http://x:1\n  read_timeout: fast\n",
        ["c.yaml:3: upstream.read_timeout: invalid duration 'fast'"],
        id="duration",
    ),
    pytest.param("limits:\n  max_body: lots\n", ["c.yaml:2: limits.max_body: invalid size 'lots'"], id="size"),
    pytest.param("listen: {port: 8080, colour: red}\n", ["c.yaml:1: listen.colour: unknown key"], id="unknown-key"),
    pytest.param("bogus: 1\n", ["c.yaml:1: bogus: unknown key"], id="unknown-top-level"),
    pytest.param(
        "listen:\n  port: 99999\n",
        ["c.yaml:2: listen.port: Input should be less than or equal to 65535"],
        id="port-range",
    ),
    pytest.param("upstream:\n  url: ftp://x\n", ["c.yaml:2: upstream.url: invalid upstream 'ftp://x'"], id="scheme"),
    pytest.param(
        "upstream:\n  url: http://x:1/prefix\n", ["c.yaml:2: upstream.url: invalid upstream"], id="path-prefix"
    ),
    pytest.param(
        "upstream:\n  url: unix:relative.sock\n", ["c.yaml:2: upstream.url: invalid upstream"], id="relative-unix"
    ),
    pytest.param(
        "trusted_proxies:\n  - 10.0.0.0/8\n  - not-a-cidr\n",
        ["c.yaml:3: trusted_proxies[1]: invalid CIDR 'not-a-cidr'"],
        id="cidr",
    ),
    pytest.param(
        'upstream:\n  url: "${BASTION_TEST_UNSET_VAR}"\n',
        ["c.yaml:2: upstream.url: environment variable BASTION_TEST_UNSET_VAR is not set"],
        id="env-missing",
    ),
    pytest.param("listen: {port: 1\n", ["c.yaml:2: invalid YAML"], id="yaml-syntax"),
    pytest.param("listen: {port: 1}\nlisten: {port: 2}\n", ["c.yaml:2: listen: duplicate key"], id="duplicate-key"),
    pytest.param("- a\n- b\n", ["c.yaml:1: (top level): the top level must be a mapping"], id="not-a-mapping"),
    pytest.param(
        "listen: {port: 9901}\nadmin: {port: 9901, host: 0.0.0.0}\nlogging: {level: loud}\n",
        ["c.yaml:3: logging.level: Input should be 'debug', 'info', 'warning' or 'error' (got 'loud')"],
        id="several-errors-first",
    ),
    pytest.param(
        "listen: {host: 127.0.0.1, port: 9000}\nadmin: {host: 127.0.0.1, port: 9000}\n",
        ["c.yaml:2: admin.port: must differ from listen.port"],
        id="admin-on-proxy-port",
    ),
    pytest.param(
        "auth:\n  forward_claims: {sub: X-Real-IP}\n",
        ["c.yaml:2: auth.forward_claims: 'X-Real-IP' is a field Bastion sets itself"],
        id="claim-on-a-forwarded-field",
    ),
    pytest.param(
        "auth:\n  forward_claims:\n    sub: X-User-Id\n    tid: X-Request-ID\n",
        ["c.yaml:4: auth.forward_claims.tid: 'X-Request-ID' is the request-id header"],
        id="claim-on-the-request-id",
    ),
]


@pytest.mark.parametrize("text, expected", BAD)
def test_bad_config_names_file_line_and_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    messages = [m.replace(str(tmp_path) + "/", "") for m in err.value.messages]
    for want in expected:
        assert any(m.startswith(want) or want in m for m in messages), (want, messages)


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream:\n  read_timeout: x\n  pool_size: -1\nlimits: {max_uri: y}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert len(err.value.messages) == 3
    assert [m.split(": ", 1)[0].rsplit(":", 1)[1] for m in err.value.messages] == ["2", "3", "4"]


def test_defaults_and_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UP_PORT", "9123")
    path = tmp_path / "c.yaml"
    path.write_text(
        "upstream: {url: 'http://127.0.0.1:${UP_PORT}', read_timeout: 1500ms, pool_size: '${POOL:-7}'}\n"
        "limits: {max_body: 2MiB}\ntrusted_proxies: [10.0.0.0/8, '::1']\n"
    )
    cfg = load_config(path)
    assert cfg.upstream.url == "http://127.0.0.1:9123"
    assert cfg.upstream.read_timeout == 1.5 and cfg.upstream.pool_size == 7
    assert cfg.limits.max_body == 2 * 1024**2 and cfg.limits.max_uri == 8 * 1024
    assert [str(n) for n in cfg.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert cfg.listen.port == 8080 and cfg.admin.host == "127.0.0.1"


@pytest.mark.parametrize("text, seconds", [("2s", 2), ("500ms", 0.5), ("5m", 300), ("1h", 3600), (3, 3), ("1.5s", 1.5)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text, size", [("1MiB", 2**20), ("8KiB", 8192), ("10MB", 10**7), (512, 512), ("2GiB", 2 * 2**30)]
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["-1s", "fast", "1y", True, -3])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


DEMO_SECRET = "x" * 40


def test_shipped_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_DEMO_SECRET", DEMO_SECRET)
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.upstream.url == "http://127.0.0.1:8000"
    assert [i.issuer for i in cfg.auth.issuers] == ["bastion-demo"]


def test_shipped_config_needs_the_demo_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASTION_DEMO_SECRET", raising=False)
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config.yaml")
    assert any("environment variable BASTION_DEMO_SECRET is not set" in m for m in err.value.messages)


def test_check_command_prints_summary(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_DEMO_SECRET", DEMO_SECRET)
    assert main(["check", "-c", str(ROOT / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "llhttp (C)" in out and "http://127.0.0.1:8000" in out
    assert "  logs       stdout; access log on, level info" in out


def test_check_command_fails_with_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream:\n  read_timeout: fast\n")
    assert main(["check", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: upstream.read_timeout: invalid duration 'fast'" in err


def test_run_refuses_to_start_on_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("listen: {port: 18999}\nupstream: {connect_timeout: soon}\n")
    res = subprocess.run(
        [sys.executable, "-m", "proxy", "run", "-c", str(path)], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert res.returncode == 1
    assert f"{path}:2: upstream.connect_timeout: invalid duration 'soon'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_closed_stdout_is_no_traceback() -> None:
    # `bastion check -c config.yaml | head -1`: the reader is gone before Bastion writes
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run([sys.executable, "-m", "proxy", "version"], stdout=write_end, stderr=subprocess.PIPE,
                             text=True, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
    assert res.returncode == 1


def test_version_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("bastion 0.")


def test_pure_python_parser_is_refused_unless_allowed(tmp_path: Path) -> None:
    import os

    path = tmp_path / "c.yaml"
    path.write_text("listen: {host: 127.0.0.1, port: 0}\nadmin: {host: 127.0.0.1, port: 0}\nrules: []\n")
    env = {**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"}
    check = subprocess.run(
        [sys.executable, "-m", "proxy", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
    )
    assert "pure Python: REFUSED" in check.stdout
    run = subprocess.run(
        [sys.executable, "-m", "proxy", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
    )
    assert run.returncode == 1 and "refusing the pure-Python parser" in run.stderr
