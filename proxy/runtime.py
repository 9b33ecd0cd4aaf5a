"""Process lifetime for one serving process: event loop choice, signals, graceful stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from proxy.app import Bastion
from proxy.config import Config
from proxy.connection import c_parser_active
from proxy.logs import LogOutput, setup_logging
from proxy.policy import PolicyError

log = logging.getLogger("bastion")


def run_loop(main: Coroutine[Any, Any, int], loop_kind: str = "auto") -> int:
    if loop_kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if loop_kind == "uvloop":
                raise
        else:
            return uvloop.run(main)
    return asyncio.run(main)


async def serve(
    cfg: Config, *, config_path: Path, admin: bool = True, reuse_port: bool = False, drain: bool = True
) -> int:
    """Serve until SIGTERM/SIGINT, then stop gracefully. Returns the exit code."""
    # a worker of `--workers N` keeps its own log files and spools (proxy/logship)
    output = LogOutput.from_config(cfg.logging, worker=os.environ.get("BASTION_WORKER"))
    setup_logging(cfg.logging, output)
    if not c_parser_active() and not cfg.protocol.allow_python_parser:
        print("aiohttp's C parser (llhttp) is not available; refusing the pure-Python parser", file=sys.stderr)
        log.error("refusing the pure-Python HTTP parser (protocol.allow_python_parser: false)")
        output.close()
        return 1
    try:
        bastion = Bastion(cfg, output, admin=admin, reuse_port=reuse_port, base=config_path.parent)
    except PolicyError as exc:
        for msg in exc.messages:
            print(msg, file=sys.stderr)
        log.error("rule files do not load; not starting", extra={"errors": exc.messages})
        output.close()
        return 1
    if not cfg.rules:
        log.warning("no access rules (rules: []): every request that passes the other checks is forwarded")
    try:
        await bastion.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await bastion.shutdown(drain=False)
        output.close()
        return 1
    # Everything built so far (config, compiled rules, keys, modules) lives as long as the process:
    # move it out of the collector's way so full collections only walk per-request garbage.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = asyncio.create_task(bastion.reload("SIGHUP", config_path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    log.info(
        "listening",
        extra={"url": bastion.url, "admin_url": bastion.admin_url if admin else None, "upstream": cfg.upstream.url},
    )
    await stop.wait()
    log.info("shutting down", extra={"inflight": bastion.handler.inflight})
    await bastion.shutdown(drain=drain)
    log.info("stopped")
    output.close()
    return 0
