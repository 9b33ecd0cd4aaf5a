"""`python -m upstream`: serve the demo app on TCP (default 127.0.0.1:8000) or a unix socket.

Binds to loopback by default on purpose: the app trusts identity headers, so it must only be
reachable through the sidecar.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from aiohttp import web

from upstream.app import create_app
from upstream.revoke import Notify, sidecar_notifier
from upstream.seed import passwords_from_env

AUTH_DB = "auth.sqlite3"
DATA_DB = "tasks.sqlite3"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m upstream", description="Bastion demo upstream app")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--unix", metavar="PATH", help="listen on this unix socket instead of TCP")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="where both SQLite files live")
    parser.add_argument(
        "--revocation-url",
        default=os.environ.get("BASTION_REVOCATION_URL"),
        help="the sidecar's admin POST /revocations URL (with BASTION_ADMIN_TOKEN in the environment)",
    )
    return parser.parse_args(argv)


def secret_from_env() -> str:
    secret = os.environ.get("BASTION_DEMO_SECRET", "")
    if secret:
        return secret
    print(
        "WARNING: BASTION_DEMO_SECRET is not set; using a random secret for this run only"
        " (the sidecar cannot verify these tokens, and they die with the process)",
        file=sys.stderr,
        flush=True,
    )
    return secrets.token_urlsafe(32)


async def serve(app: web.Application, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before "listening": a supervisor may signal right after
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app)
    await runner.setup()  # runs startup: databases opened, demo users seeded (passwords printed)
    try:
        site: web.BaseSite
        if args.unix:
            site = web.UnixSite(runner, args.unix)
            await site.start()
            where = f"unix:{args.unix}"
        else:
            site = web.TCPSite(runner, args.host, args.port)
            await site.start()
            host, port = runner.addresses[0][:2]  # the real port, also for --port 0
            where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        print(f"upstream listening on {where}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _notifier(url: str | None) -> Notify | None:
    token = os.environ.get("BASTION_ADMIN_TOKEN", "")
    if not url or not token:
        return None
    return sidecar_notifier(url, token)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        app = create_app(
            auth_db_path=args.data_dir / AUTH_DB,
            data_db_path=args.data_dir / DATA_DB,
            secret=secret_from_env(),
            seed_passwords=passwords_from_env(os.environ),
            on_revoke=_notifier(args.revocation_url),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(app, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
