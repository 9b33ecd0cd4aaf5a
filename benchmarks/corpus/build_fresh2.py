"""Builds benchmarks/corpus/attacks-fresh2/<class>.txt, the second fresh held-out set (README.md, "Second fresh
held-out set").

    python benchmarks/corpus/build_fresh2.py          # rewrites attacks-fresh2/*.txt
    python benchmarks/corpus/build_fresh2.py --check  # exits 1 if the committed files differ from a rebuild

Input: only the transcribed public lists in sources/fresh2/ (provenance in sources/fresh2/SOURCES.md) and, for
the novelty rule, attacks/, attacks-heldout/ and attacks-fresh/. Nothing here imports or runs a detector. The
sources were chosen file by file before any detector saw a line of them; the output is deterministic.

Rules: those of build_fresh.py (whole files or the complete lines of a file's first 8,000 characters; strip the
line ending only; drop `#` lines in the files marked COMMENTED; drop blanks, probes with fewer than 4
non-whitespace characters and lines over 4,000 characters; percent-encode control characters other than TAB;
drop duplicates within a class, first occurrence wins), with two more ways of reading a file and a wider
novelty rule:
- `time-template` (fuzzdb's sql-injection/detect lists): `__TIME__` is filled with SLEEP (5 seconds, the
  sleep time build_corpus.py gives sqlmap);
- `yaml` (scanner templates: projectdiscovery/nuclei-templates DAST templates, jaeles-project fuzz
  signatures): the payloads are every string of the template's `payloads:` - at the top level (jaeles) and in
  every request under `http:`/`requests:` (nuclei) - in file order, nested low/medium/high lists flattened in
  order; a nuclei template's own `variables:` are substituted for `{{name}}`, then `{{interactsh-url}}` (the
  out-of-band host) becomes OAST_HOST and `[SLEEPTIME]` becomes SLEEP; anything else stays as published;
- novelty: a line is dropped if it already appears, for the same class, in attacks/, attacks-heldout/ or
  attacks-fresh/ (compared after stripping surrounding whitespace).
No split: every kept line is held out. attacks-fresh2/provenance.tsv names the source file of every line.
"""

from __future__ import annotations

import re
import sys

import yaml
from build_fresh import HERE, _lines, build, cli, read_source

SRC = HERE / "sources" / "fresh2"
OUT = HERE / "attacks-fresh2"
OLDER = ("attacks", "attacks-heldout", "attacks-fresh")
SLEEP = "5"
OAST_HOST = "oast.example"

# (class, file under sources/fresh2/, how to read it) - in this order; the order decides which duplicate wins.
SOURCES: tuple[tuple[str, str, str], ...] = (
    # SQL injection: fuzzdb's attack/sql-injection/detect/ lists (not GenericBlind.txt, a subset of
    # generic-blind.txt), three SecLists Fuzzing/Databases|SQLi lists, one nuclei DAST template.
    ("sqli", "fuzzdb-sqli/xplatform.txt", "lines"),
    ("sqli", "fuzzdb-sqli/generic-blind.txt", "time-template"),
    ("sqli", "fuzzdb-sqli/MSSQL.txt", "lines"),
    ("sqli", "fuzzdb-sqli/MSSQL_blind.fuzz.txt", "lines"),
    ("sqli", "fuzzdb-sqli/MySQL.txt", "lines"),
    ("sqli", "fuzzdb-sqli/MySQL_MSSQL.txt", "lines"),
    ("sqli", "fuzzdb-sqli/oracle.txt", "lines"),
    ("sqli", "seclists-sqli/quick-SQLi.txt", "lines"),
    ("sqli", "seclists-sqli/sqli.auth.bypass.txt", "lines"),
    ("sqli", "seclists-sqli/safe-SQLi-payloads.txt", "lines"),
    ("sqli", "nuclei/time-based-sqli.yaml", "yaml"),
    # XSS: SecLists Fuzzing/XSS/robot-friendly/ lists and fuzzdb's jhaddix-xss-tests.txt.
    ("xss", "seclists-xss/XSS-Somdev.txt", "lines"),
    ("xss", "seclists-xss/XSS-OFJAAAH.first8000.txt", "lines"),
    ("xss", "seclists-xss/XSS-Cheat-Sheet-PortSwigger.first8000.txt", "lines"),
    ("xss", "seclists-xss/xss-without-parentheses-semi-colons-portswigger.txt", "lines"),
    ("xss", "seclists-xss/XSS-BruteLogic.txt", "lines"),
    ("xss", "fuzzdb-xss/jhaddix-xss-tests.first8000.txt", "lines"),
    # Path traversal / LFI: SecLists' LFISuite list and three nuclei DAST templates.
    ("lfi", "seclists-lfi/LFI-LFISuite-pathtotest.first8000.txt", "lines"),
    ("lfi", "nuclei/linux-lfi-fuzz.yaml", "yaml"),
    ("lfi", "nuclei/windows-lfi-fuzz.yaml", "yaml"),
    ("lfi", "nuclei/lfi-keyed.yaml", "yaml"),
    # OS command injection: four nuclei DAST templates and two jaeles fuzz signatures (the only new, licensed
    # command-injection lists found; SOURCES.md lists what was looked at).
    ("cmdi", "nuclei/unix-command-injection.yaml", "yaml"),
    ("cmdi", "nuclei/windows-command-injection.yaml", "yaml"),
    ("cmdi", "nuclei/cmdi-time-based-blind.yaml", "yaml"),
    ("cmdi", "nuclei/blind-oast-polyglots.yaml", "yaml"),
    ("cmdi", "jaeles/OS_command_injection.yaml", "yaml"),
    ("cmdi", "jaeles/ci-base.yaml", "yaml"),
)

COMMENTED = frozenset({"seclists-sqli/safe-SQLi-payloads.txt"})
_VARIABLE = re.compile(r"\{\{([A-Za-z0-9_-]+)\}\}")


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def template_payloads(rel: str) -> list[str]:
    doc = yaml.safe_load((SRC / rel).read_text(encoding="utf-8"))
    variables = doc.get("variables")
    fills = {"interactsh-url": OAST_HOST}
    if isinstance(variables, dict):  # nuclei; a jaeles `variables:` is a list of header names, not used here
        fills.update({str(k): str(v) for k, v in variables.items()})

    def fill(payload: str) -> str:
        for _ in range(3):  # variables may name other variables (marker: "{{interactsh-url}}")
            payload = _VARIABLE.sub(lambda m: fills.get(m.group(1), m.group()), payload)
        return payload.replace("[SLEEPTIME]", SLEEP)

    requests = (doc.get("http") or []) + (doc.get("requests") or [])
    found = _strings(doc.get("payloads") or []) + [p for req in requests for p in _strings(req.get("payloads") or [])]
    return [fill(p) for p in found]


def read(rel: str, kind: str) -> list[str]:
    if kind == "yaml":
        return template_payloads(rel)
    if kind == "time-template":
        return [line.replace("__TIME__", SLEEP) for line in _lines(rel, SRC, COMMENTED)]
    return read_source(rel, kind, SRC, COMMENTED)


def main() -> int:
    return cli(__doc__, OUT, lambda: build(SOURCES, read, OLDER), label="fresh2")


if __name__ == "__main__":
    sys.exit(main())
