"""Builds benchmarks/corpus/attacks-fresh/<class>.txt, the fresh held-out set (see README.md, "Fresh held-out set").

    python benchmarks/corpus/build_fresh.py          # rewrites attacks-fresh/*.txt
    python benchmarks/corpus/build_fresh.py --check  # exits 1 if the committed files differ from a rebuild

Input: only the transcribed public lists in sources/fresh/ (provenance in sources/fresh/SOURCES.md) and,
for the novelty rule, the existing attacks/ and attacks-heldout/ files. Nothing here imports or runs a
detector. Selection is by source file and by the fixed rules below, all decided before anyone looked at
a detector's output on these lines; the output is deterministic (no randomness, fixed source order).

Rules (the ones of build_corpus.py, plus the novelty rule):
- every file is taken whole, or - for files longer than 8,000 characters - as the complete lines within
  its first 8,000 characters (the transcribed file *is* that slice: `*.first8000.txt`);
- split on line feeds, strip the line ending (CR/LF only; other leading/trailing spaces are part of the
  payload, e.g. MySQL's `-- ` comment);
- drop list comments (lines starting with `#`) in the files marked `COMMENTED` - fuzzdb-style files
  whose `#` lines are prose or section headings, never payloads;
- fill templates: `{FILE}` (PayloadsAllTheThings traversal templates) with TARGETS[i % 5] and `{cmd}`
  (fuzzdb command-injection templates) with two of fuzzdb's own useful-commands-unix.txt, the i-th
  template getting commands i % 10 and (i + 5) % 10 (i = the line's index in its file);
- drop blank lines, probes with fewer than 4 non-whitespace characters, and lines over 4,000 characters;
- percent-encode control characters other than TAB (none occur today) so one payload stays one line;
- drop duplicates within a class (first occurrence wins) and every line that already appears, for the
  same class, in attacks/ or attacks-heldout/ - both compared after stripping surrounding whitespace.
No split: every kept line is held out. attacks-fresh/provenance.tsv names the source file of every line
(class, 1-based line number, file), so a rate can also be reported per source.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "sources" / "fresh"
OUT = HERE / "attacks-fresh"
CLASSES = ("sqli", "xss", "lfi", "cmdi")

TARGETS = ("etc/passwd", "windows/win.ini", "etc/hosts", "boot.ini", "proc/self/environ")

# (class, file under sources/fresh/, how to read it) - in this order; the order decides which duplicate wins.
SOURCES: tuple[tuple[str, str, str], ...] = (
    # SQL injection: every file of PayloadsAllTheThings "SQL Injection/Intruder/" except Auth_Bypass.txt
    # (used by build_corpus.py) and SQL-Injection (a Flask example, not a payload list).
    ("sqli", "patt-sqli/Auth_Bypass2.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_MSSQL-WHERE_Time.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_MSSQL.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_MSSQL_Enumeration.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_MYSQL.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_MySQL-WHERE_Time.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_MySQL_ReadLocalFiles.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_Oracle.txt", "lines"),
    ("sqli", "patt-sqli/FUZZDB_Postgres_Enumeration.txt", "lines"),
    ("sqli", "patt-sqli/Generic_ErrorBased.txt", "lines"),
    ("sqli", "patt-sqli/Generic_Fuzz.txt", "lines"),
    ("sqli", "patt-sqli/Generic_TimeBased.txt", "lines"),
    ("sqli", "patt-sqli/Generic_UnionSelect.first8000.txt", "lines"),
    ("sqli", "patt-sqli/SQLi_Polyglots.txt", "lines"),
    ("sqli", "patt-sqli/payloads-sql-blind-MSSQL-INSERT", "lines"),
    ("sqli", "patt-sqli/payloads-sql-blind-MSSQL-WHERE", "lines"),
    ("sqli", "patt-sqli/payloads-sql-blind-MySQL-INSERT", "lines"),
    ("sqli", "patt-sqli/payloads-sql-blind-MySQL-ORDER_BY", "lines"),
    ("sqli", "patt-sqli/payloads-sql-blind-MySQL-WHERE", "lines"),
    # XSS: PayloadsAllTheThings "XSS Injection/Intruders/" payload files not used by build_corpus.py
    # (exclusions and why: README.md).
    ("xss", "patt-xss/BRUTELOGIC-XSS-JS.txt", "lines"),
    ("xss", "patt-xss/BRUTELOGIC-XSS-STRINGS.txt", "lines"),
    ("xss", "patt-xss/IntrudersXSS.first8000.txt", "lines"),
    ("xss", "patt-xss/RSNAKE_XSS.txt", "lines"),
    ("xss", "patt-xss/XSS_Polyglots.txt", "lines"),
    ("xss", "patt-xss/jsonp_endpoint.txt", "lines"),
    ("xss", "patt-xss/xss_alert.first8000.txt", "lines"),
    ("xss", "patt-xss/xss_swf_fuzz.txt", "lines"),
    # Path traversal / LFI: PayloadsAllTheThings "Directory Traversal/Intruder/" (all four files) and the
    # payload (not file-name) list of "File Inclusion/Intruders/".
    ("lfi", "patt-lfi/deep_traversal.first8000.txt", "file-template"),
    ("lfi", "patt-lfi/directory_traversal.first8000.txt", "lines"),
    ("lfi", "patt-lfi/dotdotpwn.first8000.txt", "lines"),
    ("lfi", "patt-lfi/traversals-8-deep-exotic-encoding.first8000.txt", "file-template"),
    ("lfi", "patt-lfi/JHADDIX_LFI.first8000.txt", "lines"),
    # OS command injection: SecLists' commix-generated list and fuzzdb's injection lists/templates
    # (both PayloadsAllTheThings command-injection files are already used by build_corpus.py).
    ("cmdi", "seclists/COMMIX-INJECT-HERE.first8000.txt", "lines"),
    ("cmdi", "fuzzdb/command-injection-template.txt", "cmd-template"),
    ("cmdi", "fuzzdb/template-command-injection.txt", "cmd-template"),
    ("cmdi", "fuzzdb/command-injections-windows.txt", "lines"),
)

COMMENTED = {
    "patt-sqli/FUZZDB_MSSQL.txt", "patt-sqli/FUZZDB_MSSQL_Enumeration.txt", "patt-sqli/FUZZDB_MySQL_ReadLocalFiles.txt",
    "patt-sqli/FUZZDB_Oracle.txt", "patt-sqli/FUZZDB_Postgres_Enumeration.txt", "patt-sqli/Generic_TimeBased.txt",
    "patt-xss/jsonp_endpoint.txt",
}
COMMANDS_FILE = "fuzzdb/useful-commands-unix.txt"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _lines(rel: str, src: Path = SRC, commented: frozenset[str] | set[str] = COMMENTED) -> list[str]:
    text = (src / rel).read_text(encoding="utf-8")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if rel in commented:
        lines = [line for line in lines if not line.startswith("#")]
    return lines


def read_source(rel: str, kind: str, src: Path = SRC, commented: frozenset[str] | set[str] = COMMENTED) -> list[str]:
    lines = _lines(rel, src, commented)
    if kind == "lines":
        return lines
    if kind == "file-template":
        return [line.replace("{FILE}", TARGETS[i % len(TARGETS)]) for i, line in enumerate(lines)]
    if kind == "cmd-template":
        cmds = _lines(COMMANDS_FILE)
        n = len(cmds)
        return [line.replace("{cmd}", cmds[j]) for i, line in enumerate(lines) for j in (i % n, (i + n // 2) % n)]
    raise ValueError(kind)


def keep(line: str) -> bool:
    return len("".join(line.split())) >= 4 and len(line) <= 4000


def url_form(line: str) -> str:
    return _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", line)


OLDER = ("attacks", "attacks-heldout")


def existing(cls: str, folders: tuple[str, ...] = OLDER) -> set[str]:
    seen: set[str] = set()
    for folder in folders:
        path = HERE / folder / f"{cls}.txt"
        if path.exists():
            seen.update(line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip())
    return seen


Stats = list[tuple[str, str, int, int, int]]


def build(sources: tuple[tuple[str, str, str], ...] = SOURCES, reader=read_source,
          older: tuple[str, ...] = OLDER) -> tuple[dict[str, list[str]], dict[str, list[str]], Stats]:
    """Applies the rules to `sources`, read with `reader(rel, kind)`; novelty against the `older` folders."""
    out: dict[str, list[str]] = {cls: [] for cls in CLASSES}
    origin: dict[str, list[str]] = {cls: [] for cls in CLASSES}
    seen = {cls: existing(cls, older) for cls in CLASSES}
    old = {cls: set(seen[cls]) for cls in CLASSES}
    stats = []
    for cls, rel, kind in sources:
        raw = reader(rel, kind)
        kept = dup_old = 0
        for line in raw:
            if not keep(line):
                continue
            line = url_form(line)
            key = line.strip()
            if key in seen[cls]:
                dup_old += key in old[cls]
                continue
            seen[cls].add(key)
            out[cls].append(line)
            origin[cls].append(rel)
            kept += 1
        stats.append((cls, rel, len(raw), kept, dup_old))
    return out, origin, stats


def write_or_check(out: dict[str, list[str]], origin: dict[str, list[str]], stats: Stats, out_dir: Path,
                   check: bool, label: str = "fresh") -> int:
    """Prints the per-source table, then writes `out_dir` (or, with `check`, compares it); 1 if it differs."""
    for cls, rel, raw, kept, dup_old in stats:
        print(f"{cls:5} {rel:55} lines {raw:4}  kept {kept:4}  already in attacks*/ {dup_old:4}")
    files = {f"{cls}.txt": "\n".join(out[cls]) + "\n" for cls in CLASSES}
    files["provenance.tsv"] = "class\tline\tsource\n" + "".join(
        f"{cls}\t{i}\t{rel}\n" for cls in CLASSES for i, rel in enumerate(origin[cls], 1))
    differs = False
    for name, text in files.items():
        path = out_dir / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} differs from a rebuild", file=sys.stderr)
                differs = True
        else:
            out_dir.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for cls in CLASSES:
        print(f"{cls:5} {label} {len(out[cls]):5}")
    return 1 if differs else 0


def build_loaded(sources: tuple[tuple[str, str, str], ...], lines: dict[str, list[str]],
                 older: tuple[str, ...]) -> tuple[dict[str, list[str]], dict[str, list[str]], Stats]:
    """`build` over lines already read per source (the template sets: fresh3, fresh4)."""
    return build(sources, lambda rel, kind: lines[rel], older)


def cli(doc: str, out_dir: Path, built: Callable[[], tuple[dict[str, list[str]], dict[str, list[str]], Stats]],
        label: str = "fresh") -> int:
    """Every builder's command line: build (after parsing, so `--help` builds nothing), then write or `--check`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true", help=f"compare with {out_dir.name}/ instead of writing")
    args = parser.parse_args()
    return write_or_check(*built(), out_dir, args.check, label=label)


def main() -> int:
    return cli(__doc__, OUT, build)


if __name__ == "__main__":
    sys.exit(main())
