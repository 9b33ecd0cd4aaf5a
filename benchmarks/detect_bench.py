"""Detection rate, false-positive rate and cost of proxy.detect on benchmarks/corpus/.

    /tmp/probe/bin/python benchmarks/detect_bench.py                  # print the table
    /tmp/probe/bin/python benchmarks/detect_bench.py --write FILE     # and append it to FILE
    /tmp/probe/bin/python benchmarks/detect_bench.py --show-fp 20     # tuning set only: what fired on benign
    /tmp/probe/bin/python benchmarks/detect_bench.py --cost-only      # the cost table alone (no detection runs)

Attacks: every corpus line is sent as `?q=<line>` (the line is URL form, see corpus/README.md), and
also, decoded once, as the JSON body `{"q": <value>}`. A payload is *detected* when any detector fires
(a block is a block); "own class" counts only the detector of the payload's class.
Benign: one request = path + query + cookies + User-Agent/Referer/X-Forwarded-Host + JSON or form
body; it is a false positive when any field of it triggers. The rule used is the one a real route
would set: all classes, `url_fields: [body.website, body.links[*]]`, and `body.snippet` (a SQL
console field) excluded from sqli; the rate without that exclusion is shown too.
Cost: CPU µs per ~2 KB JSON body, two kinds (records: many short fields; prose: long free text),
fields + scan, and with `orjson.loads` included; best of 7 rounds.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import statistics
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.canonical import canonical_path
from proxy.detect import CLASSES, Engine, Exclusion, Field, json_fields, query_fields, request_fields

CORPUS = Path(__file__).resolve().parent / "corpus"
TARGET = {"sqli", "xss", "lfi", "cmdi"}
_SAFE = "%+/:=,@!$'()*;?~._-[]"


def load_attacks(folder: str) -> dict[str, list[str]]:
    return {p.stem: [line for line in p.read_text(encoding="utf-8").split("\n") if line]
            for p in sorted((CORPUS / folder).glob("*.txt"))}


def load_benign(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (CORPUS / "benign" / f"{name}.jsonl").read_bytes().splitlines()]


def query_of(line: str) -> str:
    return "q=" + urllib.parse.quote(line, safe=_SAFE)


def benign_fields(req: dict[str, Any]) -> list[Field]:
    headers = [(k, v) for k, v in req["headers"].items() if k in ("User-Agent", "Referer", "X-Forwarded-Host")]
    return request_fields(path=req["path"], query=req["query"], headers=headers, cookies=req["cookies"].items(),
                          json=req.get("json"), form=req.get("form"))


def attack_rates(engine: Engine, attacks: dict[str, list[str]]) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for cls, lines in attacks.items():
        any_q = own_q = any_j = 0
        for line in lines:
            found = engine.scan(query_fields(query_of(line)))
            any_q += bool(found)
            own_q += any(f.cls == cls or (cls == "nosqli" and f.cls == "nosqli") for f in found)
            any_j += bool(engine.scan(json_fields({"q": urllib.parse.unquote(line)})))
        out[cls] = (len(lines), any_q, own_q, any_j)
    return out


def fp_rate(engine: Engine, requests: list[dict[str, Any]], show: int = 0) -> tuple[int, int]:
    hits = 0
    seen: Counter[str] = Counter()
    for req in requests:
        found = engine.scan(benign_fields(req))
        if found:
            hits += 1
            for f in found:
                seen[f.detector_id] += 1
                if show:
                    print(f"  FP {req['id']:5} {f.detector_id:22} {f.field_name[:30]:30} {f.snippet!r}")
    if show:
        print("  by detector:", dict(seen.most_common()))
    return hits, len(requests)


def _timed(engine: Engine, docs: list[Any], bodies: list[bytes]) -> tuple[float, float]:
    """CPU time (process_time: other processes on a shared machine do not count), best of 7 rounds."""
    scan_only, with_parse = [], []
    for _ in range(7):
        t0 = time.process_time()
        for _ in range(5):
            for doc in docs:
                engine.scan(json_fields(doc))
        t1 = time.process_time()
        for _ in range(5):
            for body in bodies:
                engine.scan(json_fields(orjson.loads(body)))
        t2 = time.process_time()
        scan_only.append((t1 - t0) / (5 * len(docs)) * 1e6)
        with_parse.append((t2 - t1) / (5 * len(docs)) * 1e6)
    return min(scan_only), min(with_parse)


def cost(engine: Engine, requests: list[dict[str, Any]]) -> list[tuple[str, int, int, float, float]]:
    """Two kinds of ~2 KB bodies: records (orders and profiles batched until >= 2 KB: many short fields)
    and prose (the benign bodies of 1.5-2.5 KB: articles, comments, tickets with long text)."""
    records: list[bytes] = []
    batch: list[Any] = []
    for r in requests:
        if r["kind"] in ("order", "profile"):
            batch.append(r["json"])
            if len(orjson.dumps({"records": batch})) >= 2000:
                records.append(orjson.dumps({"records": batch}))
                batch = []
    prose = [orjson.dumps(r["json"]) for r in requests if "json" in r and 1500 <= len(orjson.dumps(r["json"])) <= 2500]
    out = []
    for name, bodies in (("records", records[:200]), ("prose", prose)):
        docs = [orjson.loads(b) for b in bodies]
        scan_us, parse_us = _timed(engine, docs, bodies)
        out.append((name, len(bodies), int(statistics.median(len(b) for b in bodies)), scan_us, parse_us))
    return out


def cost_table(engine: Engine) -> str:
    """The cost rows as markdown. The bodies come from both benign sets (only timed: no finding is looked at)."""
    lines = ["| ~2 KB JSON body | bodies | median size | fields + scan (CPU µs) | with `orjson.loads` |",
             "|---|---:|---:|---:|---:|"]
    for name, count, size, scan_us, parse_us in cost(engine, load_benign("tuning") + load_benign("heldout")):
        lines.append(f"| {name} | {count} | {size} B | {scan_us:.1f} | {parse_us:.1f} |")
    lines += ["", f"Python {sys.version.split()[0]}, best of 7 rounds of CPU time (`time.process_time`)."]
    return "\n".join(lines)


class ModSec:
    """The same requests through nginx + ModSecurity + CRS on loopback; a 403 is a block (see README)."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        self.other: Counter[int] = Counter()

    def status(self, method: str, target: str, headers: dict[str, str], body: bytes | None = None) -> int:
        for attempt in range(2):
            try:
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                if response.status not in (200, 403):
                    self.other[response.status] += 1
                return response.status
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def attack(self, line: str) -> tuple[bool, bool]:
        by_query = self.status("GET", "/search?" + query_of(line), {}) == 403
        body = orjson.dumps({"q": urllib.parse.unquote(line)})
        by_json = self.status("POST", "/api/items", {"Content-Type": "application/json"}, body) == 403
        return by_query, by_json

    def benign(self, req: dict[str, Any]) -> bool:
        headers = dict(req["headers"])
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in req["cookies"].items())
        body = None
        if "json" in req:
            headers["Content-Type"], body = "application/json", orjson.dumps(req["json"])
        elif "form" in req:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode([tuple(p) for p in req["form"]]).encode()
        target = req["path"] + ("?" + req["query"] if req["query"] else "")
        encoded = {k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()}
        return self.status(req["method"], target, encoded, body) == 403


def modsec_rates(modsec: ModSec, attacks: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    out = {}
    for cls, lines in attacks.items():
        results = [modsec.attack(line) for line in lines]
        out[cls] = (sum(q for q, _ in results), sum(j for _, j in results))
    return out


def fresh_by_source(engine: Engine, folder: str = "attacks-fresh") -> list[str]:
    """A fresh held-out set per source list (<folder>/provenance.tsv): templated families (one list
    varying one payload) weigh heavily in a per-line rate, so each list is shown alone."""
    where: dict[tuple[str, int], str] = {}
    for row in (CORPUS / folder / "provenance.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        cls, line, source = row.split("\t")
        where[(cls, int(line))] = source
    counts: dict[tuple[str, str], list[int]] = {}
    for cls, payloads in load_attacks(folder).items():
        for i, line in enumerate(payloads, 1):
            c = counts.setdefault((cls, where.get((cls, i), "?")), [0, 0, 0])
            c[0] += 1
            c[1] += bool(engine.scan(query_fields(query_of(line))))
            c[2] += bool(engine.scan(json_fields({"q": urllib.parse.unquote(line)})))
    out = ["", f"Fresh held-out set `{folder}/`, per source list:", "",
           "| class | source | payloads | via query | via JSON body |", "|---|---|---:|---:|---:|"]
    for (cls, source), (n, q, j) in sorted(counts.items()):
        out.append(f"| {cls} | {source} | {n} | {q / n:.1%} | {j / n:.1%} |")
    return out


def as_request(line: str) -> tuple[str, str, bytes | None, dict[str, Any]]:
    """A line of attacks-fresh3/ or -fresh4/ (a whole query string, target or JSON body of a request) as
    that request: method, target, body for CRS, and `request_fields` arguments for Bastion. `?q=<line>`
    would make one value of `a=1&id=SLEEP(7)`, where the application sees `id` = `SLEEP(7)`."""
    if line.startswith("{"):
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        if doc is not None:
            return "POST", "/api/items", line.encode(), {"json": doc}
    target = urllib.parse.quote(line, safe=_SAFE + "&#") if line.startswith("/") else "/search?" + urllib.parse.quote(
        line, safe=_SAFE + "&")
    path, _, query = target.partition("?")
    return "GET", target, None, {"path": path if line.startswith("/") else "", "query": query}


def request_rates(engine: Engine, modsec: ModSec | None, folder: str) -> list[str]:
    """Each line sent as the request it came from (see `as_request`), by Bastion and, if given, CRS. A target
    whose path Bastion's canonical-path function refuses (a dot segment above the root, an encoded `/`, `\\`
    or NUL) is a 400 before any check, and counts as refused, as does nginx's own 400 for CRS."""
    out = ["", f"`{folder}/` sent as the requests the lines came from (query string, target or JSON body); "
           "refused = 403, or 400 before detection (Bastion's canonical path, nginx's parser):", "",
           "| class | payloads | Bastion refuses | of which 400 | CRS PL1 refuses | of which 400 |",
           "|---|---:|---:|---:|---:|---:|"]
    for cls, lines in load_attacks(folder).items():
        hit = bad = crs = crs_bad = 0
        for line in lines:
            method, target, body, fields = as_request(line)
            try:
                if fields.get("path"):
                    fields["path"] = canonical_path(fields["path"])
                hit += bool(engine.scan(request_fields(**fields)))
            except ValueError:  # PathError, or a field limit: Bastion answers 400
                bad += 1
            if modsec is not None:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                status = modsec.status(method, target, headers, body)
                crs += status == 403
                crs_bad += status == 400
        n = len(lines)
        row = f"| {cls} | {n} | {hit + bad} ({(hit + bad) / n:.1%}) | {bad} |"
        out.append(row + (f" {crs + crs_bad} ({(crs + crs_bad) / n:.1%}) | {crs_bad} |" if modsec else " - | - |"))
    return out


def libinjection_lines(tuning_only: bool) -> list[str]:
    """The optional GPL adapter alone (sqli, xss), with the same corpus and the same snippet exclusion."""
    from proxy.detect import DEFAULT_DETECTORS
    from proxy.detect.libinjection import LibinjectionSqli, LibinjectionXss

    detectors = {**DEFAULT_DETECTORS, "sqli": (LibinjectionSqli(),), "xss": (LibinjectionXss(),)}
    engine = Engine(["sqli", "xss"], detectors=detectors, exclusions=[Exclusion("body.snippet", frozenset({"sqli"}))])
    out = ["", "libinjection-python 1.1.6 alone (optional adapter, `--libinjection`):", "",
           "| class | set | payloads | via query | via JSON body |", "|---|---|---:|---:|---:|"]
    for folder in ("attacks",) if tuning_only else ("attacks", "attacks-heldout"):
        attacks = {c: v for c, v in load_attacks(folder).items() if c in ("sqli", "xss")}
        for cls, (n, any_q, _, any_j) in attack_rates(engine, attacks).items():
            out.append(f"| {cls} | {folder.replace('attacks-', '').replace('attacks', 'tuning')} | {n} | "
                       f"{any_q / n:.1%} | {any_j / n:.1%} |")
    for name in ("tuning",) if tuning_only else ("tuning", "heldout"):
        hits, n = fp_rate(engine, load_benign(name))
        out.append(f"\nBenign {name}: {hits} of {n} requests flagged ({hits / n:.2%}).")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="append the markdown table to this file")
    parser.add_argument("--show-fp", type=int, default=0, help="print benign findings (tuning set only)")
    parser.add_argument("--tuning-only", action="store_true", help="skip the held-out sets (while tuning)")
    parser.add_argument("--modsec", help="also send the corpus to nginx+ModSecurity+CRS at this loopback URL")
    parser.add_argument("--libinjection", action="store_true", help="also measure the optional libinjection adapter")
    parser.add_argument("--cost-only", action="store_true",
                        help="only the cost table: no attack or false-positive runs (quick before/after timing)")
    args = parser.parse_args()
    rule = Engine(CLASSES, url_fields=["body.website", "body.links[*]"],
                  exclusions=[Exclusion("body.snippet", frozenset({"sqli"}))])
    if args.cost_only:
        print(cost_table(rule))
        return
    bare = Engine(CLASSES, url_fields=["body.website", "body.links[*]"])
    modsec = ModSec(args.modsec) if args.modsec else None
    lines = [f"### proxy.detect on benchmarks/corpus ({datetime.date.today().isoformat()})", "",
             f"Command: `{' '.join(['python'] + sys.argv)}`", ""]
    head = "| class | set | payloads | Bastion via query (any class) | own class | Bastion via JSON body |"
    rule_line = "|---|---|---:|---:|---:|---:|"
    if modsec:
        head += " CRS PL1 via query | CRS PL1 via JSON body |"
        rule_line += "---:|---:|"
    lines += [head, rule_line]
    sets = ("attacks",) if args.tuning_only else ("attacks", "attacks-heldout", "attacks-fresh", "attacks-fresh2",
                                                  "attacks-fresh3", "attacks-fresh4")
    for folder in sets:
        attacks = load_attacks(folder)
        crs = modsec_rates(modsec, attacks) if modsec else {}
        for cls, (n, any_q, own_q, any_j) in attack_rates(rule, attacks).items():
            mark = " **target**" if cls in TARGET else ""
            row = (f"| {cls}{mark} | {folder.replace('attacks-', '').replace('attacks', 'tuning')} | {n} | "
                   f"{any_q / n:.1%} | {own_q / n:.1%} | {any_j / n:.1%} |")
            if modsec:
                row += f" {crs[cls][0] / n:.1%} | {crs[cls][1] / n:.1%} |"
            lines.append(row)
    if not args.tuning_only:
        lines += fresh_by_source(rule) + fresh_by_source(rule, "attacks-fresh2")
        lines += request_rates(rule, modsec, "attacks-fresh3") + request_rates(rule, modsec, "attacks-fresh4")
    head = "| benign set | requests | Bastion false positives (rule) | without the snippet exclusion |"
    lines += ["", head + (" CRS PL1 false positives |" if modsec else ""),
              "|---|---:|---:|---:|" + ("---:|" if modsec else "")]
    for name in ("tuning",) if args.tuning_only else ("tuning", "heldout"):
        reqs = load_benign(name)
        hits, n = fp_rate(rule, reqs, args.show_fp if name == "tuning" else 0)
        bare_hits, _ = fp_rate(bare, reqs)
        row = f"| {name} | {n} | {hits} ({hits / n:.2%}) | {bare_hits} ({bare_hits / n:.2%}) |"
        if modsec:
            blocked = sum(modsec.benign(r) for r in reqs)
            row += f" {blocked} ({blocked / n:.2%}) |"
        lines.append(row)
    lines += ["", cost_table(rule)]
    if modsec:
        lines += ["", f"CRS answers other than 200/403 (not counted as blocks): {dict(modsec.other) or 'none'}."]
    if args.libinjection:
        lines += libinjection_lines(args.tuning_only)
    text = "\n".join(lines)
    print(text)
    if args.write:
        with args.write.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
