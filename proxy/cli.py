"""`bastion` command line: run, check, version (later: test, explain, token)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proxy import __version__
from proxy.config import Config, ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bastion", description="Security-hardening reverse-proxy sidecar.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the sidecar")
    run.add_argument("-c", "--config", default="config.yaml")
    run.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)")
    run.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    check = sub.add_parser("check", help="validate the config, print a summary; exit 1 on errors")
    check.add_argument("-c", "--config", default="config.yaml")
    sub.add_parser("version", help="print the version")
    worker = sub.add_parser("_worker", help=argparse.SUPPRESS)
    worker.add_argument("-c", "--config", required=True)
    worker.add_argument("--loop", default="auto")
    return p


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for msg in exc.messages:
            print(msg, file=sys.stderr)
        print(f"{path}: {len(exc.messages)} error(s); not starting", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"bastion {__version__}")
        return 0
    cfg = _load(args.config)
    if cfg is None:
        return 1
    if args.command == "check":
        print(summary(args.config, cfg))
        return 0
    from proxy.runtime import run_loop, serve  # imported late: `check` needs no event loop

    if args.command == "_worker":
        return run_loop(serve(cfg, admin=False, reuse_port=True, drain=False), args.loop)
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        from proxy.supervisor import supervise

        return run_loop(supervise(cfg, args.config, args.workers, args.loop), args.loop)
    return run_loop(serve(cfg), args.loop)


def parser_name() -> str:
    """Which HTTP parser aiohttp uses: llhttp (C) unless extensions are missing or disabled."""
    from aiohttp import http_parser

    return "llhttp (C)" if http_parser.HttpRequestParser.__module__.endswith("_http_parser") else "pure Python"


def summary(path: str, cfg: Config) -> str:
    up, lim = cfg.upstream, cfg.limits
    scheme = "https" if cfg.listen.tls else "http"
    lines = [
        f"config OK: {path}",
        f"  listen     {scheme}://{cfg.listen.host}:{cfg.listen.port}",
        f"  admin      http://{cfg.admin.host}:{cfg.admin.port}",
        f"  upstream   {up.url} (pool {up.pool_size}, connect {up.connect_timeout:g}s, read {up.read_timeout:g}s,"
        f" host header {up.host_header})",
        f"  limits     body {lim.max_body} B, uri {lim.max_uri} B, {lim.max_headers} headers,"
        f" {lim.max_header_bytes} B of headers",
        f"  proxies    trusted: {', '.join(map(str, cfg.trusted_proxies)) or 'none'} ({cfg.client_ip_header})",
        f"  shutdown   drain {cfg.shutdown.drain_delay:g}s, grace {cfg.shutdown.grace_period:g}s",
        f"  parser     {parser_name()}",
        "  state      in memory, per process: with --workers > 1 rate limits and revocations are not shared",
    ]
    return "\n".join(lines)
