"""Hot reload of the access rules: a file watcher (watchfiles) and SIGHUP both recompile.

The new rule set is loaded and compiled completely (in a thread, off the event loop) before one
atomic swap of `PolicyHolder.current`; an invalid set keeps the old one, logs every error, and
readiness stays green. A request reads the holder once, so it is decided by one rule set from
start to end. The count of reloads and the last error are shown on the admin listener.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import time
from pathlib import Path
from typing import Any

from proxy.policy.compiler import PolicyError, PolicySet, compile_files
from proxy.policy.holder import PolicyHolder

log = logging.getLogger("bastion.rules")


def expand(patterns: tuple[str, ...], base: Path) -> list[Path]:
    """The rule files named by `rules:` globs, relative to the config file, sorted for determinism."""
    out: set[Path] = set()
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        out.update(Path(p) for p in glob.glob(full, recursive=True) if p.endswith((".yaml", ".yml")))
    return sorted(out)


def load_policy(patterns: tuple[str, ...], base: Path) -> PolicySet:
    """Compile the configured rule files; PolicyError (with file:line messages) when they are bad."""
    paths = expand(patterns, base)
    if not paths:
        raise PolicyError([f"rules: no rule files match {', '.join(patterns)} (relative to {base})"])
    return compile_files(paths)


class RuleReloader:
    def __init__(self, patterns: tuple[str, ...], base: Path, holder: PolicyHolder) -> None:
        self.patterns = patterns
        self.base = base
        self.holder = holder
        self.reloads = 0
        self.failures = 0
        self.last_error: list[str] | None = None
        self.last_reload: float | None = None
        self._lock = asyncio.Lock()

    def status(self) -> dict[str, Any]:
        policy = self.holder.current
        return {
            "files": [str(p) for p in expand(self.patterns, self.base)],
            "rules": len(getattr(policy, "rules", ())),
            "reloads": self.reloads,
            "failures": self.failures,
            "last_reload": self.last_reload,
            "last_error": self.last_error,
        }

    async def reload(self, why: str) -> bool:
        async with self._lock:
            try:
                new = await asyncio.to_thread(load_policy, self.patterns, self.base)
            except PolicyError as exc:
                self.failures += 1
                self.last_error = exc.messages
                log.error(
                    "rule reload failed; keeping the previous rules",
                    extra={"reason": why, "errors": exc.messages, "event.action": "rules-reload-failed"},
                )
                return False
            self.holder.swap(new)
            self.reloads += 1
            self.last_error = None
            self.last_reload = time.time()
            log.info(
                "rules reloaded",
                extra={"reason": why, "rules": len(getattr(new, "rules", ())), "event.action": "rules-reloaded"},
            )
            return True

    async def watch(self, stop: asyncio.Event) -> None:
        from watchfiles import awatch

        dirs = sorted({str(p.parent) for p in expand(self.patterns, self.base)} or {str(self.base)})
        async for _changes in awatch(
            *dirs, stop_event=stop, debounce=200, watch_filter=lambda _c, p: p.endswith((".yaml", ".yml"))
        ):
            await self.reload("file change")
