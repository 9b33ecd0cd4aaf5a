#!/usr/bin/env python3
"""What does JWT authentication cost? req/s and CPU per request through Bastion with auth off,
with a verified-token cache hit, and with the cache off (every request verifies: HS256, RS256, ES256).

Standalone, reusing the harness of `ratelimit_bench.py` (upstream, wrk, interleaved rounds,
medians, Bastion's CPU from /proc). Access log off so authentication is what differs. Every
request, in every mode, carries the same valid token (so "off" parses and forwards the same bytes
and only the verification differs); with the cache on, the signature is checked once and then
every request is a cache hit (plus the revocation check, done on every request).

    python benchmarks/jwt_bench.py                    # 3 rounds × 5 s per mode
    python benchmarks/jwt_bench.py --duration 3 --rounds 1

Target (issue 3): with cache hits, authentication costs under 10% of pass-through throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ratelimit_bench as rb  # noqa: E402  (the shared harness)

MODES = ("off", "hs256-cached", "hs256-nocache", "rs256-nocache", "es256-nocache")
SECRET = "benchmark-secret-" + "s" * 32


def keys(work: Path) -> dict[str, tuple[object, Path]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    out: dict[str, tuple[object, Path]] = {}
    for name, key in (("RS256", rsa_key), ("ES256", ec_key)):
        pem = work / f"{name}.pem"
        pem.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        out[name] = (key, pem)
    return out


def config(path: Path, mode: str, port: int, admin: int, upstream: int, pems: dict[str, tuple[object, Path]]) -> str:
    """Write the mode's config; return the token to send."""
    text = (
        f"listen: {{host: 127.0.0.1, port: {port}}}\nadmin: {{host: 127.0.0.1, port: {admin}}}\n"
        f"upstream: {{url: 'http://127.0.0.1:{upstream}'}}\nrules: []\n"
        "logging: {level: warning, access_log: false}\nshutdown: {drain_delay: 0}\n"
    )
    alg = "HS256" if mode == "off" else mode.split("-")[0].upper()
    now = int(time.time())
    claims = {"iss": "bench", "sub": "alice", "roles": ["user"], "iat": now, "exp": now + 3600}
    if alg == "HS256":
        key_line = f"secret: '{SECRET}'"
        token = jwt.encode(claims, SECRET, algorithm=alg)
    else:
        private, pem = pems[alg]
        key_line = f"public_key_file: '{pem}'"
        token = jwt.encode(claims, private, algorithm=alg)  # type: ignore[arg-type]
    if mode == "off":  # the same token travels (and is forwarded); only its verification is off
        path.write_text(text)
        return token
    cache = "" if mode.endswith("-cached") else "  cache: {size: 0}\n"
    text += f"auth:\n  issuers:\n    - {{issuer: bench, algorithms: [{alg}], {key_line}}}\n{cache}"
    path.write_text(text)
    return token


def wrk(url: str, token: str, duration: float, connections: int) -> tuple[float, float, int]:
    return rb.wrk(url, duration, connections, (f"Authorization: Bearer {token}",))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="jwt-bench-"))
    kids = rb.Children(work)
    try:
        up = rb.free_port()
        kids.start("upstream", [sys.executable, str(Path(rb.__file__)), "--serve-upstream", str(up)])
        pems = keys(work)
        pids: dict[str, int] = {}
        targets: dict[str, tuple[str, str, str]] = {}
        for mode in MODES:
            port, admin = rb.free_port(), rb.free_port()
            cfg = work / f"{mode}.yaml"
            token = config(cfg, mode, port, admin, up, pems)
            pids[mode] = kids.start(f"bastion-{mode}", [sys.executable, "-m", "proxy", "run", "-c", str(cfg)]).pid
            targets[mode] = (f"http://127.0.0.1:{port}/small", f"http://127.0.0.1:{admin}", token)
        for _, admin, _ in targets.values():
            rb.wait_http(admin + "/readyz")
        results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            for mode in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
                url, _, token = targets[mode]
                wrk(url, token, 1.0, args.connections)  # warm-up (and the one signature check when cached)
                c0, t0 = rb.cpu_seconds(pids[mode]), time.monotonic()
                results[mode].append(wrk(url, token, args.duration, args.connections))
                rps, p99, bad = results[mode][-1]
                cpu[mode].append((rb.cpu_seconds(pids[mode]) - c0) / (rps * (time.monotonic() - t0)) * 1e6)
                print(f"round {r + 1} {mode:14} {rps:9.0f} req/s  p99 {p99:7.2f} ms  {cpu[mode][-1]:6.1f} µs CPU/req"
                      f"  non-2xx {bad}", file=sys.stderr)
        print(f"\nwrk -t1 -c{args.connections}, {args.rounds} round(s) × {args.duration:g} s, "
              f"{os.cpu_count()} CPUs, medians; command: python benchmarks/jwt_bench.py "
              f"--duration {args.duration:g} --rounds {args.rounds}\n")
        rb.print_table(MODES, results, cpu)
        return 0
    finally:
        kids.stop()


if __name__ == "__main__":
    raise SystemExit(main())
