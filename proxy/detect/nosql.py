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
from proxy.detect.prefilter import Rules, starting

_OPS = (
    r"(?:where|ne|eq|gt|gte|lt|lte|in|nin|regex|exists|expr|function|accumulator|or|and|nor|not|elemmatch"
    r"|type|mod|all|size|text|jsonschema|lookup|options|comment|natural|toString)"
)
_KEY = re.compile(rf"^\s*\$({_OPS})\s*$|\[\s*\$({_OPS})\s*\]", re.IGNORECASE)
_NEEDLES = ("$", ";", "|", "&", "this.", "db.")
_JS_AFTER_QUOTE = r"\s*(?:;|&&|\|\|)\s*(?:sleep\s*\(|this\.|return\b|while\s*\(|do\s*\{|it\s*=|db\.)"
_JS_THIS = r"this\.\w+\.match\s*\("
_JS_DB_CALL = r"(?:insert|find|remove|update|drop|mapreduce)\w*\s*\("
_JS_DB = r"db\.\w+\." + _JS_DB_CALL
_JS_OR = r"\|\|\s*(?:\d+|'[^']*'|\"[^\"]*\")\s*===?\s*(?:\d+|'|\")"
_JS_WHILE = r"while\s*\(\s*pt\s*-\s*it\b"
_VALUE = Rules("nosqli", [
    ("operator-text", (("$",),),
     re.compile(rf"(?:^|[{{,\s'\"])['\"]?\${_OPS}['\"]?\s*:|\[\s*\${_OPS}\s*\]\s*=", re.IGNORECASE)),
    ("js", (("this.", "db.", "sleep", "return", "while", "do{", "do {", "it=", "=="),),
     re.compile(rf"['\"]{_JS_AFTER_QUOTE}|\b{_JS_THIS}|\b{_JS_DB}|{_JS_OR}|\b{_JS_WHILE}"),
     # the screen (prefilter.py): each alternative from its first punctuation on
     starting("'\"", _JS_AFTER_QUOTE) + rf"|\.match\s*\(|\.{_JS_DB_CALL}|{_JS_OR}|\(\s*pt\s*-\s*it\b"),
])


class NoSqlDetector:
    plain = None
    name = "nosqli"
    cls = "nosqli"

    def match(self, value: str, field: Field) -> Finding | None:
        if "$" in value and (field.is_key or field.source == "query"):
            m = _KEY.search(value)
            if m is not None:
                return finding("nosqli", "nosqli.operator-key", field, value, m)
        for needle in _NEEDLES:  # a loop, not any(<generator>): this runs for every field with punctuation
            if needle in value:
                break
        else:
            return None
        return first_hit(_VALUE, value, field)


NOSQLI = NoSqlDetector()
