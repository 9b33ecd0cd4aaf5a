"""W3C trace context: the parsers against the Level 1 grammar, and propagation through a real
Bastion to a real upstream (what the upstream saw, and what the access record says)."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import Tracing
from proxy.context import RequestContext
from proxy.tracecontext import TraceParent, Tracer, parse_traceparent, parse_tracestate
from tests.conftest import EchoUpstream, Running, StartBastion, make_config, parse_head, raw_request

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def _is_traceparent(value: str | None) -> bool:
    return value is not None and parse_traceparent(value) is not None and value.startswith("00-") and len(value) == 55


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param(VALID, TraceParent(TRACE, PARENT, True), id="sampled"),
        pytest.param(f"00-{TRACE}-{PARENT}-00", TraceParent(TRACE, PARENT, False), id="not-sampled"),
        pytest.param(f"00-{TRACE}-{PARENT}-09", TraceParent(TRACE, PARENT, True), id="sampled-with-unknown-bit"),
        pytest.param(f"00-{TRACE}-{PARENT}-fe", TraceParent(TRACE, PARENT, False), id="unknown-bits-only"),
        pytest.param(f"cc-{TRACE}-{PARENT}-01", TraceParent(TRACE, PARENT, True), id="future-version"),
        pytest.param(
            f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
            TraceParent(TRACE, PARENT, True),
            id="future-version-extra-fields",
        ),
        pytest.param(f"01-{TRACE}-{PARENT}-00-", TraceParent(TRACE, PARENT, False), id="future-version-empty-field"),
    ],
)
def test_valid_traceparent(value: str, expected: TraceParent) -> None:
    assert parse_traceparent(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param(f"00-{TRACE.upper()}-{PARENT}-01", id="uppercase-trace-id"),
        pytest.param(f"00-{TRACE}-{PARENT.upper()}-01", id="uppercase-parent-id"),
        pytest.param(f"00-{TRACE}-{PARENT}-0A", id="uppercase-flags"),
        pytest.param(f"0A-{TRACE}-{PARENT}-01", id="uppercase-version"),
        pytest.param(f"00-{'0' * 32}-{PARENT}-01", id="all-zero-trace-id"),
        pytest.param(f"00-{TRACE}-{'0' * 16}-01", id="all-zero-parent-id"),
        pytest.param(f"ff-{TRACE}-{PARENT}-01", id="version-ff"),
        pytest.param(f"ff-{TRACE}-{PARENT}-01-extra", id="version-ff-extra-fields"),
        pytest.param(f"00-{TRACE}-{PARENT}-01-extra", id="version-00-extra-fields"),
        pytest.param(f"00-{TRACE}-{PARENT}-01-", id="version-00-trailing-dash"),
        pytest.param(f"cc-{TRACE}-{PARENT}-01.extra", id="future-version-no-dash-after-flags"),
        pytest.param(f"cc-{TRACE}-{PARENT}-0", id="future-version-short"),
        pytest.param(f"00-{TRACE[:-1]}-{PARENT}-01", id="trace-id-31"),
        pytest.param(f"00-{TRACE}a-{PARENT}-01", id="trace-id-33"),
        pytest.param(f"00-{TRACE}-{PARENT[:-1]}-01", id="parent-id-15"),
        pytest.param(f"00-{TRACE}-{PARENT}a-01", id="parent-id-17"),
        pytest.param(f"00-{TRACE}-{PARENT}-1", id="flags-1-char"),
        pytest.param(f"00-{TRACE}-{PARENT}-011", id="flags-3-chars"),
        pytest.param(f"0-{TRACE}-{PARENT}-01", id="version-1-char"),
        pytest.param(f"00_{TRACE}_{PARENT}_01", id="underscore-separators"),
        pytest.param(f"00-{TRACE}-{PARENT}.01", id="dot-separator"),
        pytest.param(f"00 {TRACE} {PARENT} 01", id="space-separators"),
        pytest.param(f"00-{TRACE[:10]}-{TRACE[10:]}-{PARENT}-01"[:55], id="dash-inside-trace-id"),
        pytest.param(f"zz-{TRACE}-{PARENT}-01", id="non-hex-version"),
        pytest.param(f"00-{TRACE[:-1]}g-{PARENT}-01", id="non-hex-trace-id"),
        pytest.param(f"00-{TRACE}-{PARENT[:-1]}x-01", id="non-hex-parent-id"),
        pytest.param(f"00-{TRACE[:-2]}٠١-{PARENT}-01", id="unicode-digits"),
        pytest.param(f" {VALID}", id="leading-space"),
        pytest.param(f"{VALID}\n", id="trailing-newline"),
        pytest.param(f"00-{TRACE}-{PARENT}-01,00-{TRACE}-{PARENT}-01", id="two-values-in-one-line"),
    ],
)
def test_invalid_traceparent(value: str) -> None:
    assert parse_traceparent(value) is None


KEY_256 = "k" * 256
VALUE_256 = "v" * 256
PUNCT = "!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"


@pytest.mark.parametrize(
    "values, expected",
    [
        pytest.param(["rojo=00f067aa0ba902b7"], "rojo=00f067aa0ba902b7", id="one"),
        pytest.param(["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", id="two"),
        pytest.param([" rojo=1 ,\tcongo=2\t "], "rojo=1,congo=2", id="optional-whitespace"),
        pytest.param(["rojo=1,,  ,congo=2,"], "rojo=1,congo=2", id="empty-members"),
        pytest.param(["rojo=1", "congo=2"], "rojo=1,congo=2", id="two-header-lines"),
        pytest.param(["rojo=1", ""], "rojo=1", id="empty-second-line"),
        pytest.param(["k= lead ing"], "k= lead ing", id="leading-and-inner-spaces-kept"),
        pytest.param(["k=trailing   "], "k=trailing", id="trailing-spaces-are-ows"),
        pytest.param([f"k={PUNCT}"], f"k={PUNCT}", id="every-punctuation-allowed"),
        pytest.param(["a-b_c*d/e9=x"], "a-b_c*d/e9=x", id="key-charset"),
        pytest.param(["tenant@vendor=x"], "tenant@vendor=x", id="multi-tenant-key"),
        pytest.param(["1tenant@vendor=x"], "1tenant@vendor=x", id="tenant-starts-with-digit"),
        pytest.param([f"{KEY_256}=x"], f"{KEY_256}=x", id="key-256"),
        pytest.param([f"k={VALUE_256}"], f"k={VALUE_256}", id="value-256"),
        pytest.param([f"{'t' * 241}@{'s' * 14}=x"], f"{'t' * 241}@{'s' * 14}=x", id="longest-tenant-and-system"),
        pytest.param([",".join(f"k{i}=v" for i in range(32))], ",".join(f"k{i}=v" for i in range(32)), id="32"),
        pytest.param(
            ["k=v"] + [f"k{i}=v" for i in range(31)],
            ",".join(["k=v"] + [f"k{i}=v" for i in range(31)]),
            id="32-over-header-lines",
        ),
        # not forwarded (None)
        pytest.param([""], None, id="empty-header"),
        pytest.param([" , ,"], None, id="only-empty-members"),
        pytest.param([",".join(f"k{i}=v" for i in range(33))], None, id="33-members"),
        pytest.param(
            [",".join(f"k{i}=v" for i in range(20)), ",".join(f"j{i}=v" for i in range(13))],
            None,
            id="33-over-header-lines",
        ),
        pytest.param(["rojo=1,congo=2,rojo=3"], None, id="duplicate-key"),
        pytest.param(["rojo=1", "rojo=1"], None, id="duplicate-over-header-lines"),
        pytest.param(["Rojo=1"], None, id="uppercase-key"),
        pytest.param(["1abc=x"], None, id="simple-key-starts-with-digit"),
        pytest.param(["_abc=x"], None, id="key-starts-with-underscore"),
        pytest.param([f"{KEY_256}k=x"], None, id="key-257"),
        pytest.param([f"k={VALUE_256}v"], None, id="value-257"),
        pytest.param([f"{'t' * 242}@s=x"], None, id="tenant-242"),
        pytest.param([f"t@{'s' * 15}=x"], None, id="system-15"),
        pytest.param(["t@1s=x"], None, id="system-starts-with-digit"),
        pytest.param(["@vendor=x"], None, id="empty-tenant"),
        pytest.param(["tenant@=x"], None, id="empty-system"),
        pytest.param(["a@b@c=x"], None, id="two-at-signs"),
        pytest.param(["rojo"], None, id="no-equals"),
        pytest.param(["rojo="], None, id="empty-value"),
        pytest.param(["=x"], None, id="empty-key"),
        pytest.param(["k=a=b"], None, id="equals-in-value"),
        pytest.param(["k=a\tb"], None, id="tab-in-value"),
        pytest.param(["k=é"], None, id="non-ascii-value"),
        pytest.param(["k=a\x7f"], None, id="del-in-value"),
        pytest.param(["ok=1,bad key=2"], None, id="one-bad-member-drops-all"),
        pytest.param(["ok=1", "BAD=2"], None, id="bad-member-on-second-line-drops-all"),
    ],
)
def test_tracestate(values: list[str], expected: str | None) -> None:
    assert parse_tracestate(values) == expected


def _ctx(*headers: tuple[str, str]) -> RequestContext:
    return RequestContext(
        request_id="r",
        method="GET",
        raw_target="/",
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        peer_ip="127.0.0.1",
        client_ip="127.0.0.1",
        scheme="http",
        host="a",
        started=0.0,
    )


def _upstream(tracer: Tracer, ctx: RequestContext) -> CIMultiDict[str]:
    tracer.begin(ctx)
    return CIMultiDict(tracer.fields(ctx, []))


@pytest.mark.parametrize(
    "flags, sent",
    [("01", "01"), ("00", "00"), ("03", "01"), ("fe", "00"), ("ff", "01")],
)
def test_only_the_sampled_bit_is_passed_on(flags: str, sent: str) -> None:
    out = _upstream(Tracer(Tracing()), _ctx(("traceparent", f"00-{TRACE}-{PARENT}-{flags}")))
    assert out["traceparent"].endswith(f"-{sent}")


def test_new_trace_is_sampled_and_ids_are_fresh() -> None:
    tracer = Tracer(Tracing())
    seen = set()
    for _ in range(100):
        ctx = _ctx()
        out = _upstream(tracer, ctx)
        assert out["traceparent"] == f"00-{ctx.trace_id}-{ctx.span_id}-01"
        assert _is_traceparent(out["traceparent"]) and "tracestate" not in out
        assert ctx.parent_id is None and "bastion.parent_span_id" not in ctx.log
        seen.add(ctx.trace_id)
    assert len(seen) == 100


def test_accept_incoming_false_restarts_and_drops_tracestate() -> None:
    ctx = _ctx(("traceparent", VALID), ("tracestate", "rojo=1"))
    out = _upstream(Tracer(Tracing(accept_incoming=False)), ctx)
    assert ctx.trace_id != TRACE and ctx.parent_id is None
    assert _is_traceparent(out["traceparent"]) and "tracestate" not in out
    assert "bastion.trace_invalid" not in ctx.log  # a policy, not a fault of the client


def test_disabled_takes_no_part() -> None:
    tracer = Tracer(Tracing(enabled=False))
    ctx = _ctx(("traceparent", VALID))
    assert _upstream(tracer, ctx) == CIMultiDict() and tracer.strips == frozenset()
    assert ctx.trace_id == "" and ctx.log == {}


def test_invalid_tracestate_is_logged_but_keeps_the_trace() -> None:
    ctx = _ctx(("traceparent", VALID), ("tracestate", "BAD=1"))
    out = _upstream(Tracer(Tracing()), ctx)
    assert ctx.trace_id == TRACE and "tracestate" not in out
    assert ctx.log["bastion.trace_invalid"] == "tracestate"


# -- end to end: a real Bastion in front of a real upstream ------------------------------------------


async def _get(proxy: Running, headers: dict[str, str] | None = None, path: str = "/t") -> int:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + path, headers=headers) as r:
        await r.read()
        return r.status


async def test_valid_traceparent_is_continued_with_bastion_as_parent(proxy: Running, upstream: EchoUpstream) -> None:
    state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert await _get(proxy, {"traceparent": VALID, "tracestate": state}) == 200
    [seen] = upstream.seen
    [sent] = seen.all("traceparent")
    version, trace_id, parent_id, flags = sent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert parent_id != PARENT and _is_traceparent(sent)
    assert seen.all("tracestate") == [state]
    [rec] = await proxy.access(1)
    assert rec["trace.id"] == TRACE
    assert rec["span.id"] == parent_id  # the upstream's parent is Bastion's span
    assert rec["bastion.parent_span_id"] == PARENT
    assert "bastion.trace_invalid" not in rec


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(f"00-{TRACE.upper()}-{PARENT}-01", id="uppercase"),
        pytest.param(f"00-{'0' * 32}-{PARENT}-01", id="zero-trace-id"),
        pytest.param(f"ff-{TRACE}-{PARENT}-01", id="version-ff"),
        pytest.param("garbage", id="garbage"),
    ],
)
async def test_invalid_traceparent_is_replaced_and_tracestate_dropped(
    proxy: Running, upstream: EchoUpstream, bad: str
) -> None:
    assert await _get(proxy, {"traceparent": bad, "tracestate": "rojo=1"}) == 200
    [seen] = upstream.seen
    [sent] = seen.all("traceparent")
    assert _is_traceparent(sent) and sent != bad
    assert TRACE not in sent.lower() and PARENT not in sent
    assert seen.all("tracestate") == []
    [rec] = await proxy.access(1)
    assert sent == f"00-{rec['trace.id']}-{rec['span.id']}-01"
    assert rec["bastion.trace_invalid"] == "traceparent" and "bastion.parent_span_id" not in rec


async def test_two_traceparent_headers_restart_the_trace(proxy: Running, upstream: EchoUpstream) -> None:
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    raw = await raw_request(
        proxy.port,
        f"GET /t HTTP/1.1\r\nHost: a\r\ntraceparent: {VALID}\r\nTraceparent: {other}\r\n"
        f"tracestate: rojo=1\r\nConnection: close\r\n\r\n".encode(),
    )
    assert parse_head(raw)[0] == 200
    [seen] = upstream.seen
    [sent] = seen.all("traceparent")
    assert TRACE not in sent and "1" * 32 not in sent and seen.all("tracestate") == []
    [rec] = await proxy.access(1)
    assert sent.split("-")[1] == rec["trace.id"]


async def test_absent_traceparent_is_created(proxy: Running, upstream: EchoUpstream) -> None:
    assert await _get(proxy, {"tracestate": "rojo=1"}) == 200  # a tracestate alone is meaningless
    [seen] = upstream.seen
    [sent] = seen.all("traceparent")
    assert _is_traceparent(sent) and sent.endswith("-01") and seen.all("tracestate") == []
    [rec] = await proxy.access(1)
    assert sent == f"00-{rec['trace.id']}-{rec['span.id']}-01"
    assert "bastion.trace_invalid" not in rec and "bastion.parent_span_id" not in rec


async def test_each_request_gets_its_own_span(proxy: Running, upstream: EchoUpstream) -> None:
    for _ in range(3):
        assert await _get(proxy, {"traceparent": VALID}) == 200
    parents = {s.header("traceparent").split("-")[2] for s in upstream.seen}  # type: ignore[union-attr]
    assert len(parents) == 3 and PARENT not in parents
    assert {r["trace.id"] for r in await proxy.access(3)} == {TRACE}


async def test_denied_request_is_logged_with_a_trace_id(proxy: Running, upstream: EchoUpstream) -> None:
    raw = await raw_request(
        proxy.port, f"TRACE / HTTP/1.1\r\nHost: a\r\ntraceparent: {VALID}\r\nConnection: close\r\n\r\n".encode()
    )
    assert parse_head(raw)[0] == 405 and upstream.seen == []
    [rec] = await proxy.access(1)
    assert rec["trace.id"] == TRACE and rec["bastion.parent_span_id"] == PARENT


async def test_websocket_handshake_carries_the_trace(proxy: Running, upstream: EchoUpstream) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url + "/ws", headers={"traceparent": VALID}) as ws:
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
    [seen] = upstream.seen
    [sent] = seen.all("traceparent")
    assert sent.split("-")[1] == TRACE and sent.split("-")[2] != PARENT


async def test_accept_incoming_false_starts_every_trace(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url, tracing={"accept_incoming": False}))
    assert await _get(proxy, {"traceparent": VALID, "tracestate": "rojo=1"}) == 200
    [seen] = upstream.seen
    [sent] = seen.all("traceparent")
    assert _is_traceparent(sent) and TRACE not in sent and seen.all("tracestate") == []
    [rec] = await proxy.access(1)
    assert sent.split("-")[1] == rec["trace.id"]


FOREIGN_HEADERS = {
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
    "X-B3-TraceId": "80f198ee56343ba864fe8b2a57d3eff7",
    "X-B3-Sampled": "1",
    "uber-trace-id": "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",
    "baggage": "tenant=admin,user.id=root",
    "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
    "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
    "x-datadog-trace-id": "1234",
}


@pytest.mark.parametrize("accept", [False, True])
async def test_other_tracing_formats_go_when_callers_traces_are_not_accepted(
    upstream: EchoUpstream, start_bastion: StartBastion, accept: bool
) -> None:
    # an upstream reading B3 after W3C would otherwise continue the client's trace, and baggage is
    # whatever the client wrote
    proxy = await start_bastion(make_config(upstream.url, tracing={"accept_incoming": accept}))
    assert await _get(proxy, {"traceparent": VALID, **FOREIGN_HEADERS}) == 200
    [seen] = upstream.seen
    forwarded = {name: seen.all(name) for name in FOREIGN_HEADERS}
    if accept:
        assert forwarded == {name: [value] for name, value in FOREIGN_HEADERS.items()}
    else:
        assert forwarded == {name: [] for name in FOREIGN_HEADERS}


def test_tracestate_is_capped_at_512_characters_long_members_first() -> None:
    long = "big=" + "x" * 200
    members = [f"k{i}=" + "v" * 40 for i in range(20)]  # 20 × ~44 = ~900 characters
    out = parse_tracestate([",".join([members[0], long, *members[1:]])])
    assert out is not None and len(out) <= 512
    kept = out.split(",")
    assert "big=" not in out and kept == members[: len(kept)]  # the long one first, then from the end
    three_long = ",".join(f"big{i}=" + "x" * 200 for i in range(3))  # 600+ characters, all members long
    assert parse_tracestate([three_long]) is None  # nothing left to send is no header at all


async def test_disabled_passes_client_headers_through(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url, tracing={"enabled": False}))
    assert await _get(proxy, {"traceparent": "whatever", "tracestate": "x"}) == 200
    [seen] = upstream.seen
    assert seen.all("traceparent") == ["whatever"] and seen.all("tracestate") == ["x"]
    [rec] = await proxy.access(1)
    assert "trace.id" not in rec and "span.id" not in rec


def test_unknown_tracing_key_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="extra"):
        make_config("http://127.0.0.1:1", tracing={"sample": True})


def test_ids_are_fresh_across_pool_refills_and_after_fork() -> None:
    import os

    from proxy import tracecontext

    ids = [tracecontext.new_ids() for _ in range(2000)]  # ~12 refills of the 4 KiB pool
    assert len({t for t, _ in ids}) == len(ids) and len({s for _, s in ids}) == len(ids)
    assert all(len(t) == 32 and len(s) == 16 for t, s in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not replay the parent's pool
        os.write(write, tracecontext.new_ids()[0].encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != tracecontext.new_ids()[0]
