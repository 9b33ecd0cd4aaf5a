"""Server-side template injection: template syntax that *computes* or reaches into the runtime.

Messages say "Hi {{name}}" and docs show `{% raw %}`; a probe evaluates (`{{7*7}}`, `${3*3}`,
`<%= 7*7 %>`, `#{7*7}`, `@(1+2)`), and an exploit walks objects (`''.__class__.__mro__`,
`config.__class__.__init__.__globals__`, `T(java.lang.Runtime)`, `freemarker...Execute"?new()`,
`{php}`, `{$smarty.version}`). So a template expression is flagged when, inside its delimiters, there
is arithmetic on literals, a dunder, a call, a filter on a known-dangerous object, or a root object
that only exploits name (`self`, `config`, `request`, `app`, `settings`). A plain `{{ name }}` passes.
Hand-written: template engines ship sandboxes, not detectors; these are bounded `re` patterns.
"""

from __future__ import annotations

import re

from proxy.detect.base import RuleSet

_ARITH = r"\s*-?\d+\s*[*+/%-]\s*['\"]?-?\d+['\"]?\s*"
_DANGER = (
    r"(?:__\w+__|\.mro\b|\.subclasses\b|\.getclass\b|\.forname\b|\.class\b|\|\s*attr\b|\|\s*filter\s*\("
    r"|\bself\b|\bconfig\b|\brequest\b|\bsettings\b|\bapp\.|\bdump\s*\(|\blipsum\b|\bcycler\b|\bjoiner\b"
    r"|\bnamespace\b|\burl_for\b|\bget_flashed_messages\b|\bos\.|\bsystem\s*\(|\bpopen\b|\bexec\b|\beval\b"
    r"|\bimport\b|\bruntime\b|\bprocessbuilder\b|\bgetenv\b|\bfile\.open\b|\btouppercase\s*\()"
)

_EXPRESSION = re.compile(r"(?:(?<!\{)\{\{|\{%|\$\{|#\{|<%=?)([^}%]{0,300}+)")
_DANGER_RE = re.compile(_DANGER)


class _ObjectWalk:
    """Each template expression (opener + up to 300 characters, possessively: linear even on `{{{{...`)
    is searched for a dangerous name, instead of a lazy `.*?` tried from every opener."""

    def search(self, text: str) -> re.Match[str] | None:
        for expression in _EXPRESSION.finditer(text):
            if _DANGER_RE.search(expression.group(1)) is not None:
                return expression
        return None


SSTI = RuleSet(
    "ssti",
    (("{", "%", "@", "[", "?", "java"),),
    [
        ("arithmetic", (("{{", "${", "#{", "<%", "[[", "@("),), re.compile(
            rf"\{{\{{{_ARITH}\}}\}}|\$\{{\{{?{_ARITH}\}}|#\{{{_ARITH}\}}|<%=?{_ARITH}%>"
            rf"|\[\[{_ARITH}\]\]|@\({_ARITH}\)")),
        ("object-walk", (("{{", "{%", "${", "#{", "<%"),), _ObjectWalk(), r"\{\{|\{%|\$\{|#\{|<%"),
        ("java", (("java.", "freemarker", "?new", "forname", "javax."),),
         re.compile(r"\bt\s*\(\s*java\.lang\.|freemarker\.template\.utility\.execute|\?new\s*\(\s*\)"
                    r"|\.getclass\s*\(\s*\)\s*\.forname\s*\(|javax\.script\.scriptenginemanager"),
         # the screen (prefilter.py): each alternative from its first punctuation on
         r"\(\s*java\.lang\.|\.template\.utility\.execute|\?new\s*\(\s*\)|\.getclass\s*\(\s*\)\s*\.forname\s*\("
         r"|\.script\.scriptenginemanager"),
        ("smarty", (("{php}", "{$smarty", "{system", "_self"),),
         re.compile(r"\{php\}|\{\$smarty\.|\{system\s*\(|\{\{\s*_self\.env\b")),
        ("erb", (("<%",),), re.compile(r"<%=?\s*(?:`|system\b|exec\b|%x|file\.|io\.|dir\.|require\b|eval\b)")),
    ],
    plain=None,
)
