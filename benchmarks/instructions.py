#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: the CPU figure this machine cannot blur.

`run.py`'s CPU µs per request moves by ±15 % between rounds here (2 shared vCPUs, other tenants,
frequency changes), which is larger than most single changes Bastion's hot path can make. A count of
executed user-space instructions does not move with the neighbours: the same build measured twice
agrees within ~1.5 % (every target runs with `PYTHONHASHSEED=0`). So this script measures each target
under callgrind, sequentially, and reports instructions per request and the ratio to the yardstick
(`../shared/bench/bare_proxy.py`).

What it does not see: kernel time (system calls, the loopback TCP stack; about the same for every
proxy here, each makes the same reads and writes per request), cache misses and stalls. It is a
complement to run.py's wall-clock CPU, not a replacement: RESULTS.md quotes both.

Per target: the upstream (not instrumented) and the proxy under `valgrind --tool=callgrind
--instr-atstart=no` start; wrk warms the proxy up uninstrumented; `callgrind_control -i on` starts
counting, wrk sends load for `--seconds` with 8 connections, `-i off` stops, and the dump's total
(all threads: the event loop, the log writer, the sink threads) is divided by wrk's request count.

Targets (all 1 worker, GET /small of run.py's upstream):
- yardstick: bare_proxy.py;
- bastion: the run.py configuration (repo defaults, access log on, one `allow: anonymous` rule per
  route, so ingress, rule match and authorisation run; trace context and security headers on);
- bastion-core: issue 2's pass-through scope: no rules, `tracing: {enabled: false}` (request ids,
  forwarded headers, limits, canonical path, the access log, and still the security headers);
- bastion-nolog: `bastion` with `access_log: false` (records still feed the metrics).

    .venv/bin/python benchmarks/instructions.py                 # ~3 minutes
    .venv/bin/python benchmarks/instructions.py --targets yardstick,bastion --seconds 15
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run  # benchmarks/run.py: process handling, ports, the bench rules and upstream

TARGETS = ("yardstick", "bastion", "bastion-core", "bastion-nolog")


def wrk(url: str, seconds: int, connections: int = 8) -> int:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"wrk gave no request count: {out[-300:]}")
    return int(m.group(1))


def totals(prefix: Path) -> int:
    """Instructions in the dump files of one run (the explicit dump, and the one at exit, which
    holds nothing once counting was switched off)."""
    n = 0
    for f in prefix.parent.glob(prefix.name + "*"):
        # a dump names its cost in `summary:` or `totals:` (the other may be 0); counted once
        found = [int(line.split()[1]) for line in f.read_text(errors="replace").splitlines()
                 if line.startswith(("totals:", "summary:"))]  # fmt: skip
        n += max(found, default=0)
    return n


def measure(target: str, work: Path, upstream_port: int, seconds: int, python: str, source: Path) -> tuple[int, int]:
    port, admin = run.free_port(), run.free_port()
    out = work / f"{target}.callgrind"
    if target == "yardstick":
        argv = [python, str(run.YARDSTICK), "--port", str(port), "--upstream", f"http://127.0.0.1:{upstream_port}"]
        cwd = work
    else:
        cwd = work / target
        # cwd first on sys.path with -m: this copy of `proxy` is the one measured
        shutil.copytree(source / "proxy", cwd / "proxy", ignore=shutil.ignore_patterns("__pycache__"))
        t = run.Target(target, "bastion", 1, port, target, admin_port=admin, access_log=target != "bastion-nolog")
        run.bastion_config(cwd / "config.yaml", t, upstream_port, "core" if target == "bastion-core" else "full")
        argv = [python, "-m", "proxy", "run", "-c", "config.yaml"]
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    log = (work / f"{target}.log").open("wb")
    proc = subprocess.Popen([*vg, *argv], cwd=cwd, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/small"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if run.http("GET", url, timeout=5.0)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start; see {work / (target + '.log')}")
            time.sleep(0.5)
        wrk(url, 3)  # warm-up, not counted
        ctl = ["callgrind_control"]
        subprocess.run([*ctl, "-i", "on", str(proc.pid)], check=True, capture_output=True)
        n = wrk(url, seconds)
        subprocess.run([*ctl, "-i", "off", str(proc.pid)], check=True, capture_output=True)
        subprocess.run([*ctl, "-d", str(proc.pid)], check=True, capture_output=True)
        time.sleep(1.0)
        return n, totals(out)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {', '.join(TARGETS)}")
    ap.add_argument("--seconds", type=int, default=10, help="counted load per target (wrk -c8)")
    ap.add_argument("--source", type=Path, default=run.REPO, help="directory whose proxy/ package is measured")
    args = ap.parse_args()
    # one string-hash seed for every target: with a random one, dict and set probing differ between runs and
    # the same build's count moved by a few per cent (measured on the detector bench, ±3.5 %)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if not shutil.which(tool):
            print(f"instructions.py needs {tool} (apt-get install valgrind wrk)", file=sys.stderr)
            return 2
    targets = [t for t in args.targets.split(",") if t]
    if unknown := set(targets) - set(TARGETS):
        print(f"unknown targets: {sorted(unknown)}", file=sys.stderr)
        return 2
    python = sys.executable
    procs = run.Processes()
    results: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bastion-instr-") as tmp:
        work = Path(tmp)
        try:
            up_port = run.free_port()
            upstream = run.Target("direct", "direct", 1, up_port, "upstream")
            upstream.proc = procs.start(
                "upstream", [python, str(run.BENCH_DIR / "upstream_server.py"), "--port", str(up_port)], work
            )
            run.wait_ready(upstream)
            for t in targets:
                results[t] = measure(t, work, up_port, args.seconds, python, args.source)
                n, ir = results[t]
                print(f"{t}: {n} requests, {ir:,} instructions", file=sys.stderr, flush=True)
        finally:
            procs.stop_all()
    rev = run.code_revision() if args.source == run.REPO else f"tree {args.source}"
    print(f"\nInstructions per request (callgrind, user space, all threads), GET /small, Bastion {rev}")
    print(f"Command: `{' '.join(['python', 'benchmarks/instructions.py', *sys.argv[1:]])}`\n")
    base = results.get("yardstick")
    base_per = base[1] / base[0] if base and base[0] else None
    print("| target | requests counted | instructions / request | ÷ yardstick |")
    print("|---|---:|---:|---:|")
    for t, (n, ir) in results.items():
        per = ir / n if n else 0.0
        ratio = f"{per / base_per:.2f}" if base_per else "—"
        print(f"| {t} | {n:,} | {per:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
