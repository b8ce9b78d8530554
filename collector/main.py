"""drkonqi-lite-collector: the kernel's crash handler, and the commands that install it.

As the handler (`drkonqi-lite-collector [--prefix DIR] %P %u %g %s %t %c %h %d [%F]
[--tid=%I]`) it runs as root with the core on stdin: it hands the crash to the socket-activated
service when there is one (forward.py), else processes it itself under a supervisor
(supervisor.py). As `drkonqi-lite-collector --service` it is that service, started by
systemd per connection; as `drkonqi-lite-collector [--prefix=DIR] --cores-service` it deletes
a stored core for its user (cores.py, drkonqi-lite-cores@.service).
The subcommands install/uninstall/status/replay manage core_pattern and the spool.

Start-up time matters here (the crashed process waits): modules are imported where needed.
"""

from __future__ import annotations

import errno
import gc
import os
import resource
import sys

from drkonqi_lite_collector import __version__, config
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.stage import argv, forward

TYPE_CHECKING = False  # see handler.py
if TYPE_CHECKING:
    import argparse


def _ensure_std_fds() -> bool:
    """The kernel gives a pipe helper only stdin. Occupy fds 1 and 2 with /dev/null so that
    no file we open later lands on them and receives a stray print(); and fd 0 too when it is
    closed (whoever ran us gave no core), so that no file we open is read as the core.
    Returns whether fd 0 was closed."""
    closed = []
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
            null = os.open("/dev/null", mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    return 0 in closed


def _harden() -> None:
    if _ensure_std_fds():
        log("no core: stdin (fd 0) was closed; recording the crash without one")
    # Never dump core ourselves; children (the unwinder) inherit this. It must be 1, not 0:
    # for a pipe core_pattern the kernel ignores RLIMIT_CORE except the value 1, which it
    # sets on pipe helpers to stop recursion (fs/coredump.c, "RLIMIT_CORE set to 1, Aborting
    # core"). With 0 a crashing worker was dumped into a second collector.
    resource.setrlimit(resource.RLIMIT_CORE, (1, 1))


def _no_collection_while_importing() -> None:
    """The crash path's imports make thousands of objects that live as long as the process:
    the collections they trigger (~1-2 ms) find nothing to free. The worker turns the
    collector back on once they are done (supervisor.py), for what it allocates per crash."""
    gc.disable()


def run_handler(raw: list[str]) -> int:
    """The kernel's entry point: the core is on stdin, the crash described by argv."""
    _no_collection_while_importing()
    _harden()
    try:
        args = argv.parse(raw)
    except argv.ArgvError as e:
        log(f"malformed arguments, crash dropped: {e}")
        _close(0)
        _report_dropped(f"malformed arguments: {e}")
        return 2
    if forward.hand_over(config.Paths(args.prefix).socket, raw, args, 0):
        return 0
    from drkonqi_lite_collector.worker.supervisor import supervise  # noqa: PLC0415

    return supervise(args, 0, None)


def run_service() -> int:
    """drkonqi-lite-collector@.service: one connection from the kernel-facing stage."""
    _no_collection_while_importing()
    _harden()
    try:
        handed = forward.receive(forward.listen_fd())
    except OSError as e:
        log(f"service: {e}")
        return 2
    try:
        args = argv.parse(handed.argv)
    except argv.ArgvError as e:
        log(f"service: malformed arguments, crash dropped: {e}")
        for fd in (handed.stdin, handed.pidfd, handed.dirfd):
            if fd is not None:
                _close(fd)
        return 2
    from drkonqi_lite_collector.worker.procinfo import Process  # noqa: PLC0415
    from drkonqi_lite_collector.worker.supervisor import supervise  # noqa: PLC0415

    process = Process(args.pid, handed.pidfd, from_kernel=handed.from_kernel, dirfd=handed.dirfd)
    return supervise(args, handed.stdin, process)


def run_cores_service(prefix_arg: str | None) -> int:
    """drkonqi-lite-cores@.service: one user's request to delete one of their stored cores."""
    _ensure_std_fds()
    if prefix_arg is None:
        prefix = config.prefix_from_environment()
    elif prefix_arg.startswith("--prefix="):
        prefix = prefix_arg.removeprefix("--prefix=")
    else:
        print(f"drkonqi-lite-collector: unexpected argument {prefix_arg!r}", file=sys.stderr)
        return 2
    import socket  # noqa: PLC0415 - not on the kernel's path

    from drkonqi_lite_collector.admin import cores  # noqa: PLC0415

    try:
        conn = socket.socket(fileno=forward.listen_fd())
    except OSError as e:
        log(f"cores: {e}")
        return 2
    with conn:
        return cores.serve(conn, config.Paths(prefix))


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _report_dropped(why: str) -> None:
    from drkonqi_lite_collector.journal import entry  # noqa: PLC0415
    from drkonqi_lite_collector.journal import native as journal  # noqa: PLC0415

    try:
        journal.send_payload(journal.serialize(entry.dropped(why)))
    except OSError:
        pass


def _parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - not on the kernel's path: argparse costs ~3 ms at start

    p = argparse.ArgumentParser(
        prog="drkonqi-lite-collector",
        description="The kernel's crash handler (run through core_pattern with the core on "
        "stdin) and the commands that install it. As a handler: "
        f"drkonqi-lite-collector [--prefix DIR] {argv.SPECIFIERS_PIDFD} [{argv.TID_WORD}]",
        epilog="Started by systemd per connection, with the connection as fd 3: "
        "--service (drkonqi-lite-collector@.service, a crash from the kernel-facing stage) and "
        "[--prefix=DIR] --cores-service (drkonqi-lite-cores@.service, a user asking to delete "
        "one of their stored cores).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--prefix",
        type=str,
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
        type=str,
        help="path the kernel runs (default: this program, via a root-owned link)",
    )
    sub.add_parser("uninstall", help="restore the crash handler that was active before install")
    sub.add_parser("status", help="show which program handles crashes, storage and spool")
    sub.add_parser("replay", help="send entries spooled while journald was unreachable")
    return p


def is_handler_call(raw: list[str]) -> bool:
    """The kernel calls us as `[--prefix DIR | --prefix=DIR] PID ...`: a number comes first."""
    rest = (
        raw[2:]
        if raw[:1] == ["--prefix"]
        else raw[1:]
        if raw[:1] and raw[0].startswith("--prefix=")
        else raw
    )
    if len(rest) >= len(argv.SPECIFIERS.split()):
        # No command takes 8 words: this is the kernel running a pattern whose first
        # specifier is wrong. Reject it as a handler call (drained, logged, reported as a
        # dropped crash) rather than print argparse's usage to a stderr nobody reads.
        return True
    return bool(rest) and rest[0].isascii() and rest[0].isdigit()


def main(raw: list[str] | None = None) -> int:
    raw = sys.argv[1:] if raw is None else raw
    if raw == ["--service"]:
        return run_service()
    if raw[-1:] == ["--cores-service"] and len(raw) <= 2:
        return run_cores_service(raw[0] if len(raw) == 2 else None)
    if is_handler_call(raw):
        return run_handler(raw)
    from drkonqi_lite_collector.admin.closed_pipe import quiet_on_closed_pipe  # noqa: PLC0415

    return quiet_on_closed_pipe(lambda: run_command(raw))


def run_command(raw: list[str]) -> int:
    """install, uninstall, status, replay (and --help, --version)."""
    from drkonqi_lite_collector.admin import pattern  # noqa: PLC0415 - commands only

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
    from drkonqi_lite_collector import storage  # noqa: PLC0415
    from drkonqi_lite_collector.journal import native as journal  # noqa: PLC0415
    from drkonqi_lite_collector.journal import spool  # noqa: PLC0415

    try:
        state_fd = storage.open_dir(paths.state_dir)
        spool_fd = storage.open_subdir(state_fd, config.SPOOL_SUBDIR, create=False)
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
