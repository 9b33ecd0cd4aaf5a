"""A size-capped, append-only disk spool of NDJSON lines, replayed oldest first.

Records are written to numbered segment files (`000000000001.ndjson` …); reading takes the oldest
sealed segment whole, and a segment is deleted only once every line of it has been handed back as
delivered, so a crash replays at most one segment twice (at-least-once, never lost). A spool left
behind by an earlier run is picked up at start. Lines never contain a raw newline (orjson escapes
them), so a newline is a safe record separator; a torn last line after a crash is skipped.

Hand-written: persist-queue and diskcache are general key/value stores with SQLite underneath, a
poor fit for an append-only byte log that is read in order and must cap its size exactly.
Only the sink's own thread touches a spool, so there is no locking.
"""

from __future__ import annotations

import os
from pathlib import Path

_SEGMENT = 4 * 1024 * 1024
_SUFFIX = ".ndjson"


class Spool:
    def __init__(self, directory: Path, max_size: int, segment_size: int = _SEGMENT) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_size = max_size
        self.segment_size = min(segment_size, max(max_size // 4, 4096))
        self.bytes = 0
        self.records = 0
        self.dropped = 0  # refused because the spool was full
        self._sealed: list[Path] = []
        for path in sorted(self.dir.glob("*" + _SUFFIX)):
            size = path.stat().st_size
            if size == 0:
                path.unlink()
                continue
            self._sealed.append(path)
            self.bytes += size
            with path.open("rb") as f:
                self.records += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        self._seq = int(self._sealed[-1].stem) if self._sealed else 0
        self._active: Path | None = None
        self._active_file: int | None = None  # an fd, written with os.write (no Python buffering)
        self._active_size = 0
        self._reading: list[bytes] = []  # lines of the segment being replayed
        self._reading_path: Path | None = None
        self._reading_pos = 0

    def __len__(self) -> int:
        return self.records

    def append(self, lines: list[bytes]) -> int:
        """Writes what fits under `max_size`; returns how many lines were refused (and counted)."""
        if not lines:
            return 0
        fitting: list[bytes] = []
        size = 0
        for line in lines:
            if self.bytes + size + len(line) > self.max_size:
                break
            fitting.append(line)
            size += len(line)
        refused = len(lines) - len(fitting)
        self.dropped += refused
        if fitting:
            self._write(b"".join(fitting), len(fitting))
        return refused

    def _write(self, data: bytes, count: int) -> None:
        if self._active_file is None or self._active_size >= self.segment_size:
            self._seal()
            self._seq += 1
            self._active = self.dir / f"{self._seq:012d}{_SUFFIX}"
            self._active_file = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._active_size = 0
        view = memoryview(data)
        while view:
            n = os.write(self._active_file, view)
            view = view[n:]
        self._active_size += len(data)
        self.bytes += len(data)
        self.records += count

    def _seal(self) -> None:
        if self._active_file is not None and self._active is not None:
            os.close(self._active_file)
            self._sealed.append(self._active)
        self._active_file = None
        self._active = None
        self._active_size = 0

    def peek(self, limit: int) -> list[bytes]:
        """Up to `limit` of the oldest lines, left in place until `commit`."""
        if self._reading_pos >= len(self._reading):
            self._open_next()
        return self._reading[self._reading_pos : self._reading_pos + limit]

    def commit(self, count: int) -> None:
        """The first `count` lines returned by `peek` were delivered (or handed to a resend window)."""
        taken = self._reading[self._reading_pos : self._reading_pos + count]
        self._reading_pos += len(taken)
        self.records -= len(taken)
        self.bytes -= sum(len(line) for line in taken)
        if self._reading_pos >= len(self._reading) and self._reading_path is not None:
            self._reading_path.unlink(missing_ok=True)
            self._reading_path = None
            self._reading = []
            self._reading_pos = 0

    def _open_next(self) -> None:
        if self._reading_path is not None:  # a segment whose last lines were torn: drop the rest
            self.commit(len(self._reading) - self._reading_pos)
        if not self._sealed:
            self._seal()  # replay catches up with the writer: read the active segment too
        if not self._sealed:
            return
        path = self._sealed.pop(0)
        data = path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" after a final newline; a torn line otherwise
        if tail:
            self.bytes -= len(tail)
        self._reading = [line + b"\n" for line in lines]
        self._reading_path = path
        self._reading_pos = 0
        if not self._reading:
            path.unlink(missing_ok=True)
            self._reading_path = None

    def close(self) -> None:
        self._seal()
