"""NoSQL operator injection (MongoDB and friends).

The attack is structural in the data, not the text: a JSON key that is a query operator
(`{"password": {"$ne": null}}`), the same through a query string (`password[$ne]=x`, which Express's
`qs` and PHP turn into an object), or a server-side JavaScript fragment for `$where` (`'; sleep(5000);`,
`' && this.password.match(/.*/)//`, `|| 1==1`). Legitimate JSON keys that start with `$` (`$schema`,
`$ref`, `$id`) are not operators and pass: only the operator names below are flagged.
"""

from __future__ import annotations

import re

from proxy.detect.base import Finding, finding, first_hit
from proxy.detect.fields import Field

_OPS = (
    r"(?:where|ne|eq|gt|gte|lt|lte|in|nin|regex|exists|expr|function|accumulator|or|and|nor|not|elemmatch"
    r"|type|mod|all|size|text|jsonschema|lookup|options|comment|natural|toString)"
)
_KEY = re.compile(rf"^\s*\$({_OPS})\s*$|\[\s*\$({_OPS})\s*\]", re.IGNORECASE)
_NEEDLES = ("$", ";", "|", "&", "this.", "db.")
_VALUE = [
    ("operator-text", (("$",),),
     re.compile(rf"(?:^|[{{,\s'\"])['\"]?\${_OPS}['\"]?\s*:|\[\s*\${_OPS}\s*\]\s*=", re.IGNORECASE)),
    ("js", (("this.", "db.", "sleep", "return", "while", "do{", "do {", "it=", "=="),), 
     re.compile(r"['\"]\s*(?:;|&&|\|\|)\s*(?:sleep\s*\(|this\.|return\b|while\s*\(|do\s*\{|it\s*=|db\.)"
                      r"|\bthis\.\w+\.match\s*\(|\bdb\.\w+\.(?:insert|find|remove|update|drop|mapreduce)\w*\s*\("
                      r"|\|\|\s*(?:\d+|'[^']*'|\"[^\"]*\")\s*===?\s*(?:\d+|'|\")|\bwhile\s*\(\s*pt\s*-\s*it\b")),
]


class NoSqlDetector:
    plain = None
    name = "nosqli"
    cls = "nosqli"

    def match(self, value: str, field: Field) -> Finding | None:
        if "$" in value and (field.is_key or field.source == "query"):
            m = _KEY.search(value)
            if m is not None:
                return finding("nosqli", "nosqli.operator-key", field, value, m)
        if not any(n in value for n in _NEEDLES):
            return None
        return first_hit("nosqli", _VALUE, value, field)


NOSQLI = NoSqlDetector()
