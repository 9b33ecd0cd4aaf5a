"""A bad sink is a start-up error naming the file, the line and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config

CASES = [
    ("- {type: tcp, host: x, port: seventy}", "logging.sinks[0].port", "valid integer"),
    ("- {type: kafka}", "logging.sinks[0]", "each sink needs `type:`"),
    ("- {host: x}", "logging.sinks[0]", "each sink needs `type:`"),
    ("- {type: http, url: 'ftp://x'}", "logging.sinks[0].url", "pattern"),
    ("- {type: file, path: /tmp/x, backups: -1}", "logging.sinks[0].backups", "greater than or equal to 0"),
    ("- {type: syslog, host: x, port: 514, facility: 24}", "logging.sinks[0].facility", "less than or equal to 23"),
    ("- {type: http, url: 'http://x', headers: {'Bad Name': v}}", "logging.sinks[0].headers", "invalid header name"),
    ("- {type: tcp, host: x, port: 1, delivery: {queue: 5}}", "logging.sinks[0].delivery.queue", "100"),
    ("- {type: tcp, host: x, port: 1, delivery: {spool: {}}}", "logging.sinks[0].delivery.spool.dir", "required"),
    ("- {type: stdout, extra: 1}", "logging.sinks[0].extra", "unknown key"),
    ("- {type: tcp, host: x, port: 1, tls: {key_file: /k.pem}}", "logging.sinks[0].tls", "key_file needs cert_file"),
]


@pytest.mark.parametrize(("sink", "where", "message"), CASES)
def test_bad_sinks(tmp_path: Path, sink: str, where: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"listen: {{port: 8080}}\nlogging:\n  sinks:\n    {sink}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    [msg] = err.value.messages
    assert msg.startswith(f"{path}:4: {where}: ") and message in msg, msg


def test_several_sinks_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "logging:\n  sinks:\n    - {type: stdout}\n    - {type: file, path: /tmp/x.ndjson, max_size: 1MiB}\n"
        "    - {type: syslog, host: 127.0.0.1, port: 6514, tls: {verify: false}}\n"
    )
    kinds = [s.kind for s in load_config(path).logging.sinks]
    assert kinds == ["stdout", "file", "syslog"]
