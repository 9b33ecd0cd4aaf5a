#!/usr/bin/env python3
"""Same-minute A/B of Bastion builds: which commit made the pass-through path slower or faster?

`run.py` compares Bastion with the yardstick; it cannot tell which change moved a figure, because
this shared machine's speed drifts by 10-20 % between runs. This script checks out each named git
revision (or the working tree, `.`) into a temporary directory, starts one 1-worker Bastion per
revision with the same minimal config (keys every revision understands), plus the yardstick, and
measures them interleaved, round after round, so the drift hits each build alike. It prints CPU
µs per request (the process tree) and req/s per build, median over rounds.

    .venv/bin/python benchmarks/ab.py 8ce2295 HEAD . --scenarios small,post64k --rounds 5

Revisions run with this checkout's venv (same aiohttp, uvloop, orjson), so only Bastion's own code
differs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import run  # benchmarks/run.py: processes, wrk, CPU accounting


def checkout(rev: str, into: Path) -> str:
    """Export `rev` (or the working tree for '.') into `into`; return a short label."""
    if rev == "." or (Path(rev) / "proxy").is_dir():
        src = run.REPO if rev == "." else Path(rev)
        shutil.copytree(src / "proxy", into / "proxy", ignore=shutil.ignore_patterns("__pycache__"))
        return "worktree" if rev == "." else Path(rev).name
    sha = subprocess.run(
        ["git", "-C", str(run.REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "-C", str(run.REPO), "archive", sha, "proxy"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return sha


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "revs", nargs="+", help="git revisions, '.' for the working tree, or a directory holding a proxy/ package"
    )
    ap.add_argument("--scenarios", default="small")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--no-access-log", action="store_true")
    ap.add_argument("--no-yardstick", action="store_true")
    args = ap.parse_args()
    wrk = shutil.which("wrk")
    if not wrk:
        print("ab.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    s = run.Settings(
        duration=args.duration,
        rounds=args.rounds,
        connections=64,
        threads=1,
        tool="wrk",
        fixed_rate=False,
        fixed_rate_client="raw",
        max_foreign=run.FOREIGN_MAX_DEFAULT,
        retries=0,
        scenarios=args.scenarios.split(","),
        python=sys.executable,
        wrk=wrk,
    )
    scenarios = [run.SCENARIOS[n] for n in args.scenarios.split(",")]
    procs = run.Processes()
    with tempfile.TemporaryDirectory(prefix="bastion-ab-") as tmp:
        work = Path(tmp)
        try:
            up = run.Target("direct", "direct", 1, run.free_port(), "upstream")
            up.proc = procs.start(
                "upstream", [s.python, str(run.BENCH_DIR / "upstream_server.py"), "--port", str(up.port)], work
            )
            targets: list[run.Target] = []
            if not args.no_yardstick:
                y = run.Target("yardstick", "yardstick", 1, run.free_port(), "bare_proxy.py")
                y.proc = procs.start(
                    y.name,
                    [s.python, str(run.YARDSTICK), "--port", str(y.port), "--upstream", f"http://127.0.0.1:{up.port}"],
                    work,
                )
                targets.append(y)
            for i, rev in enumerate(args.revs):
                d = work / f"rev{i}"
                d.mkdir()
                label = checkout(rev, d)
                t = run.Target(
                    f"{i}-{label}", "bastion", 1, run.free_port(), rev,
                    admin_port=run.free_port(), access_log=not args.no_access_log,
                )  # fmt: skip
                run.bastion_config(d / "config.yaml", t, up.port)  # run.py's config: same keys for every revision
                # cwd first on sys.path with -m: the exported tree's `proxy` wins over the venv's.
                t.proc = procs.start(t.name, [s.python, "-m", "proxy", "run", "-c", "config.yaml"], work, cwd=d)
                targets.append(t)
            for t in [up, *targets]:
                run.wait_ready(t)
            run.sanity_check([up, *targets], scenarios)
            procs.remember_tree()
            for sc in scenarios:
                lua = work / f"{sc.name}.lua"
                lua.write_text(sc.lua())
                rows: dict[str, list[run.Saturation]] = {t.name: [] for t in targets}
                for rnd in range(args.rounds):
                    for t in run.rotate(targets, rnd):
                        r = run.saturation(t, up, [up, *targets], sc, rnd, s, lua, args.duration)
                        rows[t.name].append(r)
                print(f"\n{sc.name}: median of {args.rounds} rounds × {args.duration} s (wrk -c64)")
                print(f"{'build':<22} {'req/s':>8} {'CPU µs/req':>11}   per round CPU µs/req")
                for name, rs in rows.items():
                    rps = statistics.median(r.rps for r in rs)
                    cpu = statistics.median(r.cpu_us_per_req or 0 for r in rs)
                    per = " ".join(f"{r.cpu_us_per_req or 0:.0f}" for r in rs)
                    print(f"{name:<22} {rps:>8,.0f} {cpu:>11.1f}   {per}")
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
