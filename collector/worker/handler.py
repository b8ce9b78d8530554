"""One crash, start to finish: identity, /proc, the core, the stack trace, the entry.

The order matters. /proc/PID exists only while the kernel is still writing the core into our
stdin (with core_pipe_limit=0 the process is reaped as soon as the pipe is drained), so metadata
and the module files are captured first, then the pipe is drained. What the crashing user may
later read is decided from facts proven through the pidfd, and fails closed. Each step hands
the next a small fact record; entry.build() turns them into the entry, which deliver() sends.
"""

from __future__ import annotations

import errno
import os
import pwd

from drkonqi_lite_collector import config, storage
from drkonqi_lite_collector.journal import entry, restriction, spool
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.proc import ProcInfo
from drkonqi_lite_collector.journal.schema import (
    COLLECTOR_USER,
    SYSTEM_UID_MAX,
    CoreMissing,
    Field,
    core_filename,
    wakeup_path,
)
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.stage.argv import KernelArgs
from drkonqi_lite_collector.worker import corefile, ratelimit
from drkonqi_lite_collector.worker.procinfo import Process, end_dump

#: The collector avoids `typing` at run time (it pulls in re, contextlib and more: ~6 ms of a
#: small crash's budget); mypy treats this name like typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from drkonqi_lite_collector.worker.corestream import Tap

    class Tracer(Protocol):
        """The stack-trace engine (stacktrace.Engine)."""

        def start(self, proc_dir_fd: int | None) -> Tap: ...
        def finish(
            self, tap: Tap, timeout: float, hide: Callable[[int, str, bool], bool] | None = None
        ) -> entry.Trace: ...
        def after_delivery(self) -> None: ...

    Sender = Callable[[bytes | int, journal.Credentials, str | None], int]


def may_read_core(args: KernelArgs, info: ProcInfo, verified: bool) -> tuple[bool, str]:
    """systemd's rule (CVE-2022-4415): the user may read the core only if dump mode is 1,
    AT_SECURE is 0, uid == euid and gid == egid — and only if identity was proven."""
    if not verified:
        return False, "identity of the crashed process could not be proven"
    if args.dumpable != 1:
        return False, f"dump mode {args.dumpable} (set-uid or non-dumpable process)"
    secure = info.at_secure()
    if secure is None:  # a process killed while we read it: its auxv is gone (fail closed)
        return False, "AT_SECURE unknown (the process's auxv could not be read)"
    if secure != 0:
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
    """The entry to send, the core it carries (Storage=journal), and the crashing user's own
    entry when it differs from the full one (a restricted crash, restriction.py)."""

    __slots__ = ("blob", "fields", "user_fields")

    def __init__(
        self,
        fields: entry.Fields,
        blob: journal.Blob | None = None,
        user_fields: entry.Fields | None = None,
    ) -> None:
        self.fields = fields
        self.blob = blob
        self.user_fields = user_fields


def handle(
    args: KernelArgs,
    stdin: int,
    tracer: Tracer | None,
    notify_sent: Callable[[], object] = lambda: None,
    process: Process | None = None,
    send: Sender | None = None,
) -> int:
    """Process one crash whose core is readable on `stdin`. Returns the exit status (0 when
    the entry was sent or spooled). `process`: handles opened earlier by the kernel-facing
    stage; by default they are opened here. `send`: journald (tests give their own)."""
    paths = config.Paths(args.prefix)
    cfg = config.load(paths)
    for warning in cfg.warnings:
        log(f"configuration: {warning}")
    state_fd = open_state_dir(paths)
    kept = None
    watch = None
    try:
        with process or Process(args.pid, args.pidfd) as proc:
            # Cheap before expensive (SECURITY.md 11): the loop limit needs only the kernel's
            # uid and the exe link. A limited crash gets no unwinder and no big /proc reads.
            verdict = _rate_limit(state_fd, cfg, args.uid, proc.exe_link() or b"n/a")
            limited = verdict is not None and verdict.limited
            # The unwinder child first: it loads libdw while /proc is read and the core streams.
            tap = tracer.start(proc.dirfd) if tracer is not None and not limited else None
            seen = look(args, proc, light=limited)
            allowed, why_not = may_read_core(args, seen.info, seen.verified)
            restricted = None if allowed else why_not
            if not limited:
                reader = args.uid if allowed and args.uid != 0 else None
                name = _core_name(args, seen, cfg)
                kept = corefile.store(stdin, tap, cfg, state_fd, name, reader, args.uid)
            # Everything that needed the live process (/proc, the module files) was taken
            # before the drain: let the kernel reap it now rather than after the unwinding and
            # the journal (with core_pipe_limit > 0 it waits until the pipe is closed).
            _release(stdin)
            watch = proc.dump_watch(seen.verified)
        if limited or kept is None:
            core = entry.Core(size=None, missing=CoreMissing.RATE_LIMITED, restricted=restricted)
            trace: entry.Trace | None = entry.Trace("none: rate limited")
            user_trace = None
        else:
            if kept.result.error:
                log(f"PID {args.pid}: {kept.result.error}")
            core = _core_facts(args, paths, cfg, kept, tap, restricted)
            trace, user_trace = _trace(args, seen, tracer, tap, cfg, kept)
        fields = entry.build(args, seen, core, trace, verdict.crashes if verdict else None)
        blob = kept.blob if kept is not None else None
        user = _user_entry(args, seen, fields, blob is not None, user_trace)
        status = deliver(
            args, state_fd, Outcome(fields, blob, user), notify_sent, send or _journald
        )
        corefile.vacuum(state_fd, cfg, kept.name if kept is not None else None)
        if tracer is not None:
            tracer.after_delivery()
        return status
    finally:
        _done(args.pid, watch, kept.blob.fd if kept is not None and kept.blob else None, state_fd)


def _done(pid: int, watch: int | None, *fds: int | None) -> None:
    """The end of a crash: end a dump the kernel is stuck in (procinfo.end_dump), close fds."""
    if end_dump(watch):
        log(f"PID {pid} was still in its core dump after the crash was recorded: killed")
    for fd in fds:
        if fd is not None:
            os.close(fd)


def look(args: KernelArgs, proc: Process, *, light: bool = False) -> entry.Seen:
    """/proc of the crashed process, kept only if the pidfd proves it was that process's;
    `light`: only what a rate-limited crash's entry needs (Process.capture)."""
    info = proc.capture(args.tid, light=light)
    identity = proc.verify(info, args.uid, args.gid)
    if identity.verified:
        return entry.Seen(info, True, proc.pidfd_id())
    log(f"PID {args.pid}: {identity.reason}; recording kernel facts only")
    # Fail closed: what /proc said may belong to another process (CVE-2025-4598). That includes
    # comm: keeping it would name the core and MESSAGE after whoever now holds the PID.
    return entry.Seen(ProcInfo(), False)


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


def _core_name(args: KernelArgs, seen: entry.Seen, cfg: config.Config) -> str:
    if cfg.storage != config.Storage.EXTERNAL:
        return ""
    boot = corefile.boot_id()
    return core_filename(seen.comm, args.uid, boot, args.pid, args.timestamp_us)


def _core_facts(
    args: KernelArgs,
    paths: config.Paths,
    cfg: config.Config,
    kept: corefile.Kept,
    tap: Tap | None,
    restricted: str | None,
) -> entry.Core:
    """What the entry says of the core: where it is, or why there is none."""
    result = kept.result
    missing = None
    if kept.name is None and kept.blob is None:
        none = cfg.storage == config.Storage.NONE
        missing = result.missing or (CoreMissing.STORAGE_NONE if none else CoreMissing.EMPTY)
    siginfo = tap.siginfo if tap is not None else None
    return entry.Core(
        size=result.size,
        missing=missing,
        truncated=result.truncated,
        filename=str(storage.storage_path(paths, kept.name)) if kept.name else None,
        code=siginfo[1] if siginfo is not None and siginfo[0] == args.signal else None,
        restricted=restricted,
    )


def _trace(
    args: KernelArgs,
    seen: entry.Seen,
    tracer: Tracer | None,
    tap: Tap | None,
    cfg: config.Config,
    kept: corefile.Kept,
) -> tuple[entry.Trace | None, entry.Trace | None]:
    """The stack trace (None: none was attempted), and the crashing user's own when it hides
    modules they cannot read."""
    if tracer is None or tap is None or not kept.result.size:
        return None, None
    gids = frozenset((args.gid, *seen.info.status_ids(b"Groups")))
    traced = tracer.finish(tap, cfg.stacktrace_timeout, restriction.unreadable_by(args.uid, gids))
    return traced, traced.for_user


def _user_entry(
    args: KernelArgs,
    seen: entry.Seen,
    fields: entry.Fields,
    core_in_entry: bool,
    user_trace: entry.Trace | None,
) -> entry.Fields | None:
    """The crashing user's own entry when it differs from the full one (restriction.py): a
    crash the kernel keeps from them, or a stack trace through files they cannot read."""
    if restriction.kernel_hides(args, seen.info, seen.verified):
        return restriction.user_view(fields, entry.message(args, seen.comm, ""), core_in_entry)
    if user_trace is None:
        return None
    mine = [
        *entry.trace_fields(user_trace),
        (Field.MESSAGE, entry.message(args, seen.comm, user_trace.text)),
    ]
    return restriction.with_user_trace(fields, mine)


def open_state_dir(paths: config.Paths) -> int | None:
    """The state directory, or None when it is unusable (a symlink, writable by others, not
    creatable). The crash is then still recorded, only without core, rate limit and spool."""
    try:
        return storage.open_dir(paths.state_dir, create=True)
    except OSError as e:
        log(f"state directory unusable, recording the crash without a core: {e}")
        return None


def _journald(payload: bytes | int, creds: journal.Credentials, wakeup: str | None) -> int:
    return journal.send_as(payload, creds, wakeup=wakeup)


def deliver(
    args: KernelArgs,
    state_fd: int | None,
    outcome: Outcome,
    notify_sent: Callable[[], object],
    send: Sender = _journald,
) -> int:
    """Send the entry (after any spooled ones), or spool it. 0 unless it was lost.

    A restricted crash has two: the full one as the collector's system user (system journal,
    root and the admin groups read it), then the user's own (restriction.py)."""
    creds = sender_credentials(args.uid, args.gid)
    wakeup = wakeup_path(f"/run/user/{args.uid}") if args.uid > SYSTEM_UID_MAX else None
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
            _sent, left = spool.replay(spool_fd, lambda p, c: send(p, c, None))
            backlog = left != 0
        status = 0
        for i, (fields, who) in enumerate(sends):
            # Only the user's own entry wakes their app: it is the one the app can read.
            poke = wakeup if i == len(sends) - 1 else None
            status |= _send_or_spool(args, spool_fd, fields, who, backlog, poke, send)
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
    send: Sender,
) -> int:
    """One entry to journald as `creds`, or into the spool; 0 unless it was lost."""
    payload = journal.build_payload(entry.bounded(fields))
    try:
        err = errno.EAGAIN if backlog else send(payload, creds, wakeup)
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
