"""Process lifetime for one serving process: event loop choice, signals, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from proxy.app import Bastion
from proxy.config import Config
from proxy.logs import LogOutput, setup_logging

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


async def serve(cfg: Config, *, admin: bool = True, reuse_port: bool = False, drain: bool = True) -> int:
    """Serve until SIGTERM/SIGINT, then stop gracefully. Returns the exit code."""
    output = LogOutput()
    setup_logging(cfg.logging, output)
    bastion = Bastion(cfg, output, admin=admin, reuse_port=reuse_port)
    try:
        await bastion.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await bastion.shutdown(drain=False)
        output.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP received: nothing to reload yet"))
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
