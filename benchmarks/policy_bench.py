#!/usr/bin/env python3
"""Micro-benchmark of the access-rule engine: µs per decision (match + decide) at 10, 100 and 1000 rules.

Why it exists: the matcher promises that a decision costs about the same however many rules there
are (segment trie, regexes only when no glob matched). Tests do not assert timing (CI machines are
noisy); this script shows the numbers. The rule sets look like a real API: per service a list, an
item, a nested `**` and a method-specific write rule, plus a catch-all for /static.

Usage: python benchmarks/policy_bench.py [--repeat 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from multidict import CIMultiDict, CIMultiDictProxy  # noqa: E402

from proxy.identity import Principal  # noqa: E402
from proxy.policy import PolicySet, Probe, compile_documents  # noqa: E402
from proxy.yamlsource import Document  # noqa: E402


def rule_set(n: int) -> PolicySet:
    rules: list[dict[str, object]] = []
    services = max(1, n // 4)
    for i in range(services):
        rules += [
            {"id": f"s{i}-list", "match": {"path": f"/svc{i}/items", "methods": ["GET"]}, "allow": "authenticated"},
            {"id": f"s{i}-item", "match": {"path": f"/svc{i}/items/{{id}}"}, "allow": {"roles_any": ["user"]}},
            {"id": f"s{i}-tree", "match": {"path": f"/svc{i}/**"}, "allow": {"roles_any": ["admin"]}},
            {
                "id": f"s{i}-write",
                "match": {"path": f"/svc{i}/items/{{id}}", "methods": ["PUT", "DELETE"]},
                "allow": {"roles_any": ["user"], "scopes_all": ["write"]},
            },
        ]
    rules = rules[: n - 1] + [{"id": "static", "match": {"path": "/static/**"}, "allow": "anonymous"}]
    doc = Document(Path(f"<bench-{n}>"), {"roles": {"admin": ["user"]}, "rules": rules}, {(): 1})
    return compile_documents([doc])  # strict: the compile time printed includes the linter


def requests(n: int) -> list[Probe]:
    rng = random.Random(n)
    services = max(1, n // 4)
    hdrs: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
    out = []
    for _ in range(256):
        s = rng.randrange(services)
        path = rng.choice(
            [
                f"/svc{s}/items",
                f"/svc{s}/items/{rng.randrange(999)}",
                f"/svc{s}/a/b/c",
                "/static/app.js",
                "/nothing/here",
            ]
        )
        out.append(Probe(rng.choice(["GET", "PUT", "POST"]), path, "api.example.com", "10.0.0.1", hdrs))
    return out


def bench(n: int, repeat: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    policy = rule_set(n)
    compile_s = time.perf_counter() - t0
    reqs = requests(n)
    principal = Principal("u", "i", roles=frozenset({"user"}), scopes=frozenset({"read"}))
    match = policy.match
    t0 = time.perf_counter()
    for i in range(repeat):
        req = reqs[i & 255]
        m = match(req)
        if m.rule is not None:
            m.rule.decide(principal, req.headers)
    return (time.perf_counter() - t0) / repeat * 1e6, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200_000)
    args = parser.parse_args()
    base = None
    for n in (10, 100, 1000):
        us, compile_s = bench(n, args.repeat)
        base = base or us
        ratio = us / base
        print(f"{n:5d} rules: {us:6.2f} µs per decision ({ratio:4.2f}x of 10 rules), compile {compile_s * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
