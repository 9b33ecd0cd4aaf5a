"""`bastion` command line: run, check, test, explain, token, version."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    test = sub.add_parser("test", help="run the tests: sections of rule files; exit 1 on a failure")
    test.add_argument("paths", nargs="*", default=["rules"], help="rule files or directories (default: rules)")
    exp = sub.add_parser("explain", help="say which rule decides a request, and why")
    exp.add_argument("-c", "--config", default="config.yaml")
    exp.add_argument("method")
    exp.add_argument("path")
    exp.add_argument("--roles", default="", help="comma-separated roles (none: anonymous)")
    exp.add_argument("--scope", default="", help="space-separated scopes")
    exp.add_argument("--claim", action="append", default=[], metavar="K=V")
    exp.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    exp.add_argument("--host", default="localhost")
    exp.add_argument("--client-ip", default="127.0.0.1")
    tok = sub.add_parser("token", help="mint a development token for an HMAC issuer of the config")
    tok.add_argument("-c", "--config", default="config.yaml")
    tok.add_argument("--issuer", help="issuer name (default: the first HMAC issuer)")
    tok.add_argument("--sub", required=True)
    tok.add_argument("--roles", default="", help="comma-separated roles")
    tok.add_argument("--scope", default="", help="space-separated scopes")
    tok.add_argument("--ttl", default="15m")
    tok.add_argument("--claim", action="append", default=[], metavar="K=V", help="extra string claim")
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
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return code
    except BrokenPipeError:
        # `bastion check ... | head -1`: the reader left; no traceback. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"bastion {__version__}")
        return 0
    if args.command == "test":
        from proxy.policy.testing import main as run_rule_tests

        return run_rule_tests(args.paths)
    cfg = _load(args.config)
    if cfg is None:
        return 1
    if args.command in ("check", "explain"):
        policy, findings, errors = _rules(cfg, Path(args.config).parent)
        for msg in errors:
            print(msg, file=sys.stderr)
        if errors:
            print(f"{len(errors)} rule error(s)", file=sys.stderr)
            return 1
        if args.command == "explain":
            return _explain(policy, args)
        print(summary(args.config, cfg, policy, findings))
        return 0
    if args.command == "token":
        return mint(cfg, args)
    from proxy.runtime import run_loop, serve  # imported late: `check` needs no event loop

    path = Path(args.config)
    if args.command == "_worker":
        return run_loop(serve(cfg, config_path=path, admin=False, reuse_port=True, drain=False), args.loop)
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        from proxy.supervisor import supervise

        return run_loop(supervise(cfg, args.config, args.workers, args.loop), args.loop)
    return run_loop(serve(cfg, config_path=path), args.loop)


def _rules(cfg: Config, base: Path) -> tuple[Any, list[str], list[str]]:
    """(policy or None, warnings, errors) for `check` and `explain`."""
    if not cfg.rules:
        return (
            None,
            ["rules: [] turns the access rules off: every request that passes the other checks is forwarded"],
            [],
        )
    from proxy.policy import PolicyError
    from proxy.policy.reload import load_policy

    try:
        policy = load_policy(cfg.rules, base)
    except PolicyError as exc:
        return None, [], exc.messages
    return policy, [str(f) for f in policy.findings], []


def _explain(policy: Any, args: argparse.Namespace) -> int:
    if policy is None:
        print("no access rules are configured (rules: [])", file=sys.stderr)
        return 1
    from proxy.policy.explain import explain

    claims = dict(item.partition("=")[::2] for item in args.claim)
    headers = dict((k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in args.header))
    roles = [r for r in args.roles.split(",") if r]
    scopes = [s for s in args.scope.split(" ") if s]
    print(
        explain(
            policy,
            args.method.upper(),
            args.path,
            roles=roles,
            scopes=scopes,
            claims=claims,
            headers=headers,
            host=args.host,
            client_ip=args.client_ip,
        )
    )
    return 0


def mint(cfg: Config, args: argparse.Namespace) -> int:
    """`bastion token`: a signed token for local testing, so `make run` can print a working curl."""
    import secrets
    import time

    import jwt

    from proxy.config import HMAC_ALGS
    from proxy.units import parse_duration

    issuers = [i for i in cfg.auth.issuers if set(i.algorithms) & HMAC_ALGS]
    if args.issuer:
        issuers = [i for i in issuers if i.issuer == args.issuer]
    if not issuers:
        print("no HMAC issuer in the config to sign with (RS/ES keys are the IdP's)", file=sys.stderr)
        return 1
    issuer = issuers[0]
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": issuer.issuer,
        "sub": args.sub,
        "iat": now,
        "nbf": now,
        "exp": now + int(parse_duration(args.ttl)),
        "jti": secrets.token_urlsafe(12),
    }
    if issuer.audiences:
        claims["aud"] = issuer.audiences[0]
    if args.roles:
        claims[cfg.auth.roles_claim] = [r for r in args.roles.split(",") if r]
    if args.scope:
        claims["scope"] = args.scope
    for item in args.claim:
        key, _, value = item.partition("=")
        claims[key] = value
    alg = next(a for a in issuer.algorithms if a in HMAC_ALGS)
    headers = {"typ": issuer.typ} if issuer.typ else None
    print(jwt.encode(claims, issuer.secret_bytes(), algorithm=alg, headers=headers))
    return 0


def parser_name(cfg: Config) -> str:
    from proxy.connection import c_parser_active

    if c_parser_active():
        return "llhttp (C)"
    return "pure Python (allowed by protocol.allow_python_parser)" if cfg.protocol.allow_python_parser else (
        "pure Python: REFUSED (Bastion will not start; set protocol.allow_python_parser to override)"
    )


def _sink(sink: Any) -> str:
    where = {"file": lambda: str(sink.path), "tcp": lambda: f"{sink.host}:{sink.port}",
             "syslog": lambda: f"{sink.host}:{sink.port}", "http": lambda: sink.url}  # fmt: skip
    text = sink.kind + (f" {where[sink.kind]()}" if sink.kind in where else "")
    if getattr(sink, "tls", None) is not None:
        text += " (tls)"
    delivery = getattr(sink, "delivery", None)
    if delivery is not None and delivery.spool is not None:
        text += f" (spool {delivery.spool.dir})"
    return text


def summary(path: str, cfg: Config, policy: Any = None, findings: Sequence[str] = ()) -> str:
    from proxy.ratelimit.setup import describe as describe_store  # imports redis: only when asked

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
        f"  parser     {parser_name(cfg)}",
        f"  state      {describe_store(cfg.store)}",
        f"  auth       {len(cfg.auth.issuers)} issuer(s): {', '.join(i.issuer for i in cfg.auth.issuers) or 'none'}",
        f"  rules      {len(policy.rules)} rule(s), mode {cfg.rules_mode}"
        if policy is not None
        else "  rules      off",
        f"  logs       {', '.join(_sink(s) for s in cfg.logging.sinks)}; access log "
        f"{'on' if cfg.logging.access_log else 'off'}, level {cfg.logging.level}",
    ]
    lines += [f"warning: {f}" for f in findings]
    return "\n".join(lines)
