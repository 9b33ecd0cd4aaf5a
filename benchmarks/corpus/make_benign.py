"""Generates benchmarks/corpus/benign/*.jsonl: realistic API requests that must pass (seeded, reproducible).

    /tmp/probe/bin/python benchmarks/corpus/make_benign.py

Why generated and not captured: no public capture of JSON API traffic with free text exists under a clear
licence, and captured traffic would hold personal data. The text inside is real, though: paragraphs of
CPython's own docstrings (PSF licence: prose full of "select", "union", "from", "where", quotes, code and
`>>>` examples) and the Markdown/reST long descriptions of the Python packages installed in the venv
(their README files: code blocks, shell commands, URLs, relative links). Around that, templates write
the hard cases by hand: names with apostrophes, sentences that say "drop table" or "1=1", rich-text HTML,
search queries with operators, browser and tool User-Agents, cookies, file names and relative paths.

One request per line: {"id", "kind", "method", "path", "query", "headers", "cookies", "json" | "form"}.
Every 5th request (index % 5 == 4) is written to benign/heldout.jsonl, the rest to benign/tuning.jsonl.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import random
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
from benign_text import (
    CITIES,
    CODE_SNIPPETS,
    HTML_SNIPPETS,
    NAMES,
    SEARCHES,
    SENTENCES,
    SHELL_SNIPPETS,
    SQL_SNIPPETS,
    USER_AGENTS,
    WORDS,
)

HERE = Path(__file__).resolve().parent
STDLIB = ["json", "re", "os", "subprocess", "sqlite3", "html", "urllib.parse", "http.cookies", "email.message",
          "collections", "itertools", "functools", "pathlib", "shutil", "string", "textwrap", "datetime",
          "argparse", "logging", "csv", "unittest", "typing", "asyncio", "decimal", "statistics", "glob",
          "tempfile", "zipfile", "tarfile", "xml.etree.ElementTree", "urllib.request", "socket", "ssl",
          "hashlib", "secrets", "base64", "difflib", "pprint", "inspect", "dataclasses", "enum", "heapq"]
PACKAGES = ["aiohttp", "pydantic", "hypothesis", "pytest", "attrs", "multidict", "yarl", "orjson", "redis",
            "PyJWT", "anyio", "packaging", "pygments", "cryptography", "prometheus_client", "watchfiles",
            "python-json-logger", "PyYAML", "uvloop", "psutil", "idna", "frozenlist", "pluggy", "typing_extensions"]


def paragraphs() -> list[str]:
    """Docstring and README paragraphs of 40-1500 characters."""
    out: list[str] = []
    for name in STDLIB:
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) if callable(obj) or inspect.ismodule(obj) else None
            if doc:
                out.extend(p for p in doc.split("\n\n") if 40 <= len(p) <= 1500)
    for dist in PACKAGES:
        try:
            body = importlib.metadata.metadata(dist).get_payload()  # type: ignore[attr-defined]
        except importlib.metadata.PackageNotFoundError:
            continue
        if isinstance(body, str):
            out.extend(p for p in body.split("\n\n") if 40 <= len(p) <= 1500)
    return sorted(set(out))


class Gen:
    def __init__(self, rng: random.Random, paras: list[str]) -> None:
        self.rng = rng
        self.paras = paras

    def text(self) -> str:
        r = self.rng.random()
        if r < 0.45:
            return self.rng.choice(self.paras)
        if r < 0.8:
            return " ".join(self.rng.sample(SENTENCES, self.rng.randint(1, 3)))
        return self.rng.choice(self.paras) + "\n\n" + self.rng.choice(SENTENCES)

    def name(self) -> str:
        return self.rng.choice(NAMES)

    def email(self, name: str) -> str:
        local = "".join(c for c in name.lower().replace(" ", ".") if c.isascii() and (c.isalnum() or c in ".-'"))
        number = self.rng.randint(1, 99)
        domain = self.rng.choice(["example.com", "mail.co.uk", "uni.edu", "gmail.com"])
        return f"{local.strip('.') or 'user'}+{number}@{domain}"

    def url(self) -> str:
        host = self.rng.choice(["https://example.com", "https://docs.python.org/3", "https://github.com/aio-libs",
                                "https://shop.example.org", "http://intranet.example.net:8080"])
        path = "/".join(self.rng.sample(WORDS, self.rng.randint(1, 3)))
        query = urllib.parse.urlencode({"utm_source": "newsletter", "ref": self.rng.choice(WORDS)})
        return f"{host}/{path}?{query}" if self.rng.random() < 0.5 else f"{host}/{path}"

    def headers(self) -> dict[str, str]:
        h = {"User-Agent": self.rng.choice(USER_AGENTS), "Accept-Language": "en-GB,en;q=0.9,fr;q=0.8"}
        if self.rng.random() < 0.6:
            h["Referer"] = self.url()
        if self.rng.random() < 0.2:
            h["X-Forwarded-Host"] = self.rng.choice(["app.example.com", "api.example.com:443", "localhost:3000"])
        return h

    def cookies(self) -> dict[str, str]:
        c = {"session": "".join(self.rng.choice("abcdef0123456789") for _ in range(32))}
        if self.rng.random() < 0.5:
            c["_ga"] = f"GA1.2.{self.rng.randint(10**8, 10**9)}.{self.rng.randint(10**9, 2 * 10**9)}"
        if self.rng.random() < 0.3:
            c["prefs"] = urllib.parse.quote(orjson.dumps({"theme": "dark", "lang": "fr-CA", "tz": "Europe/Paris"}))
        return c

    def request(self, i: int) -> dict[str, Any]:
        kind = self.rng.choice(["comment", "profile", "search", "order", "post", "form", "sql_console", "ticket"])
        name = self.name()
        req: dict[str, Any] = {"id": i, "kind": kind, "method": "POST", "query": "", "headers": self.headers(),
                               "cookies": self.cookies()}
        if kind == "comment":
            body = self.rng.choice([self.text(), self.rng.choice(HTML_SNIPPETS), self.text() + "\n\n```\n"
                                    + self.rng.choice(SHELL_SNIPPETS + CODE_SNIPPETS) + "\n```"])
            req |= {"path": f"/api/posts/{self.rng.randint(1, 9999)}/comments",
                    "json": {"author": {"name": name, "email": self.email(name)}, "comment": body,
                             "format": self.rng.choice(["markdown", "html", "plain"]), "reply_to": None}}
        elif kind == "profile":
            req |= {"method": "PATCH", "path": "/api/users/me",
                    "json": {"display_name": name, "bio": self.text()[:500], "website": self.url(),
                             "location": self.rng.choice(CITIES), "tags": self.rng.sample(WORDS, 3)}}
        elif kind == "search":
            q = self.rng.choice(SEARCHES)
            req |= {"method": "GET", "path": "/api/search", "query": urllib.parse.urlencode(
                {"q": q, "page": self.rng.randint(1, 20), "sort": self.rng.choice(["-created", "name", "price"]),
                 "filter[category]": self.rng.choice(WORDS)})}
        elif kind == "order":
            req |= {"path": "/api/orders", "json": {
                "customer": {"name": name, "email": self.email(name),
                             "phone": f"+44 20 7946 {self.rng.randint(1000, 9999)}"},
                "shipping": {"street": f"{self.rng.randint(1, 200)} {self.rng.choice(WORDS).title()} Street",
                             "city": self.rng.choice(CITIES), "notes": self.rng.choice(SENTENCES)},
                "items": [{"sku": f"SKU-{self.rng.randint(1000, 9999)}", "qty": self.rng.randint(1, 5),
                           "title": " ".join(self.rng.sample(WORDS, 3)).title()}
                          for _ in range(self.rng.randint(1, 4))],
                "coupon": self.rng.choice([None, "SAVE-10", "WELCOME2024"])}}
        elif kind == "post":
            req |= {"path": "/api/articles", "json": {
                "title": self.rng.choice(SENTENCES)[:80], "body": self.text() + "\n\n" + self.text(),
                "attachments": [{"filename": f"{self.rng.choice(WORDS)}-{self.rng.randint(1, 99)}.pdf",
                                 "path": f"uploads/2024/{self.rng.randint(1, 12):02d}/"}],
                "links": [self.url() for _ in range(2)], "draft": self.rng.random() < 0.5}}
        elif kind == "form":
            form = [["name", name], ["email", self.email(name)], ["subject", self.rng.choice(SENTENCES)[:60]],
                    ["message", self.text()]]
            req |= {"path": "/contact", "form": form}
        elif kind == "sql_console":
            # The hard case decided in README.md: an app whose field *is* SQL. The benchmark rule excludes
            # sqli on body.snippet; the table also reports the rate without that exclusion.
            title = self.rng.choice(SENTENCES)[:60]
            cell = {"title": title, "snippet": self.rng.choice(SQL_SNIPPETS), "language": "sql"}
            req |= {"path": "/api/notebooks/cells", "json": cell}
        else:
            req |= {"path": "/api/tickets", "json": {
                "subject": self.rng.choice(SENTENCES)[:70], "description": self.text(),
                "steps": [self.rng.choice(SHELL_SNIPPETS + CODE_SNIPPETS), self.rng.choice(SENTENCES)],
                "reporter": name, "severity": self.rng.choice(["low", "high"])}}
        if kind != "search" and self.rng.random() < 0.3:
            req["query"] = urllib.parse.urlencode({"lang": self.rng.choice(["en", "fr", "de"]), "v": "2"})
        return req


def main() -> None:
    rng = random.Random(20261123)
    gen = Gen(rng, paragraphs())
    out = HERE / "benign"
    out.mkdir(exist_ok=True)
    requests = [gen.request(i) for i in range(5000)]
    for name, part in (("tuning", [r for r in requests if r["id"] % 5 != 4]),
                       ("heldout", [r for r in requests if r["id"] % 5 == 4])):
        (out / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in part))
        print(name, len(part))
    print("paragraphs", len(gen.paras))


if __name__ == "__main__":
    main()
