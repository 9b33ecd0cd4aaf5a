"""SQL injection: structure, not keywords.

Prose says "select", "union", "drop table" and "or"; an injection has to *break out* of the literal the
application built (a quote, or a number followed by an operator) and then add SQL structure: a boolean
with a comparison (`' or 'x'='x`, `1 and 1=1`), a comment that swallows the rest (`admin'--`),
`UNION SELECT`, a stacked statement (`; drop table t`), a sub-select, or a function only an attacker
calls from a form field (`pg_sleep(`, `extractvalue(`, `information_schema`). Each rule below is one
such structure; the id of the rule that fired is logged (`sqli.quote-bool`, `sqli.union`, ...).

Hand-written because no maintained, permissively licensed Python library does this: libinjection's
C tokenizer is the reference design (the optional adapter wraps its GPL binding), and a Python token
loop would cost ~50 µs per paragraph of prose. These patterns run in `re`'s C engine, have no nested
unbounded quantifiers (linear time), and sit behind a pre-filter that most values never pass.

SQL source code *is* SQL: a field that legitimately carries it (a query console, a snippet) is
excluded per rule (`exclude: [{field: body.snippet, classes: [sqli]}]`).
"""

from __future__ import annotations

import re

from proxy.detect.base import PlainGate, RuleSet
from proxy.detect.prefilter import starting
from proxy.detect.searchers import Anchored, Calls, Leftmost, Literals, Tail, word

_Q = r"['\"`]"
_BOOL = r"(?:\bor\b|\band\b|\bxor\b|\|\||&&|\bhaving\b|\bwhere\b|\bwhen\b)"
_CMP = r"(?:<=>|<>|!=|[=<>]|\blike\b|\brlike\b|\bregexp\b|\bsounds\s+like\b|\bbetween\b|\bis\b|\bin\b)"
_END = r"(?:--|#|/\*|;)"
_STR = r"(?:'[^']{0,40}'|\"[^\"]{0,40}\")"
_NUM = r"(?:-?\d+(?:\.\d+)?|0x[0-9a-f]+|true|false|null|@@?[a-z_][\w.]{0,40})"  # @@global.version
_IDENT = r"[a-z_][\w.]{0,30}"
# a select list, not "select one" (`select*from`: no blank needed before `*`)
_SELECT = r"select(?:\s*\*|\s+(?:@@|null\b|\d|[a-z_]\w*\s*\(|[\w.]+\s*,|case\b))"
_STATEMENT = (
    rf"(?:{_SELECT}|insert\s+into\b|delete\s+from\b"
    r"|update\s+[\w.]+\s+set\b|drop\s+(?:table|database|schema|view|function|procedure|user)\b"
    r"|create\s+(?:table|user|function|procedure|database)\b|alter\s+(?:table|user|database)\b"
    r"|truncate\s+table\b|exec(?:ute)?\s+(?:master\.|xp_|sp_)|declare\s+@|shutdown\b"
    # `exec(@q)`, `exec ('sel' + 'ect')`: dynamic SQL (not `exec('cat *.js', cb)`, Node's child_process)
    r"|exec(?:ute)?\s*\(\s*(?:@\w|'[^']{0,20}'\s*\+\s*')"
    # `CALL p(...)` with literal or no arguments, `DESC t;` (not "; call John (mobile)", "; describe impact")
    r"|waitfor\s+(?:delay|time)\b|call\s+[\w.]+\((?:\s*\)|\s*['\"@\d])|desc(?:ribe)?\s+[\w.`]+\s*(?:;|--|#)"
    r"|begin\s+(?:dbms_|declare)|copy\s+[\w.]+\s+(?:from|to)\s+program|if\s*\()"
)
_STRONG_FUNCS = (
    "pg_sleep", "benchmark", "randomblob", "sleepeachrow", "dbms_lock.sleep", "dbms_pipe.receive_message",
    "extractvalue", "updatexml", "load_file", "utl_inaddr.get_host_address", "utl_inaddr.get_host_name",
    "utl_http.request", "xp_cmdshell", "gtid_subset", "name_const", "ctxsys.drithsx.sn",
    "dbms_utility.sqlid_to_sqlhash",
    "dbms_xmlgen.getxml", "xmltype", "uuid_to_bin", "st_latfromgeohash", "regexp_substring", "make_set", "json_keys",
    "geometrycollection", "multipoint", "polygon", "linestring", "sys_context",
)
_COMMENT = re.compile(r"/\*!\d*|/\*.{0,200}?\*/|\*/")
_QUOTES = ("'", '"', "`")
# Screens (prefilter.py) say `[\s)]*` for `\s*(?:\)+\s*)?` and drop a leading `\b`: supersets, and several times
# cheaper for `re` to rule out at each quote of a text
_BOOL_SCREEN = r"[\s)]*(?:or\b|and\b|xor\b|\|\||&&|having\b|where\b|when\b)"
# after the quote and the boolean: an operator, a comment, or a last quote (`' or '' '`: adjacent literals
# that the application's closing quote completes); or a function call, or a whole sub-select (`' or select *`)
_AFTER_BOOL = (
    rf"\s*(?:not\s+|!\s*)?(?:\(\s*)*(?:{_STR}\s*(?:\)+\s*)?(?:{_CMP}|[-+*/%^&|]|{_END}|{_Q}\s*$)"
    rf"|{_NUM}\s*(?:\)+\s*)?(?:{_CMP}|{_END}|$)|{_IDENT}\s*(?:\)+\s*)?(?:<=>|<>|!=|=|like\b)|[a-z_]\w*\(|exists\s*\("
    rf"|{_Q}\s*$|{_IDENT}\s+is\s+(?:not\s+)?null\s*(?:{_END}|or\b|and\b)"
    # PostgreSQL's and SQLite's operators, ended by SQL: `'or email notnull--`, `' and email ilike email--`
    rf"|{_IDENT}\s+(?:notnull|isnull)\s*{_END}|{_IDENT}\s+(?:ilike|glob|regexp|rlike)\s+{_IDENT}\s*{_END}"
    rf"|{_SELECT})"
)
# `_BOOL` as `Leftmost` heads (`\bor\b` -> `or(?<!\wor)\b`), and what the `sleep` rule wants after one
_BOOL_HEADS = [(w, word(w)[1] + r"\b") for w in ("or", "and", "xor", "having", "where", "when")] + [
    ("||", r"\|\|"), ("&&", "&&")]
_SLEEP = r"\s*(?:not\s+|!\s*)?(?:\(\s*)*(?:sleep|pg_sleep)\s*\(\s*\d+\s*\)"
# (each alternative ends in its own `\s*$`, blanks never matched by two adjacent `\s*`: linear, see the
# properties test with runs of blanks)
_COMMENT_END = r"(?:--[\s\-+]*(?:\w{1,3}\s*)?|#\s*(?:\d+\s*)?|/\*.{0,40}\s*|;\s*(?:--|#).{0,20}\s*)$"
_BOOLS = ("or", "and", "xor", "||", "&&", "having", "where", "when")
def _compared(tail: str = "") -> str:
    """Two quoted literals compared (`'a'='`, `"1"="`), each quote kind, then `tail` after the second's text."""
    return "|".join(rf"{q}\w{{0,20}}{q}(?:=|<>|!=){q}{tail}" for q in ("'", '\\"'))


_LITERAL_COMPARE = _compared()
# ... and the right literal ends the probe (the value, a comment, a boolean): not `@{"Accept"="application/json"}`
# or "the condition 'yes'='yes' is always true"
_PROBE_END = r"(?:['\"]?\s*$|['\"]\s*(?:--|#|;|\)|(?:or|and)\b))"
_LITERAL_PROBE = _compared(rf"\w{{0,20}}{_PROBE_END}")
# `x'||'x` ending the value, the application's quotes around it (prose's `'foo'||'bar'` and a list of
# operators' `'||', 'c'` close their own)
_CONCAT_PROBE = r"'\|\|'(?<=\w'\|\|')(?=\w{1,20}\s*$)"


def _prepare(value: str) -> str:
    """Inline comments become spaces (`union/**/select`, MySQL `/*!50000select*/`); the patterns take
    any run of blanks (`\\s+`), so whitespace is not rewritten (that alone cost ~20 µs per 2 KB)."""
    if "/*" in value or "*/" in value:
        value = _COMMENT.sub(" ", value)
    return value


_BC_OPERATOR = re.compile(r"[=<>!]+")
_BC_EQUALITY = frozenset({"=", "==", "<>", "!=", "<=>"})
_BC_BEFORE = re.compile(rf"(?:^|[\s()'\"`]){_BOOL}\s*(?:\(\s*)*(?:-?\d+|{_STR})\s*(?:\)+\s*)?$")
# `_around` wants a literal (a digit or a quote) right before the comparison, blanks and `)` aside: a
# comparison with any other character in front is passed over without slicing the text. An equality run
# starts with `=`, `<` or `!`; three patterns that each start with that literal (found by `re` as fast as
# `str.find`, where a `[=<!]` class costs ~7 ns a character) tell whether any run has such a character in
# front at all. URLs (`?a=b&c=d`) and code (`x = y`) stop there.
_BC_LEFT = "'\" \t\n\r)"
_BC_MAYBE = tuple(re.compile(rf"{op}(?<=['\"\d \t\n\r)]{op})") for op in ("=", "<", "!"))
_BC_AFTER = re.compile(r"\s*(?:\(\s*)*(?:-?\d+|['\"]|select\b)")


class _BoolCompare:
    """`or 1=1`, `and 8137=8137`, `where 8930=5865`, `or 'a'='a`, `or 1 like 1`: a boolean, a literal, a
    comparison, a literal. Found from each comparison operator (`=` is rare in prose, `like` is not, so
    `like` must follow a number or a quote) and checked on both sides, because a pattern that starts
    with the boolean words would be tried at every blank of the text."""

    def search(self, text: str) -> re.Match[str] | None:
        eq, lt, bang = _BC_MAYBE
        if eq.search(text) is not None or lt.search(text) is not None or bang.search(text) is not None:
            for op in _BC_OPERATOR.finditer(text):
                start = op.start()
                before = text[start - 1 : start]
                if (before in _BC_LEFT or before.isdigit()) and op.group(0) in _BC_EQUALITY:
                    hit = self._around(text, start, op.end())  # `2 > 1 and 3 < 4` is arithmetic homework
                    if hit is not None:
                        return hit
        i = text.find("like")
        while i != -1:
            start = i - 1 if i and text[i - 1] == "r" else i
            before = text[start - 1 : start]
            if before in _BC_LEFT or before.isdigit():
                hit = self._around(text, start, i + 4)
                if hit is not None:
                    return hit
            i = text.find("like", i + 4)
        return None

    @staticmethod
    def _around(text: str, start: int, end: int) -> re.Match[str] | None:
        left = text[max(0, start - 64) : start].rstrip(" \t\n\r)")
        if not (left[-1:] in ("'", '"') or left[-1:].isdigit()):  # the left side must be a literal
            return None
        before = _BC_BEFORE.search(text, max(0, start - 64), start)
        return before if before is not None and _BC_AFTER.match(text, end) else None


_UNION = re.compile(r"union(?:\s+(?:all|distinct))?\s*(?:\(\s*)*select\b")
_UNION_AFTER = re.compile(r"\s*(?:\*|null\b|\d|@@|\(|['\"]|0x|[\w.]+\s*(?:,|\(|from\b))")


class _Union:
    """`UNION [ALL] SELECT` after a quote, a parenthesis or a number (`1 union select`), or followed by a
    select list (`union select null,`). Found from the literal `union` (fast), context checked by hand."""

    def search(self, text: str) -> re.Match[str] | None:
        for m in _UNION.finditer(text):
            before = text[: m.start()].rstrip()[-1:]
            if (before and not before.isalpha() and before != "_") or _UNION_AFTER.match(text, m.end()):
                if not (m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_")):
                    return m
        return None


_CATALOG_WORDS = {
    "information_schema": None, "@@version": None, "@@datadir": None, "sysobjects": None, "mysql.user": None,
    "pg_shadow": None, "msysaccessobjects": None, "outfile": re.compile(r"into\s+outfile"),
    "dumpfile": re.compile(r"into\s+dumpfile"), "analyse": re.compile(r"procedure\s+analyse"),
    "waitfor": re.compile(r"waitfor\s+delay\s+'"), "utl_": re.compile(r"\butl_(?:http|inaddr|file|smtp)\b"),
    "xp_": re.compile(r"\bxp_(?:cmdshell|regread|dirtree|fileexist)\b"),
}
_CATALOG = Literals(_CATALOG_WORDS)

SQLI = RuleSet(
    "sqli",
    # (the class pre-filter: one of these; the commonest in benign text first, so most fields pass at once)
    (("/", "'", "-", "(", ",", ";", "=", ">", "`", "<", "#", '"', "@", "union"),),
    [
        # ' or 'x'='x   admin' and 1=1--   ') or ('x')=('x   ' or ascii(substr(...   1' and 'a'='a
        # after the literal: an operator, a comment, or a last quote (`' or '' '`: adjacent literals that the
        # application's closing quote completes); or a function call, or a whole sub-select (`' or select *`)
        ("quote-bool", (_QUOTES, _BOOLS), re.compile(rf"{_Q}\s*(?:\)+\s*)?{_BOOL}{_AFTER_BOOL}"),
         starting(_QUOTES, _BOOL_SCREEN + _AFTER_BOOL)),
        # admin'--   admin' #   ' /*   1' -- -   (the comment swallows the rest of the query)
        ("comment-end", (_QUOTES, ("--", "#", "/*", ";")),
         # (also after a `collate` clause: `user'collate nocase--`)
         Tail(re.compile(rf"{_Q}\s*(?:\)+\s*)?(?:collate\s+\w+\s*)?{_COMMENT_END}")),
         starting(_QUOTES, rf"[\s)]*(?:collate\s+\w+\s*)?{_COMMENT_END}")),
        ("union", (("union",), ("select",)), _Union(), None),
        ("stacked", ((";",),), re.compile(rf";\s*(?:\)+\s*)?{_STATEMENT}"), rf";[\s)]*{_STATEMENT}"),
        # 1 or 1=1   1) and 8137=8137   where 8930=5865   or 'a'='a   (boolean with a literal comparison)
        ("bool-compare", (("=", "like"), _BOOLS), _BoolCompare(), None),
        # (no needles: the anchored pattern fails at the first character for almost every value, sooner than
        # the eight `in` checks of the boolean words it contains anyway)
        # two quoted literals compared, the probe's true and false halves (`'a'='a'`, `'1'='2'`, `"foo"<>"bar"`;
        # without blanks: the shell's `[ "z1" = "z1" ]` has them), and a string concatenation probe (`x'||'x`)
        ("literal-compare", (("=", "<>", "||"), ("'", '"')), re.compile(f"{_LITERAL_PROBE}|{_CONCAT_PROBE}"),
         rf"{_LITERAL_COMPARE}|'\|\|'"),
        # a tautology after a boolean, `or a=a`, `) or (x=x` (`or 1=1` is bool-compare's), where the comparison
        # ends there, so `or x = x + 1` is arithmetic
        ("tautology", (("=",), ("or", "and")),
         Leftmost([word("or"), word("and")],
                  r"\s+(?:\(\s*)*(\w{1,30})\s*=\s*(?:\(\s*)*\1(?!\w)"
                  r"(?=\s*(?:\)|--|#|/\*|;|$|['\"]|or\b|and\b))"), None),
        # MS SQL dynamic SQL: `exec(@q)` runs a variable, `declare @s varchar(200)` makes one
        ("dynamic", (("exec",), ("@",)), re.compile(r"exec(?:ute)?\s*\(\s*@\w+\s*\)"), r"\(\s*@\w+\s*\)"),
        ("dynamic", (("declare",), ("@",)),
         Leftmost([word("declare")], r"\s+@\w+\s+(?:as\s+)?(?:n?(?:var)?(?:char|binary)|(?:big)?int|sysname|table)\b"),
         None),
        ("numeric-bool", (),
         Anchored(re.compile(rf"\s*-?\d+\s*(?:\)+\s*)?{_BOOL}\s+!?\s*(?:{_NUM}|[a-z_]\w*\()\s*(?:\)+\s*)?(?:{_CMP}|{_END}|$)"))),
        ("bare-bool", (), Anchored(re.compile(rf"\s*(?:or|and|xor|\|\||&&)\s+{_NUM}\s*(?:{_CMP}|{_END}|$)"))),
        ("function", (("(",),), Calls(_STRONG_FUNCS), None),
        ("function", (("(",), ("exp", "floor", "convert")),
         Calls(("exp", "floor", "convert"), re.compile(r"\s*(?:~|rand\s*\(|int\s*,)")),
         r"\(\s*(?:~|rand\s*\(|int\s*,)"),
        # its words are its needles, behind a shorter group that each of them contains
        ("catalog", (("_", "@@", "objects", "file", "mysql.user", "analyse", "waitfor"), tuple(_CATALOG_WORDS)),
         _CATALOG, None),
        # `and sleep(5)`, and negated, which keeps the boolean true either way: `and !sleep(5)`, `or not sleep(5)`
        # (searched per literal head: `(?:{_BOOL}|,|^)\s*...` would be tried at every position of the text)
        ("sleep", (("(",), ("sleep",)), Leftmost(_BOOL_HEADS + [(",", ",")], _SLEEP, at_start=True), None),
        ("subselect", (("(",), ("select",)),
         re.compile(r"\(\s*select\s*\(\s*(?:\d+|null|\*|@@\w+)\s*\)\s*from\b|\(\s*select\s+(?:\(|case\b|top\b|\*|\d|null\b|concat|char|count|@@|[a-z_]\w*\s*\(|[\w.]+\s*(?:,|\bfrom\b))")),
        ("case-when", (("=",), ("case",), ("when",)), Leftmost([word("case")], r"\s+when\s*(?:\(\s*)*\d+\s*=\s*\d+"),
         None),
        ("if", (("(",), ("if", "elt")), Calls(("if", "elt", "iif"), re.compile(r"\s*\d+\s*=\s*\d+")),
         r"\(\s*\d+\s*=\s*\d"),
        ("char-chain", (("(",), ("char", "chr")),
         re.compile(r"\b(?:char|chr)\s*\(\s*\d+\s*\)\s*(?:\|\||\+|,\s*(?:char|chr)\s*\()"),
         r"\(\s*\d+\s*\)\s*(?:\|\||\+|,)"),
        # LDAP filter injection, which the SQL lists carry too: `*)(|(mail=*))` opens an OR/AND of filters;
        # `(|(` and `(&(` are not valid in the code languages a comment field quotes (`if (!(a = b))` is)
        ("ldap-filter", (("(|", "(&"),), re.compile(r"\(\s*[|&]\s*\(\s*[a-z][\w.-]{0,40}\s*[~<>]?=")),
        ("order-by", (("by",), ("order", "group")),
         Leftmost([word("order"), word("group")],
                  rf"\s+by\s+\d+(?:\s+(?:asc|desc)\b)?(?:\s*,\s*\d+(?:\s+(?:asc|desc)\b)?)*\s*(?:{_END}|$)"),
         None),
    ],
    _prepare,
    # a plain value keeps an apostrophe between letters (O'Brien), and `admin'or 1#` is one
    PlainGate(("union", "@@", " by ", "information_schema", "'collate")
              + tuple("'" + b for b in _BOOLS if b.isalpha()),
              ("or ", "and ", "xor "),
              re.compile(r"\d+\s*(?:or|and|xor|having|where|when)\s")),
)
