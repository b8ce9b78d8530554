"""drkonqi-lite-collector: the kernel's crash handler, and the commands that install it.

As the handler (`drkonqi-lite-collector [--prefix DIR] %P %u %g %s %t %c %h %d [%F]`) it runs as
root with the core on stdin. A supervisor process forks the worker and, should the worker die
(a bug, a signal, the OOM killer), still records the crash from the kernel's facts alone: the
kernel never calls a pipe helper for its own crash (it runs helpers with RLIMIT_CORE=1), so
without this a collector failure would lose the crash silently.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import resource
import signal
import sys
from pathlib import Path

from drkonqi_lite_collector import argv, config, entry, journal, pattern, spool, storage
from drkonqi_lite_collector.handler import (
    Outcome,
    Tracer,
    __version__,
    deliver,
    handle,
    open_state_dir,
)
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.schema import CoreMissing, Field



def _ensure_std_fds() -> None:
    """The kernel gives a pipe helper only stdin. Occupy fds 1 and 2 with /dev/null so that
    no file we open later lands on them and receives a stray print()."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open("/dev/null", os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _tracer() -> Tracer | None:
    try:
        stacktrace = importlib.import_module("drkonqi_lite_collector.stacktrace")
    except ImportError:
        return None
    engine: Tracer = stacktrace.Engine()
    return engine


def run_handler(raw: list[str]) -> int:
    _ensure_std_fds()
    # Never dump core ourselves; children (the unwinder) inherit this. It must be 1, not 0:
    # for a pipe core_pattern the kernel ignores RLIMIT_CORE except the value 1, which it
    # sets on pipe helpers to stop recursion (fs/coredump.c, "RLIMIT_CORE set to 1, Aborting
    # core"). With 0 a crashing worker was dumped into a second collector.
    resource.setrlimit(resource.RLIMIT_CORE, (1, 1))
    try:
        args = argv.parse(raw)
    except argv.ArgvError as e:
        log(f"malformed arguments, crash dropped: {e}")
        _drain(0)
        _report_dropped(f"malformed arguments: {e}")
        return 2
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        code = 1
        try:
            code = handle(args, 0, _tracer(), lambda: os.write(ready_w, b"S"))
        except BaseException as e:  # noqa: BLE001 - the supervisor records it; no traceback
            log(f"PID {args.pid}: collector failed: {type(e).__name__}: {e}")
        os._exit(code)
    os.close(ready_w)
    os.close(0)  # only the worker reads the core; if it dies the kernel sees EPIPE, not a hang
    _, status = os.waitpid(pid, 0)
    delivered = os.read(ready_r, 1) == b"S"
    os.close(ready_r)
    if delivered:
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 0
    if os.WIFSIGNALED(status):
        why = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        why = f"exit status {os.WEXITSTATUS(status)}"
    log(f"PID {args.pid}: worker failed ({why}); recording the crash without a core")
    return _fallback_entry(args, why)


def _fallback_entry(args: argv.KernelArgs, why: str) -> int:
    fields: entry.Fields = entry.kernel_fields(args)
    fields += [
        (Field.CORE_MISSING, CoreMissing.COLLECTOR_CRASH),
        (Field.STACKTRACE, f"none: collector failed ({why})"),
        (Field.VERSION, __version__),
        (
            Field.MESSAGE,
            entry.message(args, b"n/a", "")
            + f"\n\nThe collector failed while processing this crash ({why}).".encode(),
        ),
    ]
    state_fd = open_state_dir(config.Paths(args.prefix))
    try:
        return deliver(args, state_fd, Outcome(fields=fields), lambda: None)
    finally:
        if state_fd is not None:
            os.close(state_fd)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _report_dropped(why: str) -> None:
    payload = journal.serialize(
        [
            (Field.PRIORITY, 3),
            (Field.SYSLOG_IDENTIFIER, "drkonqi-lite-collector"),
            (Field.MESSAGE, f"drkonqi-lite-collector: a crash was dropped: {why}"),
        ]
    )
    with contextlib.suppress(OSError):
        journal.send_payload(payload)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="drkonqi-lite-collector",
        description="The kernel's crash handler (run through core_pattern with the core on "
        "stdin) and the commands that install it. As a handler: "
        f"drkonqi-lite-collector [--prefix DIR] {argv.SPECIFIERS_PIDFD}",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--prefix",
        type=Path,
        default=config.prefix_from_environment(),
        help="configuration and storage prefix (default: / or $DRKONQI_LITE_PREFIX)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="make this collector the kernel's crash handler")
    inst.add_argument(
        "--force",
        action="store_true",
        help="take over from another pipe handler (systemd-coredump, apport)",
    )
    inst.add_argument(
        "--handler",
        type=Path,
        help="path the kernel runs (default: this program, via a root-owned link)",
    )
    sub.add_parser("uninstall", help="restore the crash handler that was active before install")
    sub.add_parser("status", help="show which program handles crashes, storage and spool")
    sub.add_parser("replay", help="send entries spooled while journald was unreachable")
    return p


def is_handler_call(raw: list[str]) -> bool:
    """The kernel calls us as `[--prefix DIR | --prefix=DIR] PID ...`: a number comes first."""
    rest = raw[2:] if raw[:1] == ["--prefix"] else raw[1:] if raw[:1] and raw[0].startswith(
        "--prefix=") else raw
    if len(rest) >= len(argv.SPECIFIERS.split()):
        # No command takes 8 words: this is the kernel running a pattern whose first
        # specifier is wrong. Reject it as a handler call (drained, logged, reported as a
        # dropped crash) rather than print argparse's usage to a stderr nobody reads.
        return True
    return bool(rest) and rest[0].isascii() and rest[0].isdigit()


def main(raw: list[str] | None = None) -> int:
    raw = sys.argv[1:] if raw is None else raw
    if is_handler_call(raw):
        return run_handler(raw)
    ns = _parser().parse_args(raw)
    paths = config.Paths(ns.prefix)
    try:
        if ns.command == "install":
            return pattern.install(paths, force=ns.force, handler=ns.handler)
        if ns.command == "uninstall":
            return pattern.uninstall(paths)
        if ns.command == "status":
            return pattern.status(paths)
        return replay(paths)
    except pattern.PatternError as e:
        print(f"drkonqi-lite-collector: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(
            f"drkonqi-lite-collector: {e.filename or ''}: permission denied (run as root)",
            file=sys.stderr,
        )
        return 1


def replay(paths: config.Paths) -> int:
    try:
        state_fd = storage.open_dir(paths.state_dir)
        spool_fd = storage.open_subdir(state_fd, "spool", create=False)
    except FileNotFoundError:
        print("nothing spooled")
        return 0
    os.close(state_fd)
    try:
        sent, left = spool.replay(spool_fd, journal.send_as)
    finally:
        os.close(spool_fd)
    if left < 0:
        print("another replay is running")
        return 0
    print(f"replayed {sent} spooled entr{'y' if sent == 1 else 'ies'}, {left} left")
    if left:
        print("drkonqi-lite-collector: journald still unreachable", file=sys.stderr)
        return errno.EAGAIN
    return 0


if __name__ == "__main__":
    sys.exit(main())
