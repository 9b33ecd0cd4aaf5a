"""The disk spool: order, size cap (counted refusals), crash leftovers, and replay across restarts."""

from __future__ import annotations

from pathlib import Path

from proxy.logship.spool import Spool


def lines(a: int, b: int) -> list[bytes]:
    return [b'{"n":%d}\n' % i for i in range(a, b)]


def drain(spool: Spool, batch: int = 7) -> list[bytes]:
    out: list[bytes] = []
    while batch_ := spool.peek(batch):
        out += batch_
        spool.commit(len(batch_))
    return out


def test_replays_in_order_across_segments(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_size=1 << 20, segment_size=64)
    s.append(lines(0, 50))
    s.append(lines(50, 100))
    assert len(s) == 100 and len(list(tmp_path.glob("*.ndjson"))) > 1
    assert drain(s) == lines(0, 100)
    assert len(s) == 0 and s.bytes == 0 and not list(tmp_path.glob("*.ndjson"))


def test_appends_while_replaying_come_after(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_size=1 << 20, segment_size=64)
    s.append(lines(0, 10))
    first = s.peek(3)
    s.commit(3)
    s.append(lines(10, 20))
    assert first + drain(s) == lines(0, 20)


def test_uncommitted_lines_are_peeked_again(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_size=1 << 20)
    s.append(lines(0, 5))
    assert s.peek(3) == lines(0, 3)
    assert s.peek(3) == lines(0, 3)  # not committed: the collector did not take them
    s.commit(2)
    assert s.peek(10) == lines(2, 5)


def test_the_size_cap_refuses_and_counts(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_size=100)
    refused = s.append(lines(0, 20))  # each line is 9-10 bytes
    assert refused == 20 - len(s) and s.dropped == refused and s.bytes <= 100
    assert drain(s) == lines(0, len(lines(0, 20)) - refused)


def test_a_restarted_process_finds_the_spool_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_size=1 << 20)
    s.append(lines(0, 10))
    s.close()
    newest = sorted(tmp_path.glob("*.ndjson"))[-1]
    with newest.open("ab") as f:
        f.write(b'{"n":10')  # the process died in the middle of a write
    again = Spool(tmp_path, max_size=1 << 20)
    assert len(again) == 10
    assert drain(again) == lines(0, 10)
    assert not list(tmp_path.glob("*.ndjson"))
