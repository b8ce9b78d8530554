"""One crash, start to finish: identity, /proc, the core, the stack trace, the entry.

The order matters. /proc/PID exists only while the kernel is still writing the core into our
stdin (with core_pipe_limit=0 the process is reaped as soon as the pipe is drained), so metadata
and the module files are captured first, then the pipe is drained. What the crashing user may
later read is decided from facts proven through the pidfd, and fails closed.
"""

from __future__ import annotations

import errno
import os
import pwd

from drkonqi_lite_collector import __version__, config
from drkonqi_lite_collector.journal import entry, restriction, spool
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.schema import CORE_SUFFIX, CoreMissing, Field, core_filename
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.stage.argv import KernelArgs
from drkonqi_lite_collector.worker import budget, ratelimit, storage, zstd
from drkonqi_lite_collector.worker.corestream import CHUNK, StreamResult, stream_core
from drkonqi_lite_collector.worker.procinfo import Process, ProcInfo

#: uid_is_system(): uids up to SYSTEM_UID_MAX (login.defs) belong to the system.
SYSTEM_UID_MAX = 999
#: The dedicated system user that sends entries for crashes of system users (sysusers.d).
COLLECTOR_USER = "drkonqi-lite"
WAKEUP = "/run/user/{uid}/drkonqi-lite/wakeup"


#: The collector avoids `typing` at run time (it pulls in re, contextlib and more: ~6 ms of a
#: small crash's budget); mypy treats this name like typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from drkonqi_lite_collector.worker.corestream import Tap

    class TraceResult(Protocol):
        """A stack trace in systemd's format, the modules, and the package, for the entry."""

        @property
        def text(self) -> str: ...
        @property
        def modules(self) -> str: ...
        @property
        def status(self) -> str: ...
        @property
        def package_name(self) -> str | None: ...
        @property
        def package_version(self) -> str | None: ...
        @property
        def package_json(self) -> str | None: ...
        @property
        def for_user(self) -> TraceResult | None: ...

    class Tracer(Protocol):
        """The stack-trace engine (stacktrace.Engine)."""

        def start(self, proc_dir_fd: int | None) -> Tap: ...
        def finish(
            self, tap: Tap, timeout: float, hide: Callable[[int, str, bool], bool] | None = None
        ) -> TraceResult: ...


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
        return f.read().strip().replace("-", "")


def may_read_core(args: KernelArgs, info: ProcInfo, verified: bool) -> tuple[bool, str]:
    """systemd's rule (CVE-2022-4415): the user may read the core only if dump mode is 1,
    AT_SECURE is 0, uid == euid and gid == egid — and only if identity was proven."""
    if not verified:
        return False, "identity of the crashed process could not be proven"
    if args.dumpable != 1:
        return False, f"dump mode {args.dumpable} (set-uid or non-dumpable process)"
    if info.at_secure() != 0:
        return False, "AT_SECURE set (set-uid, set-gid or file capabilities)"
    uids, gids = info.status_ids(b"Uid"), info.status_ids(b"Gid")
    if len(uids) < 2 or len(gids) < 2 or uids[0] != uids[1] or gids[0] != gids[1]:
        return False, "real and effective ids differ"
    return True, ""


def sender_credentials(uid: int, gid: int) -> journal.Credentials:
    """Regular users' entries are sent as themselves (their journal); system users' as ours."""
    if uid > SYSTEM_UID_MAX:
        return journal.Credentials(uid, gid)
    try:
        pw = pwd.getpwnam(COLLECTOR_USER)
    except KeyError:
        return journal.Credentials(0, 0)  # no dedicated user: root's entries go to system.journal
    return journal.Credentials(pw.pw_uid, pw.pw_gid)


class Outcome:
    """The entry being built, and where its core went."""

    __slots__ = ("blob", "fields", "stored", "user_fields")

    def __init__(self, fields: entry.Fields) -> None:
        self.fields = fields
        self.blob: journal.Blob | None = None
        self.stored: str | None = None
        #: The crashing user's own entry when it differs from the full one (restricted crash).
        self.user_fields: entry.Fields | None = None


def handle(
    args: KernelArgs,
    stdin: int,
    tracer: Tracer | None,
    notify_sent: Callable[[], object] = lambda: None,
    process: Process | None = None,
) -> int:
    """Process one crash whose core is readable on `stdin`. Returns the exit status (0 when
    the entry was sent or spooled). `process`: handles opened earlier by the kernel-facing
    stage; by default they are opened here."""
    paths = config.Paths(args.prefix)
    cfg = config.load(paths)
    for warning in cfg.warnings:
        log(f"configuration: {warning}")
    outcome = Outcome(fields=entry.kernel_fields(args))
    fields = outcome.fields
    state_fd = open_state_dir(paths)
    try:
        with process or Process(args.pid, args.pidfd) as proc:
            # Cheap before expensive (SECURITY.md 11): the loop limit needs only the kernel's
            # uid and the exe link. A limited crash gets no unwinder and no big /proc reads.
            verdict = _rate_limit(state_fd, cfg, args.uid, proc.exe_link() or b"n/a")
            limited = verdict is not None and verdict.limited
            # The unwinder child first: it loads libdw while /proc is read and the core streams.
            tap = tracer.start(proc.dirfd) if tracer is not None and not limited else None
            info = proc.capture(args.tid, light=limited)
            identity = proc.verify(info, args.uid, args.gid)
            pidfd_id = proc.pidfd_id() if identity.verified else None
        if limited:
            _release(stdin)
        if pidfd_id is not None:
            # systemd 258's meaning: /proc was read through the kernel's own pidfd (%F).
            fields += [(Field.BY_PIDFD, 1), (Field.PIDFDID, pidfd_id)]
        if not identity.verified:
            log(f"PID {args.pid}: {identity.reason}; recording kernel facts only")
            # Fail closed: what /proc said may belong to another process (CVE-2025-4598).
            # That includes comm: keeping it would name the core and MESSAGE after whoever
            # now holds the PID.
            info = ProcInfo()
        fields.extend(entry.proc_fields(info))
        fields.append((Field.IDENTITY, "verified" if identity.verified else "unverified"))
        comm = info.comm or b"n/a"
        allowed, why_not = may_read_core(args, info, identity.verified)
        hidden = restriction.kernel_hides(args, info, identity.verified)
        if verdict is not None:
            fields.append((Field.CRASH_COUNT, verdict.crashes))

        result = _store_core(
            args,
            cfg,
            state_fd,
            comm,
            outcome,
            allowed,
            limited,
            tap if not limited else None,
            stdin,
        )
        if not limited:
            fields.append((Field.CORE_SIZE, result.size))
        if tap is not None and tap.siginfo is not None and tap.siginfo[0] == args.signal:
            fields.append((Field.CODE, tap.siginfo[1]))
        if result.truncated:
            fields.append((Field.TRUNCATED, 1))
        if outcome.stored is None and outcome.blob is None:
            reason = (
                CoreMissing.RATE_LIMITED
                if limited
                else result.missing
                or (
                    CoreMissing.STORAGE_NONE
                    if cfg.storage == config.Storage.NONE
                    else CoreMissing.EMPTY
                )
            )
            fields.append((Field.CORE_MISSING, reason))
        if result.error:
            log(f"PID {args.pid}: {result.error}")
        if not allowed:
            fields += [(Field.RESTRICTED, 1), (Field.RESTRICTED_REASON, why_not)]

        trace = ""
        user_trace: TraceResult | None = None
        if tracer is not None and tap is not None and not limited and result.size:
            gids = frozenset((args.gid, *info.status_ids(b"Groups")))
            hide = restriction.unreadable_by(args.uid, gids)
            traced = tracer.finish(tap, cfg.stacktrace_timeout, hide)
            trace = traced.text
            fields += trace_fields(traced)
            user_trace = traced.for_user
        elif limited:
            fields.append((Field.STACKTRACE, "none: rate limited"))
        fields += [(Field.VERSION, __version__), (Field.MESSAGE, entry.message(args, comm, trace))]
        if hidden:
            outcome.user_fields = restriction.user_view(
                fields, entry.message(args, comm, ""), outcome.blob is not None
            )
        elif user_trace is not None:
            mine = [
                *trace_fields(user_trace),
                (Field.MESSAGE, entry.message(args, comm, user_trace.text)),
            ]
            outcome.user_fields = restriction.with_user_trace(fields, mine)
        status = deliver(args, state_fd, outcome, notify_sent)
        _vacuum(state_fd, cfg, outcome.stored)
        return status
    finally:
        if outcome.blob is not None:
            os.close(outcome.blob.fd)
        if state_fd is not None:
            os.close(state_fd)


def _rate_limit(
    state_fd: int | None, cfg: config.Config, uid: int, exe: bytes
) -> ratelimit.Verdict | None:
    """Count this crash; None when the state is unusable (then nothing is limited)."""
    try:
        if state_fd is None:
            raise OSError(errno.ENOENT, "no state directory")
        rl_fd = storage.open_subdir(state_fd, config.RATELIMIT_SUBDIR, mode=0o700)
        try:
            return ratelimit.check(
                rl_fd,
                uid,
                exe,
                cfg.rate_limit_interval,
                cfg.rate_limit_burst,
                user_burst=cfg.rate_limit_user_burst,
            )
        finally:
            os.close(rl_fd)
    except OSError as e:
        log(f"rate limit state unusable, not limiting: {e}")
        return None


def _release(stdin: int) -> None:
    """Let go of the kernel's pipe unread: the kernel stops dumping (EPIPE) and the crashed
    process is released at once, however large its core would have been."""
    try:
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    os.dup2(null, stdin, inheritable=False)
    os.close(null)


def trace_fields(traced: TraceResult) -> entry.Fields:
    """STACKTRACE, MODULES and the package fields of a stack trace (not MESSAGE)."""
    out: entry.Fields = [(Field.STACKTRACE, traced.status)]
    if traced.modules:
        out.append((Field.MODULES, traced.modules))
    for name, value in (
        (Field.PACKAGE_NAME, traced.package_name),
        (Field.PACKAGE_VERSION, traced.package_version),
        (Field.PACKAGE_JSON, traced.package_json),
    ):
        if value:
            out.append((name, value))
    return out


def open_state_dir(paths: config.Paths) -> int | None:
    """The state directory, or None when it is unusable (a symlink, writable by others, not
    creatable). The crash is then still recorded, only without core, rate limit and spool."""
    try:
        return storage.open_dir(paths.state_dir, create=True)
    except OSError as e:
        log(f"state directory unusable, recording the crash without a core: {e}")
        return None


def _store_core(
    args: KernelArgs,
    cfg: config.Config,
    state_fd: int | None,
    comm: bytes,
    outcome: Outcome,
    allowed: bool,
    limited: bool,
    tap: Tap | None,
    stdin: int,
) -> StreamResult:
    """Drain stdin into the configured storage; fills outcome.stored / outcome.blob."""
    limit = min(
        cfg.process_size_max,
        # In the entry, the core shares journald's per-entry limit with every other field.
        min(cfg.journal_size_max, journal.CORE_IN_ENTRY_MAX)
        if cfg.storage == config.Storage.JOURNAL
        else cfg.external_size_max,
    )
    if limited:
        return StreamResult()  # released unread (_release)
    if cfg.storage == config.Storage.NONE:
        return stream_core(stdin, None, cfg.process_size_max, tap)
    if cfg.storage == config.Storage.JOURNAL:
        mem = os.memfd_create("core", os.MFD_CLOEXEC)
        result = stream_core(stdin, lambda c: journal.write_all(mem, c), limit, tap)
        if result.missing or not result.size:
            os.close(mem)
        else:
            outcome.blob = journal.Blob(mem, result.size)
        return result

    try:
        if state_fd is None:
            raise OSError(errno.ENOENT, "no state directory")
        core_fd = storage.open_storage(state_fd)
    except OSError as e:
        log(f"storage directory unusable: {e}")
        result = stream_core(stdin, None, cfg.process_size_max, tap)
        result.missing = CoreMissing.WRITE_FAILED
        return result
    try:
        _vacuum(state_fd, cfg, None)
        try:
            room = budget.core_budget(core_fd, cfg, args.uid)
            if not room:
                raise OSError(errno.ENOSPC, "MaxUse=/KeepFree= leave no room for a core")
            tmp = storage.TempFile(core_fd)
        except OSError as e:
            result = stream_core(stdin, None, cfg.process_size_max, tap)
            result.missing = (
                CoreMissing.DISK_FULL
                if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else CoreMissing.WRITE_FAILED
            )
            result.error = result.error or f"not storing the core: {e.strerror}"
            return result
        with tmp:
            # Buffered: zstd emits a block header and a block per write (two syscalls each).
            out = os.fdopen(tmp.fd, "wb", buffering=CHUNK, closefd=False)
            writer = None
            if cfg.compress:
                cctx = compressor(cfg)
                writer = cctx.stream_writer(out, closefd=False)
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
                    result.missing = (
                        CoreMissing.DISK_FULL
                        if e.errno in (errno.ENOSPC, errno.EDQUOT)
                        else CoreMissing.WRITE_FAILED
                    )
            if result.missing or not result.size:
                return result
            if allowed and args.uid != 0:
                try:
                    storage.grant_read_acl(tmp.fd, args.uid)
                except OSError as e:
                    log(f"could not grant read access to uid {args.uid}: {e}")
            name = core_filename(comm, args.uid, boot_id(), args.pid, args.timestamp_us)
            if not cfg.compress:
                name = name.removesuffix(CORE_SUFFIX)
            try:
                tmp.commit(name)
            except OSError as e:
                result.missing = CoreMissing.WRITE_FAILED
                result.error = f"linking {name}: {e}"
                return result
            outcome.stored = name
            outcome.fields.append(
                (Field.FILENAME, str(storage.storage_path(config.Paths(args.prefix), name)))
            )
            return result
    finally:
        os.close(core_fd)


#: zstd job size with a worker thread: bounds its memory (~2 jobs in flight) well under the
#: 64 MiB the collector may use, whatever the core's size.
ZSTD_JOB_SIZE = 2 * 1024 * 1024


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


def _vacuum(state_fd: int | None, cfg: config.Config, keep: str | None) -> None:
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


def deliver(
    args: KernelArgs, state_fd: int | None, outcome: Outcome, notify_sent: Callable[[], object]
) -> int:
    """Send the entry (after any spooled ones), or spool it. 0 unless it was lost.

    A restricted crash has two: the full one as the collector's system user (system journal,
    root and the admin groups read it), then the user's own (restriction.py)."""
    creds = sender_credentials(args.uid, args.gid)
    wakeup = WAKEUP.format(uid=args.uid) if args.uid > SYSTEM_UID_MAX else None
    full = [*outcome.fields, *([(Field.COREDUMP, outcome.blob)] if outcome.blob else [])]
    sends: list[tuple[list[tuple[str, journal.FieldValue | journal.Blob]], journal.Credentials]]
    sends = [(full, creds)]
    admin = sender_credentials(0, 0)
    if outcome.user_fields is not None and creds != admin:
        sends = [(full, admin), ([*outcome.user_fields], creds)]
    try:
        if state_fd is None:
            raise OSError(errno.ENOENT, "no state directory")
        spool_fd = storage.open_subdir(state_fd, config.SPOOL_SUBDIR, mode=0o700)
    except OSError as e:
        spool_fd = None
        log(f"spool directory unusable: {e}")
    try:
        backlog = spool_fd is not None and bool(spool.pending(spool_fd))
        if backlog and spool_fd is not None:
            _sent, left = spool.replay(spool_fd, journal.send_as)
            backlog = left != 0
        status = 0
        for i, (fields, who) in enumerate(sends):
            # Only the user's own entry wakes their app: it is the one the app can read.
            poke = wakeup if i == len(sends) - 1 else None
            status |= _send_or_spool(args, spool_fd, fields, who, backlog, poke)
        if status == 0:
            notify_sent()
        return status
    finally:
        if spool_fd is not None:
            os.close(spool_fd)


def _send_or_spool(
    args: KernelArgs,
    spool_fd: int | None,
    fields: list[tuple[str, journal.FieldValue | journal.Blob]],
    creds: journal.Credentials,
    backlog: bool,
    wakeup: str | None,
) -> int:
    """One entry to journald as `creds`, or into the spool; 0 unless it was lost."""
    payload = journal.build_payload(entry.bounded(fields))
    try:
        err = errno.EAGAIN if backlog else journal.send_as(payload, creds, wakeup=wakeup)
        if err == 0:
            return 0
        if spool_fd is None:
            log(f"crash of PID {args.pid} DROPPED: journald: {os.strerror(err)}, no spool")
            return 1
        try:
            name = spool.spool(spool_fd, journal.payload_bytes(payload), creds)
        except OSError as e:
            log(f"crash of PID {args.pid} DROPPED: journald: {os.strerror(err)}; spool: {e}")
            return 1
        log(f"journald unreachable ({os.strerror(err)}): crash of PID {args.pid} spooled as {name}")
        return 0
    finally:
        if isinstance(payload, int):
            os.close(payload)
