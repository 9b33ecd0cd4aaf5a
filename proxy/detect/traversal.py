"""Path traversal and local file inclusion.

Text says "../shared/photos" and Markdown links to `../guide.md`; an attack climbs further or aims at a
file: two or more `../` steps, one step into a system location (`../etc/`, `..\\windows\\`), a value that
*starts* by climbing, an absolute path to a well-known sensitive file (`/etc/passwd`, `c:\\boot.ini`,
`/proc/self/environ`, a web server's logs, a shell's `.bashrc` or `.bash_history`), a value that is
nothing but an absolute path into `/etc/` or `/boot/`, a PHP/stream wrapper (`php://filter`, `file:///`,
`expect://`), or a NUL byte that truncates an extension.

The encodings scanners use are undone first, up to three times: percent escapes (`%2e%2e%2f`,
`%252e`), overlong UTF-8 (`%c0%ae` is `.`, `%c0%af` and `%c1%9c` are `/` and `\\` for old decoders, and
dotdotpwn's lone lead byte `%c0%2f`), IIS `%u002e`, full-width dots (NFKC, done by the engine), C hex
literals (`..0x2f`), and `\\` as `/`. A run of U+FFFD is read as `/`: it is what is left of overlong
bytes that a client or proxy decoded with replacement (`..%c0%af` URL-decoded once into a JSON text).
Hand-written: no library knows which of these an upstream might still honour; undoing them all is cheap
and has no false positives of its own.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from proxy.detect.base import Finding, PlainGate, finding, first_hit, has_needles
from proxy.detect.fields import Field
from proxy.detect.prefilter import Rule, Rules
from proxy.detect.searchers import Anchored, Hit

_NEEDLES = ("/", "..", "%", "\\", "\x00", "\udcc0", "\udcc1", "\uff0e", "\ufffd")
_OVERLONG = re.compile(r"%c0%ae|%e0%80%ae|%u002e|%uff0e|%c0%af|%c1%9c|%c1%1c|%c0%5c|%u2215|%u2216|%u002f|%u005c"
                       r"|%c0ae|%c0af"  # the second byte's `%` left out, as some lists write them
                       r"|%c0%2e|%c0%2f"  # dotdotpwn's: a lone overlong lead byte in front of the ASCII character
                       "|\udcc0\udcae|\udcc0\udcaf|\udcc1\udc9c|\udcc1\udc1c|\udcc0[./]")
_DOTS = {"%c0%ae", "%e0%80%ae", "%u002e", "%uff0e", "\udcc0\udcae", "%c0%2e", "\udcc0.", "%c0ae"}
# `..0x2f..0x2fetc0x2fpasswd` (dotdotpwn): the characters spelled as C hex literals, for a decoder that reads them
_HEX_WORD = re.compile(r"0x(?:2e|2f|5c)")
# U+FFFD where a client or proxy decoded an overlong `.` or `/` (`%c0%ae`, `%c0%af`) with replacement: the
# bytes are gone, but only a traversal probe puts them between `..` and a file name; read as a separator
_REPLACED = re.compile("\ufffd+")
_SENSITIVE = (
    r"(?:etc/(?:passwd|shadow|group|hosts|services|issue|motd|fstab|sudoers|crontab|hostname|resolv\.conf|master\.passwd"
    r"|gshadow|security/|ssh/|mysql/|apache2?/|nginx/|httpd/|php\d?/|profile|bashrc|environment|network/|init\.d/"
    r"|os-release|lsb-release|redhat-release|my\.cnf|aliases|exports|inittab|ld\.so)"
    r"|proc/(?:self|\d+)/|var/(?:log|www|lib/mysql|mail|spool|run)/|windows/|winnt/|boot\.ini|win\.ini|inetpub/"
    r"|system32/|root/|home/[^/\s]+/\.|usr/local/(?:apache|etc)|xampp/|wamp/|program files"
    r"|\.ssh/|\.env\b|\.git/|\.htpasswd|\.htaccess|web\.config|web-inf/|wp-config\.php"
    # a web server's logs (log poisoning) and a shell's start-up and history files (`.bashrc`, `.bash_history`)
    r"|apache2?/logs?/|\.(?:ba|z|k|c|tc)?shrc\b|\.(?:(?:ba|z|k)?sh_)?(?:history|profile|login|logout)\b)"
)
_TARGETS = ("etc/", "proc/", "var/", "windows", "winnt", "boot.ini", "win.ini", "inetpub", "system32", "root/",
            "home/", "usr/local", "xampp", "wamp", "program files", ".ssh", ".env", ".git", ".htpasswd", ".htaccess",
            "web.config", "web-inf", "wp-config", "apache", "shrc", "history", "profile", "login", "logout")
# ... under a system's or a server stack's own directory (`/tmp/error.log`, `/docs/nginx.conf` are a project's)
_SYSTEM_ROOTS = (r"(?:etc|var|usr|opt|srv|private|volumes|library|applications|lampp|xampp|wamp|inetpub|windows"
                 r"|program files(?: \(x86\))?|apache\d?|nginx)")
# a process's files that leak (`/proc/self/environ`, `/proc/1/cmdline`), not `proc/2/agenda`
_PROC_FILES = r"(?:environ|cmdline|status|maps|smaps|mem|fd/|cwd|exe|root/|stat\b|mounts|mountinfo|net/|limits)"
# files that hold secrets or configuration wherever they are (`./.env`, `./.git/config`, `./WEB-INF/web.xml`)
_SECRET_FILES = (r"(?:\.env(?![\w.])|\.git/|\.ssh/|\.htpasswd|\.htaccess|web\.config|web-inf/|wp-config\.php"
                 r"|\.(?:ba|z|k|c|tc)?shrc\b|\.(?:(?:ba|z|k)?sh_)?history\b|etc/(?:passwd|shadow))")
# a web server's, PHP's or a database's configuration and log files, by name
_SERVER_FILES = (r"(?:(?:httpd|apache2?|nginx|lighttpd)\.conf|php\.ini|my\.cnf|(?:access|error)[._]log|cpanel\.config"
                 r"|\.htpasswd|\.htaccess|web\.xml|web\.config|wp-config\.php)")
_WRAPPERS = frozenset({"php", "zip", "phar", "expect", "glob", "data", "compress.zlib", "compress.bzip2", "jar",
                       "netdoc", "file"})
_RULES: list[Rule] = [
    # `(?<!\.)` and possessive `{2,}+`: a run of dots is tried once, not from each of its dots (linear time)
    # (screens, see prefilter.py: the end of one step and the start of the next; a step)
    ("multi-up", (("..",),), re.compile(r"(?<!\.)(?:\.{2,}+[;\x00]?/+){2,}"), r"\.\.[;\x00]?/+\.\."),
    ("up-sensitive", (("..",), ("/",), _TARGETS),
     re.compile(rf"(?<!\.)\.{{2,}}+;?/+(?:[\w.-]++/+){{0,3}}{_SENSITIVE}"),
     rf"\.\.;?/+(?:[\w.-]+/+){{0,3}}{_SENSITIVE}"),
    ("leading-up", (("..",),), Anchored(re.compile(r"\s*(?:\.{2,}|\.+/+\.{2,});?/"))),
    # an absolute path where a value or argument starts (after a blank, quote, `=` ...), as one pattern that
    # starts with the literal `/` (which `re` finds in C): the look-behind over that slash and the character
    # before it refuses other places, and a slash at the very start has no such pair
    ("absolute", (("/",),), re.compile(rf"/(?<![^ \t\n\"'=:;|&(<>,`]/)/*{_SENSITIVE}")),
    # the whole value is an absolute path into the system's configuration (`/etc/apt/sources.list`,
    # `/boot/grub/grub.conf`): a path-valued field aimed there. In a sentence ("settings live in
    # /etc/myapp/app.yaml, ...") only the well-known files above count.
    # Also `/private/etc/` (macOS), a process's `proc/self/` (with or without the slash), and a whole value
    # that is an absolute path ending in a server's configuration or log file (`/opt/lampp/logs/access_log`,
    # `/usr/local/apache/conf/httpd.conf`; `uploads/error.log` is an attachment's name): a path-valued
    # field aimed at them. One anchored pattern behind one `/` check (substring needles for each file name
    # would each scan a whole paragraph).
    ("system-path", (("/",),), Anchored(re.compile(
        rf"\s*(?:/*(?:/(?:private/+)?etc|/boot)/+[\w.-]\S*|/*proc/+(?:self|\d+)/+{_PROC_FILES}\S*"
        rf"|/+{_SYSTEM_ROOTS}/+(?:[\w .-]+/+)*+{_SERVER_FILES}(?:\.\w+)?)\s*$"))),
    # a sensitive file named from the current directory (`./web.config`, `./WEB-INF/web.xml`; not
    # `./src/windows/registry.cc` or `./docs/.env.example`), or as the whole value's start (`.ssh/id_rsa`)
    ("dot-slash", (), Anchored(re.compile(rf"\s*(?:\./+(?:[\w.-]+/+){{0,3}})?{_SECRET_FILES}"))),
]


class _Wrapper:
    """`php://`, `file://`, `expect://` ...: look back from each `://` instead of trying every position."""

    def search(self, text: str) -> Hit | None:
        i = text.find("://")
        while i != -1:
            k = i
            while k and (text[k - 1].isalnum() or text[k - 1] == "."):
                k -= 1
            if text[k:i] in _WRAPPERS:
                return Hit(k)
            i = text.find("://", i + 3)
        return None


# (screen, see prefilter.py: from each `://`, one fixed-width look-behind per wrapper name; a paragraph full
# of `https://` links costs `re` one failed look-behind per link, not a Python step)
_RULES.append(("wrapper", (("://",),), _Wrapper(),
               "|".join(f"://(?<={re.escape(name)}://)" for name in sorted(_WRAPPERS))))
_LFI_RULES = Rules("lfi", _RULES)
_DOT_SLASH = re.compile(r"(?<!:)/(?:\.?/)+")  # `/./`, `//`: no-ops for a file system, used to dodge filters
_NUL = re.compile(r"[\w/.]\x00")


def _prepare(value: str) -> str:
    text = value
    if "0x" in text:
        text = _HEX_WORD.sub(lambda m: "." if m.group(0) == "0x2e" else "/", text)
    if not text.isascii() and "\ufffd" in text:
        text = _REPLACED.sub("/", text)
    for _ in range(3):
        if "%" not in text and "\udcc0" not in text and "\udcc1" not in text:
            break
        if "%c" in text or "%e" in text or "%u" in text or "\udcc0" in text or "\udcc1" in text:
            text = _OVERLONG.sub(lambda m: "." if m.group(0) in _DOTS else "/", text)  # else it has none
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            break
        text = decoded.lower()
    text = text.replace("\\", "/")
    if "/./" in text or ("//" in text and text.count("//") > text.count("://")):
        return _DOT_SLASH.sub("/", text)
    return text


class TraversalDetector:
    plain = PlainGate(("..", "/", "\x00"))
    name = "lfi"
    cls = "lfi"

    def match(self, value: str, field: Field) -> Finding | None:
        if "\x00" in field.value:
            m = _NUL.search(field.value)
            if m is not None:
                return finding("lfi", "lfi.nul-byte", field, field.value, m)
        if not has_needles(value, (_NEEDLES,)):
            return None
        text = _prepare(value)
        if "\x00" in text:
            m = _NUL.search(text)
            if m is not None:
                return finding("lfi", "lfi.nul-byte", field, text, m)
        return first_hit(_LFI_RULES, text, field)


LFI = TraversalDetector()
