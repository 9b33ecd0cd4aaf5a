"""Header overrides — global (`headers:` in the config) and per rule (`headers:` in a rule) — with
each merge mode against an upstream that does and does not send the header; and the load errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.config import ConfigError, load_config
from proxy.policy import PolicyError, compile_files
from proxy.security_headers import Layer, compose
from tests.headers.conftest import RULES, Answer, Gate, token

Fetch = Callable[..., Awaitable[Answer]]


def rule_with(headers: str) -> str:
    return RULES + f"""
  - id: tuned
    match: {{path: "/tuned/**"}}
    allow: anonymous
    headers: {headers}
"""


# (rule `headers:`, what the upstream sends, header to look at, the lines the client gets)
XFO = "X-Frame-Options"
RULE_CASES = [
    pytest.param("{set: {X-Frame-Options: SAMEORIGIN}}", None, XFO, ["SAMEORIGIN"], id="set-absent"),
    pytest.param("{set: {X-Frame-Options: SAMEORIGIN}}", "DENY", XFO, ["SAMEORIGIN"], id="set-replaces"),
    pytest.param("{if_absent: {X-Frame-Options: SAMEORIGIN}}", None, XFO, ["SAMEORIGIN"], id="if-absent"),
    pytest.param("{if_absent: {X-Frame-Options: SAMEORIGIN}}", "DENY", XFO, ["DENY"], id="if-absent-keeps"),
    pytest.param("{append: {X-Frame-Options: SAMEORIGIN}}", None, XFO, ["DENY", "SAMEORIGIN"], id="append"),
    pytest.param("{append: {Link: '</a>'}}", "</b>", "Link", ["</b>", "</a>"], id="append-to-upstream"),
    pytest.param("{remove: [X-Frame-Options]}", None, XFO, [], id="remove-default"),
    pytest.param("{remove: [X-Frame-Options]}", "DENY", XFO, [], id="remove-upstreams"),
    pytest.param("{remove: [X-Debug-Token]}", "abc", "X-Debug-Token", [], id="remove-custom"),
    pytest.param("{set: {X-Robots-Tag: none}}", None, "X-Robots-Tag", ["none"], id="set-new-header"),
]


@pytest.mark.parametrize("headers, upstream_value, name, expected", RULE_CASES)
async def test_rule_overrides_each_mode(
    gate: Gate, client: Fetch, headers: str, upstream_value: str | None, name: str, expected: list[str]
) -> None:
    proxy = await gate(rule_with(headers))
    params = {"h": f"{name}:{upstream_value}"} if upstream_value is not None else {}
    got = await client(proxy.url + "/tuned/x", params=params)
    assert got.status == 200
    assert got.headers.getall(name, []) == expected
    # the rule's overrides stay on its own routes
    other = await client(proxy.url + "/public/x")
    assert other.headers.getall("X-Frame-Options") == ["DENY"]


# (global `headers:`, rule `headers:` or None, upstream value, header, expected lines)
LAYER_CASES = [
    pytest.param({"set": {"X-Team": "g"}}, None, None, ["g"], id="global-set"),
    pytest.param({"set": {"X-Team": "g"}}, None, "u", ["g"], id="global-set-replaces"),
    pytest.param({"if_absent": {"X-Team": "g"}}, None, "u", ["u"], id="global-if-absent-keeps"),
    pytest.param({"set": {"X-Team": "g"}}, "{if_absent: {X-Team: r}}", None, ["r"], id="rule-if-absent-over-global"),
    pytest.param({"set": {"X-Team": "g"}}, "{if_absent: {X-Team: r}}", "u", ["u"], id="rule-if-absent-keeps-upstream"),
    pytest.param({"append": {"X-Team": "g"}}, "{append: {X-Team: r}}", "u", ["u", "g", "r"], id="appends-stack"),
    pytest.param({"append": {"X-Team": "g"}}, "{set: {X-Team: r}}", "u", ["r"], id="rule-set-drops-global-append"),
    pytest.param({"remove": ["X-Team"]}, "{set: {X-Team: r}}", "u", ["r"], id="rule-set-after-global-remove"),
    pytest.param({"set": {"X-Team": "g"}}, "{remove: [X-Team]}", "u", [], id="rule-remove-after-global-set"),
]


@pytest.mark.parametrize("global_headers, rule, upstream_value, expected", LAYER_CASES)
async def test_global_and_rule_layers_compose(
    gate: Gate,
    client: Fetch,
    global_headers: dict[str, object],
    rule: str | None,
    upstream_value: str | None,
    expected: list[str],
) -> None:
    proxy = await gate(rule_with(rule or "{}"), headers=global_headers)
    params = {"h": f"X-Team:{upstream_value}"} if upstream_value is not None else {}
    got = await client(proxy.url + "/tuned/x", params=params)
    assert got.headers.getall("X-Team", []) == expected


async def test_rule_overrides_apply_to_bastions_own_answers_too(gate: Gate, client: Fetch) -> None:
    rules = RULES + """
  - id: tuned
    match: {path: "/tuned/**"}
    allow: authenticated
    headers: {if_absent: {X-Frame-Options: SAMEORIGIN}, set: {X-Team: t, Cache-Control: "private, max-age=60"}}
"""
    proxy = await gate(rules)
    got = await client(proxy.url + "/tuned/x")  # no token: Bastion's 401 for this rule
    assert got.status == 401
    assert got.headers.getall("X-Frame-Options") == ["SAMEORIGIN"]
    assert got.headers.getall("X-Team") == ["t"]
    assert got.headers.getall("Cache-Control") == ["no-store"]  # Bastion's errors are never cached
    ok = await client(proxy.url + "/tuned/x", headers={"Authorization": f"Bearer {token()}"})
    assert ok.status == 200
    assert ok.headers.getall("X-Frame-Options") == ["SAMEORIGIN"]
    assert ok.headers.getall("Cache-Control") == ["private, max-age=60"]  # the rule's word over the default


NAMES = st.sampled_from(["A", "b", "C"])
VALUES = st.sampled_from(["1", "2", "3"])
OPS = st.tuples(st.sampled_from(["remove", "set", "if_absent"]), NAMES, VALUES)
LAYERS = st.builds(
    lambda ops, appends: Layer([(m, n, None if m == "remove" else v) for m, n, v in ops], appends),
    st.lists(OPS, max_size=4),
    st.lists(st.tuples(NAMES, VALUES), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(base=st.lists(LAYERS, min_size=1, max_size=3), rule=LAYERS, upstream=st.lists(st.tuples(NAMES, VALUES)))
def test_applying_a_rule_over_the_globals_equals_composing_them(
    base: list[Layer], rule: Layer, upstream: list[tuple[str, str]]
) -> None:
    """The per-request shortcut (`apply_under`) gives exactly what one composed plan would."""
    composed: CIMultiDict[str] = CIMultiDict(upstream)
    compose([*base, rule]).apply(composed)
    layered: CIMultiDict[str] = CIMultiDict(upstream)
    compose(base).apply_under(compose([rule]), layered)
    assert sorted((k.lower(), v) for k, v in layered.items()) == sorted((k.lower(), v) for k, v in composed.items())
    for name in ("A", "b", "C"):  # and the order of the lines of each field
        assert layered.getall(name, []) == composed.getall(name, [])


BAD_HEADERS = [
    pytest.param('{set: {"X-Bad Name": v}}', "invalid header name", id="name-not-token"),
    pytest.param('{set: {X-Split: "a\\r\\nSet-Cookie: x=1"}}', "control character", id="crlf-in-value"),
    pytest.param("{set: {X-A: v}, remove: [x-a]}", "one mode per header", id="two-modes"),
    pytest.param("{set: {Server: nginx}}", "cannot be overridden", id="server"),
    pytest.param("{remove: [Transfer-Encoding]}", "cannot be overridden", id="framing"),
    pytest.param("{set: {Access-Control-Allow-Origin: '*'}}", "set by `cors:`", id="cors-field"),
    pytest.param("{sett: {X-A: v}}", "unknown key", id="typo"),
]


@pytest.mark.parametrize("headers, message", BAD_HEADERS)
def test_bad_rule_overrides_are_load_errors_with_file_and_line(tmp_path: Path, headers: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rule_with(headers))
    with pytest.raises(PolicyError) as err:
        compile_files([path])
    [line] = err.value.messages
    assert line.startswith(f"{path}:17: rules[3].headers") and message in line


@pytest.mark.parametrize(
    "headers, message",
    [
        *BAD_HEADERS,
        pytest.param('{hsts_value: "max-age=forever"}', "max-age=<seconds>", id="hsts-value"),
        pytest.param("{keep: [Server]}", "cannot be overridden", id="keep-server"),
        pytest.param("{profile: web}", "'api' or 'html'", id="profile"),
    ],
)
def test_bad_global_headers_are_config_errors_with_file_and_line(tmp_path: Path, headers: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"upstream: {{url: 'http://127.0.0.1:1'}}\nrules: []\nheaders: {headers}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    [line] = err.value.messages
    assert line.startswith(f"{path}:3: headers") and message in line
