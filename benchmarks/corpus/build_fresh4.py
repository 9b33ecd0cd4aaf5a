"""Builds benchmarks/corpus/attacks-fresh4/<class>.txt, the fourth fresh held-out set (README.md, "Fourth fresh
held-out set"): the request payloads of the OWASP Core Rule Set's own regression tests (coreruleset/coreruleset,
Apache-2.0).

    python benchmarks/corpus/build_fresh4.py          # rewrites attacks-fresh4/*.txt
    python benchmarks/corpus/build_fresh4.py --check  # exits 1 if the committed files differ from a rebuild

Input: only the request parts transcribed into sources/fresh4/*.yaml (provenance, commits, and the files and tests
looked at and not taken: sources/fresh4/SOURCES.md) and, for the novelty rule, attacks/, attacks-heldout/,
attacks-fresh/, attacks-fresh2/ and attacks-fresh3/. Nothing here imports or runs a detector. Deterministic.

These payloads were written by the CRS authors to make a CRS rule fire: a comparison with CRS on this set
favours CRS by construction.

Which files (fixed from the search index's folder listings, before any test file was read; SOURCES.md dates it):
- lfi: every file the index lists under tests/regression/tests/REQUEST-930-APPLICATION-ATTACK-LFI/ (6);
- sqli: the first 12 files it lists under .../REQUEST-942-APPLICATION-ATTACK-SQLI/, in path order (942100 to
  942170);
- xss: the first 12 under .../REQUEST-941-APPLICATION-ATTACK-XSS/, in path order (941100 to 941190);
- cmdi: the files under .../REQUEST-932-APPLICATION-ATTACK-RCE/ whose rule id is in 932100-932200 and whose rule
  CRS names as Unix/Windows command injection or execution (Unix/Windows command injection, PowerShell command or
  alias, Unix/Windows shell expression, Windows FOR/IF, direct Unix command execution, Unix shell code, Unix shell
  alias, wildcard bypass, RCE bypass technique): 932100 (and 932100-htmlentities), 932101, 932105, 932106,
  932110, 932115, 932120, 932125, 932130, 932131, 932140, 932150, 932151, 932152, 932160, 932161, 932175, 932190,
  932200. Not 932170/932171 (Shellshock) nor 932180 (restricted file upload), by the rules' names.
- of each file, only the tests complete within the first page the search tool serves (16,000 characters); the
  class is the file's rule group, never the payload's.

Which tests: the positive ones - those whose expected output says the file's rule id is logged (`log:
expect_ids` holding it, or `log_contains: id "<rule>"`). `no_expect_ids`/`no_log_contains` tests and tests that
only match a log regex are not taken.

Which part of a positive test's request is the payload line (the rule of build_fresh3.py):
- the target `uri` (`/` when the test gives none): its query string when the path is plain (letters, digits,
  `/_.~-`, no `..`), otherwise the whole target - the payload is in the path; `%xx` escapes kept as written;
- and, as a second line, the body (`data`, surrounding white space stripped) when it is urlencoded, JSON or
  untyped; a request whose body has another Content-Type (XML) gives nothing;
- a payload only in a header or cookie gives nothing (the transcription names such headers, values not copied);
- a line made only of letters, digits and `= & _ . -` carries no payload and is dropped (build_fresh3.py).
Then the rules of build_fresh.py (imported): drop blanks, lines with fewer than 4 non-whitespace characters or over
4,000 characters, percent-encode control characters other than TAB, drop duplicates within a class (first
occurrence wins: files in path order, tests in file order) and every line already in attacks/, attacks-heldout/,
attacks-fresh/, attacks-fresh2/ or attacks-fresh3/ for the same class. No split: all held out.
attacks-fresh4/provenance.tsv names, for every line, the test file, the rule id and the test:
`<file>#rule=<id>;test=<test id or title>`.
"""

from __future__ import annotations

import re
import sys

import yaml
from build_fresh import HERE, build_loaded, cli
from build_fresh3 import _PLAIN_PATH, _PROBE

SRC = HERE / "sources" / "fresh4"
OUT = HERE / "attacks-fresh4"
OLDER = ("attacks", "attacks-heldout", "attacks-fresh", "attacks-fresh2", "attacks-fresh3")
FILES = {"sqli": "sqli.yaml", "xss": "xss.yaml", "lfi": "lfi.yaml", "cmdi": "cmdi.yaml"}
_LOGGED_ID = re.compile(r'id\s*"(\d+)"')


def positive(output: dict, rule: int) -> bool:
    """True when the expected output says `rule` is logged (go-ftw `log.expect_ids` or the older `log_contains`)."""
    expect = (output.get("log") or {}).get("expect_ids") or []
    logged = _LOGGED_ID.findall(str(output.get("log_contains") or ""))
    return rule in expect or str(rule) in logged


def test_lines(test: dict) -> list[str]:
    """The payload lines of one positive test's request (rules in the module docstring), before build_fresh's."""
    body = str(test.get("data") or "").strip()
    kind = str(test.get("content_type") or "").lower()
    if body and kind and "x-www-form-urlencoded" not in kind and "json" not in kind:
        return []
    uri = str(test.get("uri") or "/")
    path, _, query = uri.partition("?")
    target = query if _PLAIN_PATH.fullmatch(path) and ".." not in path else uri
    return [line for line in (target, body) if line and not _PROBE.fullmatch(line)]


def load() -> tuple[tuple[tuple[str, str, str], ...], dict[str, list[str]]]:
    """The sources for build(): (class, "<file>#rule=..;test=..", "crs-test") per positive test, and its lines."""
    sources, lines = [], {}
    for cls, name in FILES.items():
        entries = yaml.safe_load((SRC / name).read_text(encoding="utf-8"))
        for entry in sorted(entries, key=lambda e: e["file"]):
            for test in entry["tests"]:
                if not positive(test["output"], entry["rule"]):
                    continue
                rel = f"{entry['file']}#rule={entry['rule']};test={test['id']}"
                sources.append((cls, rel, "crs-test"))
                lines[rel] = test_lines(test)
    return tuple(sources), lines


def main() -> int:
    return cli(__doc__, OUT, lambda: build_loaded(*load(), OLDER), label="fresh4")


if __name__ == "__main__":
    sys.exit(main())
