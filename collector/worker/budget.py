"""Fair storage: how much disk one new core may take, enforced while it streams.

MaxUse= and KeepFree= bound the storage as a whole (SECURITY.md 12). One core that is cheap to
make and incompressible (one file mapped many times, coredump_filter 0x3f) must neither exceed
what they leave nor make room for itself by deleting other users' cores: each user with cores
is guaranteed an equal share of the room (the cores they have, up to that share, are not the
new core's to take), and the new core gets the rest, truncated while it streams (and marked
COREDUMP_TRUNCATED). The vacuum afterwards deletes from the heaviest user first, counting the
new core for its user (storage.vacuum).
"""

from __future__ import annotations

import os

from drkonqi_lite_collector import config, storage

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Callable

#: Bytes kept back for file-system block rounding and the frame's end.
SLACK = 64 * 1024
#: A core smaller than this is not worth storing: the entry says there was no room.
MIN_CORE = 64 * 1024
#: Input per flush once a core nears its budget.
PIECE = 64 * 1024


def core_budget(dir_fd: int, cfg: config.Config, uid: int) -> int:
    """Bytes on disk the new core of `uid` may take, 0 when there is no room for one."""
    max_use, keep_free = storage.vacuum_limits(dir_fd, cfg)
    per_uid: dict[int, int] = {}
    for core in storage.stored_cores(dir_fd):
        per_uid[core.uid] = per_uid.get(core.uid, 0) + core.blocks
    vfs = os.fstatvfs(dir_fd)
    free = vfs.f_frsize * vfs.f_bavail
    room = min(max_use, sum(per_uid.values()) + free - keep_free)
    others = [used for owner, used in per_uid.items() if owner != uid]
    share = room // (len(others) + 1)
    budget = room - sum(min(used, share) for used in others) - SLACK
    return budget if budget >= MIN_CORE else 0


def _worst_case(n: int) -> int:
    """zstd's output for `n` input bytes at worst (raw blocks: 3 bytes per 128 KiB block,
    frame header and checksum)."""
    return n + (n >> 15) + 64


class BudgetedSink:
    """Feeds the core to `write` (a zstd stream writer, or the file) while what is on disk,
    `tell()`, stays within `budget`. Returns False once the budget is spent: the caller stops
    reading and marks the core truncated.

    Compressed output lags its input (zstd buffers a block, a worker thread a job or two), so
    the input since the last flush is counted as if incompressible; only when that could
    overrun the budget is the compressor flushed to learn the real size. A core that compresses
    well is flushed rarely; one that does not is cut within a chunk of the budget.
    """

    __slots__ = ("_budget", "_flush", "_pending", "_tell", "_write")

    def __init__(
        self,
        write: Callable[[memoryview], object],
        tell: Callable[[], int],
        budget: int,
        flush: Callable[[], object] | None = None,
    ) -> None:
        self._write = write
        self._tell = tell
        self._flush = flush
        self._budget = budget
        self._pending = 0

    def _bound(self, n: int) -> int:
        """Bytes on disk that `n` more input bytes may become."""
        return n if self._flush is None else _worst_case(n)

    def __call__(self, chunk: memoryview) -> bool:
        if self._tell() + self._bound(self._pending + len(chunk)) <= self._budget:
            self._write(chunk)
            self._pending += len(chunk)
            return True
        # Near the budget: learn the real size, then go on in pieces, flushing each, so that
        # what compresses well goes on and what does not is cut within a piece of the budget.
        if self._flush is not None:
            self._flush()
        self._pending = 0
        for off in range(0, len(chunk), PIECE):
            piece = chunk[off : off + PIECE]
            room = self._budget - self._tell()
            if self._bound(len(piece)) > room:
                fit = room if self._flush is None else room - (room >> 15) - 64
                if fit > 0:
                    self._write(piece[:fit])
                return False
            self._write(piece)
            if self._flush is not None:
                self._flush()
        return True
