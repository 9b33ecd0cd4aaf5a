"""Security response headers: the OWASP Secure Headers Project values, two profiles, explicit overrides.

Everything is resolved at start-up (global config) or at rule load (per-rule overrides) into
`Plan`s: tuples of (name, lower-case name, value) grouped by operation, so a response costs a few
dict lookups and assignments and nothing is parsed per request (Starlette's CORS middleware builds
its header dicts in `__init__` the same way).

Operations and the order they apply in: `remove` (drop the upstream's value and any default),
`set` (replace), `if_absent` (add unless the upstream sent one), `append` (one more field line).
Layers compose in order — profile, HSTS, `Cache-Control` for authenticated responses, the global
`headers:` overrides, then the rule's — and a later layer's remove/set/if_absent of a name replaces
what earlier layers said about it. Profile defaults are `if_absent`: an upstream that sends its own
CSP (with nonces, say) keeps it; `set` forces a value. HSTS is `set`: it describes Bastion's TLS,
which the upstream cannot know.

The OWASP lists ship as JSON in `proxy/data/` (copies of OSHP `ci/headers_add.json` and
`ci/headers_remove.json`), so refreshing them is a file copy.

>>> plan = compose([defaults("api")])
>>> h = CIMultiDict({"X-Frame-Options": "SAMEORIGIN"}); plan.apply(h); h["X-Frame-Options"]
'SAMEORIGIN'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from proxy.config_hardening import HeaderOverrides, Headers

_DATA = Path(__file__).parent / "data"


def _load(name: str) -> Any:
    return json.loads((_DATA / name).read_text(encoding="utf-8"))["headers"]


OWASP_ADD: dict[str, str] = {h["name"]: h["value"] for h in _load("owasp_headers_add.json")}
OWASP_REMOVE: tuple[str, ...] = tuple(_load("owasp_headers_remove.json"))
# Named by the issue and not on the OWASP list: Rails' per-request timing (framework and load leak).
EXTRA_REMOVE = ("X-Runtime",)

HSTS = "Strict-Transport-Security"
CACHE_CONTROL = "Cache-Control"

# Bastion's API profile: a JSON API is never framed, never rendered as a document, never sniffed.
API: dict[str, str] = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The OWASP page values, minus HSTS (sent by scheme, see above) and Clear-Site-Data (logout only:
# on every response it would wipe the site's storage on each request).
HTML: dict[str, str] = {k: v for k, v in OWASP_ADD.items() if k not in (HSTS, "Clear-Site-Data")}
PROFILES = {"api": API, "html": HTML}

Op = tuple[str, str, str]  # (name as written, lower-case name, value)


class Layer:
    """One source of operations (a profile, the config, a rule), names normalised once."""

    __slots__ = ("ops", "appends")

    def __init__(self, ops: Iterable[tuple[str, str, str | None]], appends: Iterable[tuple[str, str]] = ()) -> None:
        # mode is "remove", "set" or "if_absent"; value is None for remove
        self.ops = tuple((mode, name, value) for mode, name, value in ops)
        self.appends = tuple(appends)


def defaults(profile: str) -> Layer:
    return Layer(("if_absent", k, v) for k, v in PROFILES[profile].items())


def overrides(spec: HeaderOverrides) -> Layer:
    ops: list[tuple[str, str, str | None]] = [("remove", n, None) for n in spec.remove]
    ops += [("set", n, v) for n, v in spec.set_.items()]
    ops += [("if_absent", n, v) for n, v in spec.if_absent.items()]
    return Layer(ops, spec.append.items())


class Plan:
    """The operations for one kind of response, ready to apply to a `CIMultiDict`."""

    __slots__ = ("remove", "set", "if_absent", "append", "names")

    def __init__(
        self, remove: tuple[str, ...], set_: tuple[Op, ...], if_absent: tuple[Op, ...], append: tuple[Op, ...]
    ) -> None:
        self.remove = remove
        self.set = set_
        self.if_absent = if_absent
        self.append = append
        # names this plan decides outright (remove/set/if_absent): another plan's ops on them are void
        self.names = frozenset(remove) | {o[1] for o in set_} | {o[1] for o in if_absent}

    def apply(self, headers: CIMultiDict[str]) -> None:
        for low in self.remove:
            headers.popall(low, None)
        for name, _, value in self.set:
            headers[name] = value
        # absent, so adding equals setting: one extend instead of a search-and-replace per field
        headers.extend([(name, value) for name, low, value in self.if_absent if low not in headers])
        for name, _, value in self.append:
            headers.add(name, value)

    def apply_under(self, rule: Plan, headers: CIMultiDict[str]) -> None:
        """Apply `rule` on top of this plan: the same result as composing the two layers, without
        a composed plan per (rule, variant). The rule's decisions go first; this plan then skips the
        names the rule decided, and the rule's appends come last (after this plan's values)."""
        skip = rule.names
        for low in rule.remove:
            headers.popall(low, None)
        for name, _, value in rule.set:
            headers[name] = value
        for name, low, value in rule.if_absent:
            if low not in headers:
                headers[name] = value
        for low in self.remove:
            if low not in skip:
                headers.popall(low, None)
        for name, low, value in self.set:
            if low not in skip:
                headers[name] = value
        for name, low, value in self.if_absent:
            if low not in skip and low not in headers:
                headers[name] = value
        for name, low, value in self.append:
            if low not in skip:
                headers.add(name, value)
        for name, _, value in rule.append:
            headers.add(name, value)


def compose(layers: Iterable[Layer]) -> Plan:
    state: dict[str, tuple[str, str, str | None]] = {}
    appends: list[Op] = []
    for layer in layers:
        for mode, name, value in layer.ops:
            low = name.lower()
            state[low] = (mode, name, value)
            appends = [a for a in appends if a[1] != low]  # a later decision on a name replaces earlier lines
        appends += [(name, name.lower(), value) for name, value in layer.appends]
    remove = tuple(low for low, (mode, _, _) in state.items() if mode == "remove")
    set_ = tuple((n, low, v) for low, (m, n, v) in state.items() if m == "set" and v is not None)
    if_absent = tuple((n, low, v) for low, (m, n, v) in state.items() if m == "if_absent" and v is not None)
    return Plan(remove, set_, if_absent, tuple(appends))


def rule_plan(spec: HeaderOverrides | None) -> Plan | None:
    """A rule's `headers:` compiled at load; applied with `Plan.apply_under` on top of the globals."""
    return None if spec is None else compose([overrides(spec)])


class HeaderPolicy:
    """The global plans, one per (https, authenticated) variant, and the upstream headers to strip.

    `plans[https | authenticated << 1]` is the plan for a response; the index is two comparisons.
    """

    __slots__ = ("plans", "leaky")

    def __init__(self, cfg: Headers) -> None:
        hsts = Layer([("set", HSTS, cfg.hsts_value)])
        no_store = Layer([("if_absent", CACHE_CONTROL, "no-store")])
        variants = []
        for i in range(4):
            https, authenticated = bool(i & 1), bool(i & 2)
            layers = [defaults(cfg.profile)]
            if cfg.hsts == "always" or (cfg.hsts == "https" and https):
                layers.append(hsts)
            if authenticated and cfg.profile == "api":  # the html profile sends no-store to everyone already
                layers.append(no_store)
            layers.append(overrides(cfg))
            variants.append(compose(layers))
        self.plans: tuple[Plan, ...] = tuple(variants)
        keep = {n.lower() for n in cfg.keep}
        leaky = {n.lower() for n in (*OWASP_REMOVE, *EXTRA_REMOVE)} - keep if cfg.remove_leaky else set()
        self.leaky = frozenset(leaky | {"server"})  # never announce a product, whatever the list says

    def plan(self, https: bool, authenticated: bool) -> Plan:
        return self.plans[https | authenticated << 1]
