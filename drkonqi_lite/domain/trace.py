"""The quick stack trace of a crash record, parsed into threads and frames.

MESSAGE carries the trace in systemd's format (DESIGN.md §2.1): blocks of `Stack trace of thread
TID:` followed by `#N  0x%016x FUNC (MODULE + 0xOFF)` lines, innermost frame first, the
crashing thread first, blocks separated by a blank line. `FUNC` is `n/a` when the unwinder had
no symbol, and so is `MODULE` for an address outside every module. Pure: the text is hostile
input, so every count and length is bounded here.
"""

from __future__ import annotations

import dataclasses
import re

#: Bounds (a hostile or huge process must not make a huge report).
MAX_THREADS = 64
MAX_FRAMES = 128
MAX_NAME = 512

_THREAD = re.compile(r"^Stack trace of thread (\d+):\s*$")
_FRAME = re.compile(
    r"^\s*#(\d+)\s+0x([0-9a-fA-F]+)\s+(\S+)(?:\s+\((.*) \+ 0x([0-9a-fA-F]+)\))?\s*$"
)
_UNKNOWN = frozenset({"n/a", "??", ""})


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One frame: the absolute pc, the symbol and module when known, the module-relative
    offset (None without a module)."""

    pc: int
    function: str | None
    module: str | None
    offset: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class Thread:
    """One thread's frames, innermost first; `crashed` for the first block."""

    tid: int
    frames: tuple[Frame, ...]
    crashed: bool


def _frame(match: re.Match[str]) -> Frame:
    func, module = match[3], match[4]
    return Frame(
        pc=int(match[2], 16),
        function=None if func in _UNKNOWN else func[:MAX_NAME],
        module=None if module is None or module in _UNKNOWN else module[:MAX_NAME],
        offset=int(match[5], 16) if match[5] is not None and module not in _UNKNOWN else None,
    )


def parse_threads(backtrace: str) -> list[Thread]:
    """The threads of a quick stack trace, crashing thread first; at most MAX_THREADS threads of
    at most MAX_FRAMES frames. Lines that fit neither pattern are skipped."""
    threads: list[Thread] = []
    tid: int | None = None
    frames: list[Frame] = []

    def close() -> None:
        if tid is not None and len(threads) < MAX_THREADS:
            threads.append(Thread(tid, tuple(frames), crashed=not threads))

    for line in backtrace.split("\n"):
        head = _THREAD.match(line)
        if head is not None:
            close()
            if len(threads) >= MAX_THREADS:
                return threads
            tid, frames = int(head[1]), []
            continue
        if tid is not None and len(frames) < MAX_FRAMES:
            match = _FRAME.match(line)
            if match is not None:
                frames.append(_frame(match))
    close()
    return threads
