"""Cross-site scripting: markup that executes, not markup.

Rich-text fields legitimately hold `<p>`, `<a href="https://...">`, `<img src alt>`, even a YouTube
`<iframe>`; prose says "alert" and "script". What executes is narrower, and that is what we match:
- a `<script>` tag, or a tag that loads or embeds active content (`object`, `embed`, `applet`, `base`,
  `meta`, `frameset`, `isindex`, ...), in the raw text;
- an event-handler attribute (`onerror=`, `/onload=`) after a tag start, a quote or a slash;
- a `javascript:` / `vbscript:` / `data:text/html` URL, after HTML entity decoding (browsers decode
  entities inside attribute values, so `javascript&colon;alert&lpar;1&rpar;` runs);
- an `iframe`/`frame` whose source is such a URL or `srcdoc`, CSS `expression(` / `-moz-binding`;
- a JavaScript-string breakout: a quote, then `;`/`)`/`}` or `+`, then a sink (`alert(`, `document.cookie`).

Tags are matched before entity decoding on purpose: `&lt;script&gt;` in a comment is harmless text and
must not be flagged. Hand-written for the same reason as sqli.py: no maintained permissive library;
these are linear-time `re` patterns behind a one-character pre-filter.
"""

from __future__ import annotations

import re

from proxy.detect.base import Finding, PlainGate, entity_decoded, first_hit
from proxy.detect.fields import Field
from proxy.detect.prefilter import Rules, starting
from proxy.detect.searchers import Anchored, Hit, Literals, Short

_TAG = re.compile(
    # (an XML namespace prefix before `script` too: `<x:script xmlns:x="http://www.w3.org/1999/xhtml">` runs in
    # an XHTML document; XSD's and XSLT's `<xs:import>` are everyday XML)
    r"<\s*(?:/\s*)?(?:[a-z][\w-]{0,20}:(?=script))?(?:script|applet|base|meta|frameset|object|embed|isindex|xss|import|layer"
    r"|ilayer|bgsound|xml"
    r"|vmlframe)(?=[\s/>\x0b\x0c]|$)"
)
_ON = re.compile(r"on[a-z]{3,40}\s*=")
_TAG_START = re.compile(r"<[a-z!?]")
# a handler, written as an attribute (no blank before `=`), whose value calls a sink: `onerror=alert(6)`,
# ``onfocus=alert`1` ``, `onload="top.eval(name)"` (Python's `onerror=partial(...)` calls no sink)
_SINK_NAMES = r"(?:alert|prompt|confirm|eval)"
_CALL = re.compile(rf"[\"'`]?\s*(?:(?:window|top|self|parent|this)\.)?{_SINK_NAMES}\s*[(`]")
# ... and is a DOM event's (`onboarding=` is a word, not a handler)
_EVENTS = frozenset(
    "abort afterprint auxclick beforeinput beforeprint beforeunload begin blur cancel canplay canplaythrough change "
    "click close contextmenu copy cuechange cut dblclick drop durationchange emptied end ended error focus focusin "
    "focusout formdata fullscreenchange hashchange input invalid load loadeddata loadedmetadata loadstart message "
    "offline online pagehide pageshow paste pause play playing popstate progress ratechange repeat reset resize scroll "
    "scrollend search securitypolicyviolation seeked seeking select show slotchange stalled storage submit suspend "
    "timeupdate toggle unload volumechange waiting wheel".split())
_EVENT_PREFIXES = ("mouse", "key", "pointer", "touch", "drag", "animation", "transition", "before", "after")


class _Handler:
    """`onerror=` where an attribute can start: inside an open tag (`<img src=x onerror=`), after a quote
    that closes an attribute (`" onfocus=`), or at the start (`/onload=`). Found from each `on...=`
    (a literal prefix `re` scans fast) and checked backwards, instead of trying every `<`."""

    def search(self, text: str) -> re.Match[str] | None:
        for m in _ON.finditer(text):
            i = m.start()
            if i and text[i - 1] not in " \t\n\r\x0c\"'`/;,":
                continue
            # inside an open tag: a tag start after the last `>` (a `<` that is not one is an attribute-name
            # character inside the tag, `<svg </onload=...>`); one search in C, not a walk over every `<`
            low = max(0, i - 400)
            if _TAG_START.search(text, max(low, text.rfind(">", low, i) + 1), i) is not None:
                return m
            before = text[max(0, i - 80) : i].rstrip(" \t\n\r\x0c/")
            if not before or before[-1] in "\"'`":
                return m
            # no tag and no quote in sight: an unquoted attribute value broken out of (`xyz onerror=alert(6)`)
            # counts when the handler is written as an attribute and its value calls a sink
            name = m.group()[2:-1]
            if (text[m.end() - 2] != " " and (name in _EVENTS or name.startswith(_EVENT_PREFIXES))
                    and _CALL.match(text, m.end())):
                return m
        return None


_HANDLER = _Handler()
_SCHEME_AFTER = re.compile(r"\s*(?:[\w$.]+\s*[(`=\[.]|[/(\[\"'%\\]|void\b|eval\b|alert\b|prompt\b|confirm\b|$)")
_SCHEME_WORDS = ("javascript", "vbscript", "livescript")
_BLANKS = re.compile(r"\s+")
_DATA_URL = re.compile(r"data\s*:\s*(?:text/html|text/javascript|application/(?:x-)?javascript|image/svg\+xml)\s*[;,]")


class _Scheme:
    """`javascript:` (also spaced out, `java\tscript:`, which browsers accept) followed by code, and
    `data:text/html`. Found from each `:` and checked backwards over 40 characters, instead of a
    pattern tried at every position; "JavaScript: The Good Parts" is prose (no code after the colon)."""

    def search(self, text: str) -> re.Match[str] | Hit | None:
        i = text.find(":")
        while i != -1:
            before = text[i - 1 : i]  # the last character before the colon that is not blank must be `t`:
            window = text[max(0, i - 40) : i] if before == "t" or before.isspace() else ""  # `https:` stops here
            if window.rstrip()[-1:] == "t":
                word = _BLANKS.sub("", window)
                for scheme in _SCHEME_WORDS:
                    if word.endswith(scheme) and _SCHEME_AFTER.match(text, i + 1):
                        return Hit(max(0, i - len(scheme)))
            i = text.find(":", i + 1)
        j = text.find("data")
        while j != -1:
            m = _DATA_URL.match(text, j)
            if m is not None:
                return m
            j = text.find("data", j + 4)
        return None


_SCHEME = _Scheme()
_FRAME = re.compile(r"<\s*i?frame\b[^>]{0,400}?\b(?:src\s*=\s*[\"'`]?\s*(?:data|javascript|vbscript)\s*:|srcdoc\s*=)")
_CSS_WORDS = {
    "expression": re.compile(r"[:;]\s*expression\s*\("), "-moz-binding": re.compile(r"-moz-binding\s*:"),
    "behavior": re.compile(r"behavior\s*:\s*url"), "@import": re.compile(r"@import\b[^;]{0,80}javascript"),
}
_CSS = Literals(_CSS_WORDS)
_QUOTE_SINK = (r"\s*[;)}\]+,-]\s*(?:[;)}\]]+\s*)?"
               r"(?:(?:alert|prompt|confirm|eval|settimeout|setinterval|fetch|import)\s*[(`]"
               r"|document\.(?:cookie|domain|write|location)|window\.location|location\s*=)")
_CLOSE_SINK = rf"\s*(?:;\s*)?{_SINK_NAMES}\s*[(`]"
_SINK = re.compile(rf"[\"'`]{_QUOTE_SINK}|^\s*[)}}\]]+{_CLOSE_SINK}")
# a sink taken as a value (`a=eval;b=alert;a(b(1))`, `x=alert;x(1)`) or called inside an expression
# (`+alert(0)+`): code, in a JavaScript context that needs no quote to break out of
# (screen: from the `=`; the searcher then wants the alias called later: `a=eval;b=alert;a(b(1))`, not
# `kind=alert, severity=high`; not `prompt=prompt,`, a Python keyword argument)
_ALIAS = r"=\s*(?:alert|eval)\s*[;,]"
_ALIAS_CALLED = rf"(?<![\w$])([a-z_$][\w$]{{0,30}})\s*{_ALIAS}.{{0,80}}?(?<![\w$.])\1\s*\("
_CONCAT = rf"\+\s*{_SINK_NAMES}\s*[(`][^)`]{{0,40}}[)`]\s*\+"
# assigned without a blank, as a flash variable or query parameter is (`playerready=alert(1)`, `?alert(1)`),
# and passed to an array or promise method as its callback (`[1].find(alert)`; not `notify(alert)` or
# `.write(prompt)`), found from the `(`: every `.` of prose would be a start
_CALLBACK_OF = "|".join(rf"(?<=\.{m}\()" for m in (
    "find", "map", "filter", "foreach", "some", "every", "then", "call", "apply", "reduce", "catch"))
_PARAM = (r"=alert\s*[(`]|\?alert\s*[(`]"
          rf"|\((?:{_CALLBACK_OF})\s*(?:alert|eval)\s*\)")
# the whole value is one call of a sink, perhaps in brackets (`alert(1)`, ``alert`1` ``, `(alert)(1)`,
# `{alert(document.domain)}`, and `alert&lpar;1&rpar;` once entities are decoded): a value reflected into a
# script; "Alert(s) will be sent" goes on after the call
# (the argument is code's: a number, a string, `document.domain`, a regex's source; "confirm(order)" is a note)
_ARG = r"(?:\s*(?:-?\d|['\"`/]|(?:document|window|location|top|self|this|string\.fromcharcode)\b)[^()]{0,60}|\s*)"
_WHOLE_CALL = re.compile(rf"\s*[({{\[]?\s*\(?\s*(?:(?:window|top|self|parent)\.)?{_SINK_NAMES}\s*\)?\s*"
                         rf"(?:\({_ARG}(?:\([^()]{{0,40}}\)[^()]{{0,20}})?\)|`[^`]{{0,60}}`)\s*[)}}\]]?\s*;?\s*(?://.*)?$")


_RAW = Rules("xss", [
    ("tag", (("<",),), _TAG),
    ("handler", (("=",), ("on",)), _HANDLER, None),
    ("frame", (("<",), ("frame",)), _FRAME),
    # (screen: each confirming pattern of `_CSS` from its punctuation on; `behavior:url` from its colon)
    ("css", (("(", ":", "@"),), _CSS, r":\s*expression\s*\(|;\s*expression\s*\(|-moz-binding\s*:|:\s*url"
     r"|@import\b[^;]{0,80}javascript"),
    # a script element built by code (screen: from the parenthesis)
    ("script-element", (("createelement",),), re.compile(r"createelement\s*\(\s*[\"'`]script"),
     r"\(\s*[\"'`]script"),
    # an attribute value closed and a new tag opened, at the very start: `"><iframe src=...`
    ("breakout", ((">",), ("<",)), re.compile(r"^[^<>]{0,20}[\"'`]\s*/?>\s*<[a-z!/]"),
     starting("\"'`", r"\s*/?>\s*<[a-z!/]")),
])
_DECODED = Rules("xss", [
    ("scheme", ((":",),), _SCHEME, None),
    ("js-breakout", (("'", '"', "`", ")", "}", "]"), ("alert", "prompt", "confirm", "eval", "settimeout",
                     "setinterval", "fetch", "import", "document.", "location")), _SINK,
     starting("\"'`", _QUOTE_SINK) + "|" + starting(")}]", _CLOSE_SINK)),
    ("js-sink", (("=", "+", "?", "("), ("alert", "prompt", "confirm", "eval")),
     re.compile(f"{_ALIAS_CALLED}|{_CONCAT}|{_PARAM}"), f"{_ALIAS}|{_CONCAT}|{_PARAM}"),
    # (no needles: `Short` gives up on a long text at once, where four substring checks would each scan it)
    ("js-sink", (), Short(Anchored(_WHOLE_CALL), max_len=100, max_lines=1), None),
])


class XssDetector:
    plain = PlainGate(("script:", "data:"))
    name = "xss"
    cls = "xss"

    def match(self, value: str, field: Field) -> Finding | None:
        if "<" not in value and "=" not in value and ":" not in value and "(" not in value and "`" not in value:
            # nothing for the raw rules; entity-encoded code (`alert&lpar;1&rpar;`) is still code once decoded
            if "&" not in value:
                return None
            decoded = entity_decoded(value)
            return None if decoded is value else first_hit(_DECODED, decoded.lower(), field)
        hit = first_hit(_RAW, value, field)
        if hit is not None:
            return hit
        decoded = entity_decoded(value)
        if decoded is not value:
            decoded = decoded.lower()
        return first_hit(_DECODED, decoded, field)


XSS = XssDetector()
