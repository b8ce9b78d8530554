"""Where the drained core goes: into the entry (Storage=journal), a zstd file, or nowhere.

The core streams once from the kernel's pipe (corestream.py), through the unwinder's tap, into
its destination. A file is written to an O_TMPFILE inode and linked under its final name only
once complete (storage.TempFile, SECURITY.md 10); the crashing user gets a read ACL on it only
when they may read it (handler.may_read_core).
"""

from __future__ import annotations

import errno
import os

from drkonqi_lite_collector import config, storage
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.schema import CORE_SUFFIX, CoreMissing
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.worker import budget, zstd
from drkonqi_lite_collector.worker.corestream import CHUNK, StreamResult, stream_core, write_error

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from drkonqi_lite_collector.worker.corestream import Tap

#: zstd job size with a worker thread: bounds its memory (~2 jobs in flight) well under the
#: 64 MiB the collector may use, whatever the core's size.
ZSTD_JOB_SIZE = 2 * 1024 * 1024


class Kept:
    """How draining went, and where the core is now: a file `name` in the storage directory,
    an in-entry `blob` (a memfd), or neither (`result.missing` may say why)."""

    __slots__ = ("blob", "name", "result")

    def __init__(
        self, result: StreamResult, name: str | None = None, blob: journal.Blob | None = None
    ) -> None:
        self.result = result
        self.name = name
        self.blob = blob


def discard(stdin: int, cfg: config.Config, tap: Tap | None, missing: str | None = None) -> Kept:
    """Drain the core for the tap alone (Storage=none, rate limited, storage unusable)."""
    result = stream_core(stdin, None, cfg.process_size_max, tap)
    if missing is not None:
        result.missing = missing
    return Kept(result)


def store(
    stdin: int,
    tap: Tap | None,
    cfg: config.Config,
    state_fd: int | None,
    name: str,
    reader: int | None,
    owner: int,
) -> Kept:
    """Drain the core into the configured storage, as `name` (a file) or into the entry;
    `reader`: the uid that gets a read ACL on the file; `owner`: whose share of the storage
    it takes (budget.py)."""
    if cfg.storage == config.Storage.NONE:
        return discard(stdin, cfg, tap)
    if cfg.storage == config.Storage.JOURNAL:
        # In the entry, the core shares journald's per-entry limit with every other field.
        limit = min(cfg.process_size_max, cfg.journal_size_max, journal.CORE_IN_ENTRY_MAX)
        return _into_memfd(stdin, tap, limit)
    try:
        if state_fd is None:
            raise OSError(errno.ENOENT, "no state directory")
        core_fd = storage.open_storage(state_fd)
    except OSError as e:
        log(f"storage directory unusable: {e}")
        return discard(stdin, cfg, tap, CoreMissing.WRITE_FAILED)
    try:
        vacuum(state_fd, cfg, None)
        try:
            room = budget.core_budget(core_fd, cfg, owner)
            if not room:
                raise OSError(errno.ENOSPC, "MaxUse=/KeepFree= leave no room for a core")
            tmp = storage.TempFile(core_fd)
        except OSError as e:
            kept = discard(stdin, cfg, tap, write_error(e))
            kept.result.error = kept.result.error or f"not storing the core: {e.strerror}"
            return kept
        with tmp:
            result = _write(tmp.fd, stdin, tap, cfg, room)
            if result.missing or not result.size:
                return Kept(result)
            return _link(
                tmp, result, name if cfg.compress else name.removesuffix(CORE_SUFFIX), reader
            )
    finally:
        os.close(core_fd)


def _into_memfd(stdin: int, tap: Tap | None, limit: int) -> Kept:
    mem = os.memfd_create("core", os.MFD_CLOEXEC)
    result = stream_core(stdin, lambda c: journal.write_all(mem, c), limit, tap)
    if result.missing or not result.size:
        os.close(mem)
        return Kept(result)
    return Kept(result, blob=journal.Blob(mem, result.size))


def _write(fd: int, stdin: int, tap: Tap | None, cfg: config.Config, room: int) -> StreamResult:
    """The core into `fd`, compressed when configured, at most `room` bytes on disk (then
    truncated); a failed flush marks it missing."""
    limit = min(cfg.process_size_max, cfg.external_size_max)
    # Buffered: zstd emits a block header and a block per write (two syscalls each).
    out = os.fdopen(fd, "wb", buffering=CHUNK, closefd=False)
    writer = None
    if cfg.compress:
        writer = compressor(cfg).stream_writer(out, closefd=False)
        flush_block = writer.flush
        sink = budget.BudgetedSink(
            writer.write, out.tell, room, lambda: flush_block(zstd.FLUSH_BLOCK)
        )
    else:
        sink = budget.BudgetedSink(out.write, out.tell, room)
    result = stream_core(stdin, sink, limit, tap)
    if not result.missing:
        try:
            if writer is not None:
                writer.flush(zstd.FLUSH_FRAME)
            out.flush()
        except OSError as e:
            result.missing = write_error(e)
    return result


def _link(tmp: storage.TempFile, result: StreamResult, name: str, reader: int | None) -> Kept:
    if reader is not None:
        try:
            storage.grant_read_acl(tmp.fd, reader)
        except OSError as e:
            log(f"could not grant read access to uid {reader}: {e}")
    try:
        tmp.commit(name)
    except OSError as e:
        result.missing = CoreMissing.WRITE_FAILED
        result.error = f"linking {name}: {e}"
        return Kept(result)
    return Kept(result, name=name)


def compressor(cfg: config.Config) -> zstd.ZstdCompressor:
    """zstd at the configured level; with worker threads, compression runs in C threads while
    this thread reads the pipe and writes the file (both cores busy on a big core)."""
    if cfg.compress_threads <= 0:
        return zstd.ZstdCompressor(level=cfg.compress_level, write_checksum=True)
    params = zstd.ZstdCompressionParameters.from_level(
        cfg.compress_level,
        threads=cfg.compress_threads,
        job_size=ZSTD_JOB_SIZE,
        write_checksum=True,
    )
    return zstd.ZstdCompressor(compression_params=params)


def vacuum(state_fd: int | None, cfg: config.Config, keep: str | None) -> None:
    """Remove the oldest cores beyond the configured limits, never `keep`."""
    if state_fd is None:
        return
    try:
        core_fd = storage.open_storage(state_fd, create=False)
    except OSError:
        return
    try:
        for name in storage.vacuum(core_fd, cfg, frozenset({keep} if keep else ())):
            log(f"vacuumed {name}")
    except OSError as e:
        log(f"vacuuming failed: {e}")
    finally:
        os.close(core_fd)


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
        return f.read().strip().replace("-", "")
