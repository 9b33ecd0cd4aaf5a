"""Builds benchmarks/corpus/attacks{,-heldout}/<class>.txt from public payload lists (see README.md).

Run once, before any tuning; the outputs are committed, so this only needs re-running to re-derive them:

    apt-get install -y wfuzz
    pip download --no-deps wapiti3==3.2.3 sqlmap==1.10.10 -d /tmp/dl
    (cd /tmp/dl && unzip -o -d w wapiti3-*.whl && unzip -o -d s sqlmap-*.whl)
    python benchmarks/corpus/build_corpus.py --wapiti /tmp/dl/w --sqlmap /tmp/dl/s

Every corpus line is a payload in URL form: what an attacker puts after `q=` in a query string (so `%0a`
is a newline and `+` a space once decoded, exactly as the lists publish them). Control characters that
the source writes as placeholders are percent-encoded so one payload stays one line.

Rules applied to every source, decided before any detector was written (and never changed after):
- strip the line ending, drop blank lines and exact duplicates (first occurrence wins, per class);
- drop probes with fewer than 4 non-whitespace characters (`'`, `;`, `ls`, `--`): they are
  metacharacter probes, not attacks, and no detector can tell them from text;
- drop lines longer than 4000 characters, and wapiti payloads that are only a remote URL (RFI) or
  that keep a placeholder we do not know how to fill;
- split: in each class, in source order, every 5th kept line (index % 5 == 4) goes to attacks-heldout/.
"""

from __future__ import annotations

import argparse
import configparser
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
WFUZZ = Path("/usr/share/wfuzz/wordlist/Injections")
_PLACEHOLDER = re.compile(r"\[[A-Z_0-9]+\]")


def _lines(path: Path) -> list[str]:
    return [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]


def wfuzz() -> dict[str, list[str]]:
    return {
        "sqli": _lines(WFUZZ / "SQL.txt"),
        "xss": _lines(WFUZZ / "XSS.txt"),
        "lfi": _lines(WFUZZ / "Traversal.txt"),
    }


_WAPITI_FILL = {
    "[TIME]": "6", "[LF]": "%0A", "[TAB]": "%09", "[FF]": "%0C", "[NULL]": "%00", "[SPACE]": "%20",
    "[VALUE]": "1", "[EXTERNAL_ENDPOINT]": "http://evil.example/", "__XSS__": "w4p1t1",
}


def wapiti(root: Path) -> dict[str, list[str]]:
    attacks = root / "wapitiCore" / "data" / "attacks"
    out: dict[str, list[str]] = {}
    for cls, name in (("xss", "xssPayloads.ini"), ("cmdi", "execPayloads.ini"),
                      ("lfi", "fileHandlingPayloads.ini"), ("sqli", "blindSQLPayloads.ini")):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(attacks / name, encoding="utf-8")
        payloads = []
        for section in parser.sections():
            raw = parser[section].get("payload", "None")
            if raw == "None":
                continue
            for key, value in _WAPITI_FILL.items():
                raw = raw.replace(key, value)
            if _PLACEHOLDER.search(raw) or (cls == "lfi" and raw.startswith("http://evil.example/")):
                continue
            payloads.append(raw)
        out[cls] = payloads
    return out


def sqlmap(root: Path, rng: random.Random) -> list[str]:
    """Instantiates sqlmap's test payloads in its `<origvalue><prefix> <payload><comment><suffix>` form."""
    xml = root / "sqlmap" / "data" / "xml"
    boundaries = [{c.tag: (c.text or "") for c in b} for b in ET.parse(xml / "boundaries.xml").getroot()]

    def fill(text: str) -> str:
        text = text.replace("0x[DELIMITER_START]", "0x716b6a7a71").replace("0x[DELIMITER_STOP]", "0x7176767071")
        text = text.replace("[DELIMITER_START]", "qkjzq").replace("[DELIMITER_STOP]", "qvvpq")
        text = text.replace("[GENERIC_SQL_COMMENT]", "-- -").replace("[SLEEPTIME]", "5")
        text = text.replace("[ORIGVALUE]", "1").replace("[DELAYED]", "5")
        text = re.sub(r"\[RANDNUM\d?\]", lambda _: str(rng.randint(1000, 9999)), text)
        text = re.sub(r"\[RANDSTR\d?\]", lambda _: "".join(rng.choice("abcdefghij") for _ in range(4)), text)
        return text

    out: list[str] = []
    for name in ("boolean_blind", "error_based", "inline_query", "stacked_queries", "time_blind", "union_query"):
        for test in ET.parse(xml / "payloads" / f"{name}.xml").getroot().findall("test"):
            request = test.find("request")
            if request is None:
                continue
            if name == "union_query":
                cols = rng.randint(1, 8)
                body = "UNION ALL SELECT " + ",".join(
                    "CONCAT(0x716b6a7a71,0x4a6b4c,0x7176767071)" if i == cols // 2 else "NULL" for i in range(cols))
            else:
                body = request.findtext("payload") or ""
            comment = request.findtext("comment") or ""
            clauses = set((test.findtext("clause") or "0").split(","))
            wheres = (test.findtext("where") or "1").split(",")
            fits = [b for b in boundaries if clauses & set(b.get("clause", "0").split(",")) or "0" in clauses]
            for boundary in rng.sample(fits, min(2, len(fits))):
                where = rng.choice(wheres)
                orig = {"1": "1", "2": "-" + str(rng.randint(1000, 9999))}.get(where, "")
                suffix = boundary.get("suffix", "")
                value = fill(f"{orig}{boundary.get('prefix', '')} {body}{comment}{' ' + suffix if suffix else ''}")
                if not _PLACEHOLDER.search(value):
                    out.append(value.replace("\n", "%0A"))
    return out


def traversal_scheme() -> list[str]:
    """The encodings × depths scheme of PayloadsAllTheThings `File Inclusion/Intruders/Traversal.txt`."""
    ups = ["../", "..%2f", "%2e%2e/", "%2e%2e%2f", "..%252f", "%252e%252e/", "%252e%252e%252f", "..\\", "..%255c",
           "..%5c", "%2e%2e\\", "%2e%2e%5c", "..%c0%af", "%c0%ae%c0%ae/", "%c0%ae%c0%ae%c0%af", "..%25c0%25af",
           "..%c1%9c", "..%%32%66", "%%32%65%%32%65/"]
    targets = ["/etc/passwd", "etc/passwd", "windows/win.ini", "boot.ini", "proc/self/environ"]
    return [up * depth + targets[(i + depth) % len(targets)] for i, up in enumerate(ups) for depth in (1, 3, 6)]


def patt() -> dict[str, list[str]]:
    src = HERE / "sources" / "patt"
    return {
        "cmdi": _lines(src / "cmdi_command-execution-unix.txt") + _lines(src / "cmdi_command_exec.txt"),
        "xss": _lines(src / "xss_payloads_quick.txt") + _lines(src / "xss_jhaddix_part.txt"),
        "sqli": _lines(src / "sqli_auth_bypass.txt"),
        "nosqli": _lines(src / "nosql.txt"),
        "crlf": _lines(src / "crlf.txt"),
        "ssti": _lines(src / "ssti.txt"),
        "lfi": traversal_scheme(),
    }


def keep(line: str) -> bool:
    return len("".join(line.split())) >= 4 and len(line) <= 4000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wapiti", type=Path, required=True, help="unzipped wapiti3 3.2.3 wheel")
    parser.add_argument("--sqlmap", type=Path, required=True, help="unzipped sqlmap 1.10.10 wheel")
    args = parser.parse_args()
    rng = random.Random(20261123)
    merged: dict[str, list[str]] = {}
    for source in (wfuzz(), wapiti(args.wapiti), patt(), {"sqli": sqlmap(args.sqlmap, rng)}):
        for cls, lines in source.items():
            merged.setdefault(cls, []).extend(lines)
    for cls, lines in sorted(merged.items()):
        kept = [line for line in dict.fromkeys(lines) if keep(line)]
        tuning = [line for i, line in enumerate(kept) if i % 5 != 4]
        heldout = [line for i, line in enumerate(kept) if i % 5 == 4]
        for folder, part in (("attacks", tuning), ("attacks-heldout", heldout)):
            (HERE / folder).mkdir(exist_ok=True)
            (HERE / folder / f"{cls}.txt").write_text("\n".join(part) + "\n", encoding="utf-8")
        print(f"{cls:7} sources {len(lines):5}  kept {len(kept):5}  tuning {len(tuning):5}  heldout {len(heldout):4}")


if __name__ == "__main__":
    main()
