"""`--workers N`: N freshly spawned worker processes share the port through SO_REUSEPORT.

The parent binds nothing on the proxied port. It serves the admin listener, restarts a worker that
dies (with a back-off when one dies straight after start), forwards SIGHUP, and on SIGTERM/SIGINT
drains: readiness turns 503 for `drain_delay`, then the workers get SIGTERM and finish their
in-flight requests within the grace period. Workers are spawned, not forked, so no event loop,
socket or thread is inherited.

Metrics: each worker counts its own requests into prometheus-client's multiprocess files, in a
directory this process creates and names in the worker's environment (`PROMETHEUS_MULTIPROC_DIR`:
prometheus-client picks its value class when it is imported, so the variable must be there before
the worker starts, never set later). `/metrics` on the admin listener serves the sum; a worker that
exits has its live gauges removed, its counters kept. The directory is removed at exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from proxy.admin import Health, create_admin_app, start_admin
from proxy.config import Config
from proxy.forwarder import upstream_reachable
from proxy.logs import LogOutput, setup_logging
from proxy.metrics import MULTIPROC_ENV, mark_process_dead, render_multiprocess

log = logging.getLogger("bastion.supervisor")


class Worker:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, env=env)
        self.started = time.monotonic()


async def supervise(cfg: Config, config_path: str, workers: int, loop_kind: str) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="bastion-metrics-")
    try:
        return await _supervise(cfg, config_path, workers, loop_kind, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def _supervise(cfg: Config, config_path: str, workers: int, loop_kind: str, metrics_dir: str) -> int:
    output = LogOutput.from_config(cfg.logging, worker="sup")
    setup_logging(cfg.logging, output)
    argv = [sys.executable, "-m", "proxy", "_worker", "-c", config_path, "--loop", loop_kind]
    health = Health(lambda: upstream_reachable(cfg.upstream))
    pool: list[Worker] = []
    restarts = 0
    health.extra["workers"] = lambda: [w.proc.pid for w in pool if w.proc.poll() is None]
    health.extra["restarts"] = lambda: restarts
    env = {**os.environ, MULTIPROC_ENV: metrics_dir}
    admin_app = create_admin_app(health, metrics=lambda: render_multiprocess(metrics_dir))
    admin_runner, admin_port = await start_admin(admin_app, cfg.admin.host, cfg.admin.port)
    log.warning(
        "running %d workers: rate limits, login lockouts and revocations are per process unless store: redis is"
        " configured",
        workers,
    )
    # each slot keeps its log files and spool (proxy/logship) across restarts of its worker
    pool.extend(Worker(argv, {**env, "BASTION_WORKER": f"w{i}"}) for i in range(workers))
    log.info("supervising", extra={"workers": [w.proc.pid for w in pool], "admin_port": admin_port})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _signal_all(pool, signal.SIGHUP))

    while not stop.is_set():
        for i, w in enumerate(pool):
            code = w.proc.poll()
            if code is None:
                continue
            quick = time.monotonic() - w.started < 1.0
            log.warning("worker exited; restarting", extra={"pid": w.proc.pid, "exit_code": code})
            mark_process_dead(w.proc.pid, metrics_dir)
            if quick:  # crash loop: do not spin
                await asyncio.sleep(1.0)
            pool[i] = Worker(argv, {**env, "BASTION_WORKER": f"w{i}"})
            restarts += 1
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass

    health.draining = True
    if cfg.shutdown.drain_delay > 0:
        log.info("draining", extra={"drain_delay_s": cfg.shutdown.drain_delay})
        await asyncio.sleep(cfg.shutdown.drain_delay)
    _signal_all(pool, signal.SIGTERM)
    deadline = time.monotonic() + cfg.shutdown.grace_period + 5
    while any(w.proc.poll() is None for w in pool) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for w in pool:
        if w.proc.poll() is None:
            log.error("worker did not stop in time; killing", extra={"pid": w.proc.pid})
            w.proc.kill()
            w.proc.wait()
    await admin_runner.cleanup()
    log.info("stopped")
    output.close()
    return 0


def _signal_all(pool: list[Worker], sig: int) -> None:
    for w in pool:
        if w.proc.poll() is None:
            w.proc.send_signal(sig)
