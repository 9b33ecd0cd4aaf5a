"""SSRF targets in the fields a rule marks as URLs (`url_fields: [body.webhook, query.callback]`).

No DNS is resolved, ever: the sidecar must not be the one making the request, and a name that resolves
to a public address today can be rebound tomorrow. What we can decide from the text alone is decided
here: a non-http(s) scheme (`file:`, `gopher:`, `dict:`, ...); `localhost`, `*.localhost`,
`*.internal`, `*.local` and the metadata names; names of public "resolves to loopback" services
(`*.nip.io`, `localtest.me`); and literal addresses in every spelling a URL parser or `inet_aton`
accepts - dotted, decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f000001`, short `127.1`, IPv6
`[::1]`, `[::ffff:127.0.0.1]`, `[::]`, zone ids - that are not globally routable (loopback, private,
link-local incl. 169.254.169.254, CGNAT incl. 100.100.100.200, unspecified, `fd00:ec2::254`).

Parser differentials are the classic bypass (`http://good.com@127.0.0.1`, `http://127.0.0.1#@good.com`,
`http://good.com\\@127.0.0.1`), so every plausible host reading is checked, not just urllib's.
Hand-written because `ipaddress` refuses the legacy IPv4 spellings that `inet_aton` and browsers accept.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

from proxy.detect.base import Finding, finding
from proxy.detect.fields import Field

_SCHEME = re.compile(r"^\s*([a-z][a-z0-9+.-]{0,20}):")
_ALLOWED = frozenset({"http", "https"})
_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "metadata",
                    "metadata.google.internal", "instance-data", "instance-data.ec2.internal", "kubernetes",
                    "kubernetes.default", "kubernetes.default.svc", "localtest.me", "lvh.me", "vcap.me"})
_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".nip.io", ".sslip.io", ".xip.io",
             ".localtest.me", ".lvh.me", ".svc.cluster.local")
_IP_START = frozenset("0123456789[")
_PART = re.compile(r"^(?:0x[0-9a-f]*|0[0-7]*|[1-9]\d*)$")


def _number(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    return int(part, 8) if len(part) > 1 and part.startswith("0") else int(part)


def _ipv4_legacy(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton rules: 1-4 parts, each decimal, octal (leading 0) or hex (0x); the last fills the rest."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or not all(_PART.match(p) for p in parts):
        return None
    nums = [_number(p) for p in parts]
    last_bits = 8 * (5 - len(nums))
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 1 << last_bits:
        return None
    value = 0
    for n in nums[:-1]:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << last_bits | nums[-1])


def _internal_ip(host: str) -> bool:
    if ":" not in host and host[:1] not in _IP_START:  # a name: IPv6 needs a `:`, legacy IPv4 a leading digit
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # IPv6 zone id
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            return False
        mapped = ip6.ipv4_mapped or ip6.sixtofour
        return not ip6.is_global or (mapped is not None and not mapped.is_global)
    ip4 = _ipv4_legacy(host)
    return ip4 is not None and not ip4.is_global


def _cut(text: str, stops: str) -> str:
    """`text` up to the first of `stops`: what `re.split("[" + stops + "]", text, 1)[0]` gives, with a
    `str.find` per stop (a character class costs `re` ~7 ns a character to scan)."""
    end = len(text)
    for stop in stops:
        i = text.find(stop, 0, end)
        if i != -1:
            end = i
    return text[:end]


def _hosts(url: str) -> set[str]:
    """Every host a lenient parser could read from `url`: after any userinfo, with `\\` and `#` as stops or not."""
    if "//" in url[:40]:
        rest = url.split("//", 1)[1]
        if "\\" not in rest and "#" not in rest:  # the usual URL: one reading, taken apart as below
            host = _host(_cut(rest, "/?#").rsplit("@", 1)[-1])
            return {host} if host else set()
        rests = [rest]
    else:  # `127.0.0.1:8080/x` or `localhost:80`: the "scheme" may be the host
        rests = [url, url.split(":", 1)[1]] if ":" in url else [url]
    candidates: set[str] = set()
    for rest in rests:
        candidates.add(_cut(rest.replace("\\", "/"), "/?#").rsplit("@", 1)[-1])
        if "\\" not in rest and "#" not in rest:
            continue  # the two readings below end where the one above did: nothing to add
        for stops in ("/?\\", "/?#"):  # parsers that do not stop at '#', or at '\\'
            candidates.add(_cut(rest, stops).rsplit("@", 1)[-1].split("#", 1)[0])
    return {host for host in map(_host, candidates) if host}


def _host(candidate: str) -> str:
    """The host of one authority reading: `[v6]` kept with its brackets, a single `:port` dropped."""
    c = candidate.strip()
    if c.startswith("["):
        return (c.split("]", 1)[0] + "]").rstrip(".")
    return (c.rsplit(":", 1)[0] if c.count(":") == 1 else c).rstrip(".")


def _internal_name(host: str) -> bool:
    if host in _NAMES or host.endswith(_SUFFIXES):
        return True
    # a single-label name only resolves through the local search domains: `http://redis:6379`
    return "." not in host and not host.startswith("[") and _ipv4_legacy(host) is None and ":" not in host


class SsrfDetector:
    name = "ssrf"
    cls = "ssrf"

    def match(self, value: str, field: Field) -> Finding | None:
        url = unquote(value.strip()).replace("\t", "").replace("\n", "").replace("\r", "")
        if not url:
            return None
        scheme = _SCHEME.match(url)
        if scheme is not None and scheme.group(1) not in _ALLOWED and "//" in url[:40] or (
            scheme is not None and scheme.group(1) in {"file", "gopher", "dict", "ldap", "tftp", "jar", "netdoc",
                                                       "php", "expect", "data", "sftp", "ftp", "ssh", "smb"}):
            return finding("ssrf", "ssrf.scheme", field, url, scheme)
        for host in _hosts(url):
            if _internal_name(host) or _internal_ip(host):
                return finding("ssrf", "ssrf.internal-host", field, url, None)
        return None


SSRF = SsrfDetector()
