"""Builds benchmarks/corpus/attacks-fresh3/<class>.txt, the third fresh held-out set (README.md, "Third fresh
held-out set"): payloads of real exploit requests, taken from projectdiscovery/nuclei-templates (MIT).

    python benchmarks/corpus/build_fresh3.py          # rewrites attacks-fresh3/*.txt
    python benchmarks/corpus/build_fresh3.py --check  # exits 1 if the committed files differ from a rebuild

Input: only the request parts transcribed into sources/fresh3/*.yaml (provenance, commits and the templates
looked at and not taken: sources/fresh3/SOURCES.md) and, for the novelty rule, attacks/, attacks-heldout/,
attacks-fresh/ and attacks-fresh2/. Nothing here imports or runs a detector. The output is deterministic.

Which templates (the pool was fixed before any template was read; SOURCES.md says when each amendment below
was made - all before the first build, none after looking at a built line):
- (a) the first 100 paths the search index lists under http/vulnerabilities/ (it serves 100, in path order),
  (b) the first 100 under http/vulnerabilities/other/, (c) all 12 under http/vulnerabilities/joomla/ - of these,
  the templates whose file name holds a class word: `sqli`/`sqlinj`/`sql-injection`, `xss`, `lfi`/`traversal`/
  `file-read`/`fileread`/`file-download`/`fileinclude`, `rce`/`cmd`/`command`/`exec` (not `log4j`);
  (d)-(h) every path the index lists under http/cves/2024/, 2023/, 2022/, 2021/ and 2020/ (66, 44, 36, 58 and 61
  paths as served), whatever its name; a year is used whole, years taken newest first, stopped after 2020 for
  time. Not http/vulnerabilities/generic/ (fuzzing probes, not exploits) nor the DAST templates attacks-fresh2/
  used.
- class, by `classification: cwe-id`: CWE-89 sqli; CWE-79/CWE-80 xss; CWE-22/CWE-23/CWE-35/CWE-98 lfi;
  CWE-77/CWE-78 cmdi. A template whose CWEs name none of these falls back to its `tags:` (sqli; xss; lfi or
  traversal; cmdi or command-injection). One class or the template is not taken; a `log4j` or `jndi` tag or
  name also means not taken (JNDI lookups, not OS command injection). Only HTTP templates.
- a template whose `payloads:` hold more than 5 values is a fuzz list and not taken; a smaller one is
  expanded, every value in order (several variables paired by index).

Which part of a request is the payload line (applied to every request of the template, or - for a multi-step
template, marked `multi-step` in the transcription with its reason: flow:, cookie-reuse, req-condition,
matchers on numbered parts, an internal extractor feeding a later request - only to its LAST request):
- a request that carries the user-supplied credentials `{{username}}`/`{{password}}` is a login step: nothing;
- a request whose body is multipart, XML or another non-form, non-JSON type: nothing;
- the target after the host: its query string when the path is plain (letters, digits, `/_.~-`, no `..`),
  otherwise the whole target (path and query) - the payload is in the path;
- and, as a second line, the body when it is urlencoded, JSON or untyped;
- nuclei placeholders: {{BaseURL}}/{{RootURL}} at the start of a path are dropped, {{interactsh-url}} becomes
  OAST_HOST, the template's own `variables:` are substituted, `rand_int(..)` expressions become RAND_INT, other
  `rand_*` expressions and bare runtime names (extractor results such as a nonce) become RAND_STR; a line still
  holding a `{{..(..)}}` helper expression (base64, repeat, ...) is dropped;
- a line made only of letters, digits and `= & _ . -` carries no payload (a parameter list or reflection
  probe) and is dropped.
Then the rules of build_fresh.py (imported): drop blanks, lines with fewer than 4 non-whitespace characters or
over 4,000 characters, percent-encode control characters other than TAB, drop duplicates within a class (first
occurrence wins, templates in pool order: (a), (b), (c), (d), each in path order) and every line already in
attacks/, attacks-heldout/, attacks-fresh/ or attacks-fresh2/ for the same class. No split: all held out.
attacks-fresh3/provenance.tsv names the template of every line.
"""

from __future__ import annotations

import re
import sys
from itertools import product

import yaml
from build_fresh import HERE, build_loaded, cli

SRC = HERE / "sources" / "fresh3"
OUT = HERE / "attacks-fresh3"
OLDER = ("attacks", "attacks-heldout", "attacks-fresh", "attacks-fresh2")
FILES = ("sqli.yaml", "xss.yaml", "lfi.yaml", "cmdi.yaml", "cves-2024.yaml", "cves-2023.yaml", "cves-2022.yaml",
         "cves-2021.yaml", "cves-2020.yaml")
OAST_HOST = "oast.example"
RAND_INT = "1234"
RAND_STR = "abc123"
MAX_PAYLOADS = 5

CWE_CLASS = {"89": "sqli", "79": "xss", "80": "xss", "22": "lfi", "23": "lfi", "35": "lfi", "98": "lfi",
             "77": "cmdi", "78": "cmdi"}
TAG_CLASS = {"sqli": "sqli", "xss": "xss", "lfi": "lfi", "traversal": "lfi", "cmdi": "cmdi",
             "command-injection": "cmdi"}
POOLS = ("http/vulnerabilities/other/", "http/vulnerabilities/joomla/", "http/cves/2024/", "http/cves/2023/",
         "http/cves/2022/", "http/cves/2021/", "http/cves/2020/")
_EXPR = re.compile(r"\{\{([^{}]*)\}\}")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*")
_PROBE = re.compile(r"[A-Za-z0-9=&_.-]*")
_CREDENTIALS = ("{{username}}", "{{password}}")


def classify(entry: dict) -> str | None:
    """The template's class by its CWE ids, else by its tags; None unless exactly one class."""
    tags = [t.strip().lower() for t in str(entry.get("tags", "")).split(",")]
    if any("log4j" in t or "jndi" in t for t in tags) or "log4j" in entry["template"]:
        return None
    by_cwe = {CWE_CLASS[n] for n in re.findall(r"CWE-(\d+)", str(entry.get("cwe-id", ""))) if n in CWE_CLASS}
    found = by_cwe or {TAG_CLASS[t] for t in tags if t in TAG_CLASS}
    return found.pop() if len(found) == 1 else None


def pool_key(path: str) -> tuple[int, str]:
    """Pool order: (a) the other http/vulnerabilities/ paths, (b) other/, (c) joomla/, (d) cves/2024/; path order."""
    return next((i + 1 for i, prefix in enumerate(POOLS) if path.startswith(prefix)), 0), path


def requests(entry: dict) -> list[tuple[str, dict[str, str], str, dict]]:
    """(target, headers, body, payloads) of every request, in order."""
    out = []
    for block in (entry.get("http") or []) + (entry.get("requests") or []):
        payloads = block.get("payloads") or {}
        for raw in block.get("raw") or []:
            lines = raw.split("\n")
            while lines and lines[0].startswith("@"):
                lines.pop(0)
            parts = lines[0].split()
            target = " ".join(parts[1:-1] if parts[-1].startswith("HTTP/") else parts[1:])
            blank = lines.index("") if "" in lines else len(lines)
            headers = dict(h.split(":", 1) for h in lines[1:blank] if ":" in h)
            headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
            out.append((target, headers, "\n".join(lines[blank + 1:]).strip(), payloads))
        for path in block.get("path") or []:
            headers = {str(k).lower(): str(v) for k, v in (block.get("headers") or {}).items()}
            out.append((path, headers, str(block.get("body") or "").strip(), payloads))
    return out


def expand(text: str, payloads: dict) -> list[str]:
    """One text per payload combination: a single variable value by value, several paired by index."""
    names = [n for n in payloads if "{{" + n + "}}" in text]
    if not names:
        return [text]
    columns = [[str(v) for v in payloads[n]] for n in names]
    rows = zip(*columns, strict=False) if len(names) > 1 else product(*columns)
    out = []
    for row in rows:
        filled = text
        for name, value in zip(names, row, strict=True):
            filled = filled.replace("{{" + name + "}}", value)
        out.append(filled)
    return out


def substitute(text: str, variables: dict[str, str]) -> str | None:
    """Fills nuclei placeholders; None if a helper expression is left that has no fixed stand-in."""
    def fill(match: re.Match) -> str:
        expr = match.group(1).strip()
        if expr == "interactsh-url":
            return OAST_HOST
        if expr in variables:
            return variables[expr]
        if "rand_int" in expr:
            return RAND_INT
        if "rand" in expr or re.fullmatch(r"[A-Za-z_][\w-]*", expr):
            return RAND_STR
        return match.group()
    for _ in range(3):  # variables may name other variables
        text = _EXPR.sub(fill, text)
    return None if _EXPR.search(text) else text


def template_lines(entry: dict) -> list[str]:
    """The payload lines of one template (rules in the module docstring), before build_fresh's rules."""
    blocks = (entry.get("http") or []) + (entry.get("requests") or [])
    if sum(len(v) for block in blocks for v in (block.get("payloads") or {}).values()) > MAX_PAYLOADS:
        return []
    reqs = requests(entry)
    if entry.get("multi-step"):
        reqs = reqs[-1:]
    variables: dict[str, str] = {}
    for name, value in (entry.get("variables") or {}).items():
        variables[str(name)] = "{{" + str(name) + "}}"  # a variable naming itself (username) stays a credential
        filled = substitute(str(value), variables) if str(value) != "{{" + str(name) + "}}" else None
        if filled is not None:
            variables[str(name)] = filled
    out = []
    for target, headers, body, payloads in reqs:
        if any(c in target or c in body for c in _CREDENTIALS):
            continue
        kind = headers.get("content-type", "").lower()
        if body and kind and "x-www-form-urlencoded" not in kind and "json" not in kind:
            continue
        for prefix in ("{{BaseURL}}", "{{RootURL}}"):
            target = target.removeprefix(prefix)
        candidates = []
        for each in expand(target, payloads):
            path, _, query = each.partition("?")
            plain = _PLAIN_PATH.fullmatch(substitute(path, variables) or path) and ".." not in path
            candidates.append(query if plain else each)
        candidates += expand(body, payloads) if body else []
        for text in candidates:
            line = substitute(text, variables)
            if line and not _PROBE.fullmatch(line):
                out.append(line)
    return out


def load() -> tuple[tuple[tuple[str, str, str], ...], dict[str, list[str]]]:
    """The sources for build(): (class, template path, "nuclei") in pool order, and each template's lines."""
    entries = [e for name in FILES for e in yaml.safe_load((SRC / name).read_text(encoding="utf-8"))]
    entries.sort(key=lambda e: pool_key(e["template"]))
    sources, lines = [], {}
    for entry in entries:
        cls = classify(entry)
        if cls is None:
            raise ValueError(f"{entry['template']}: transcribed but of no class")
        sources.append((cls, entry["template"], "nuclei"))
        lines[entry["template"]] = template_lines(entry)
    return tuple(sources), lines


def main() -> int:
    return cli(__doc__, OUT, lambda: build_loaded(*load(), OLDER), label="fresh3")


if __name__ == "__main__":
    sys.exit(main())
