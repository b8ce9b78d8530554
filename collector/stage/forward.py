"""The kernel-facing stage of the split, and the service end of it (like systemd-coredump's).

With systemd, the kernel's helper does as little as possible in the host's namespaces, with
full privileges: it opens the crashed process's pidfd and /proc/PID directory at once, then
hands those two fds, the core pipe and the kernel's argv over an AF_UNIX SOCK_SEQPACKET socket
to `drkonqi-lite-collector@.service`, which systemd starts per connection (Accept=yes)
sandboxed, niced and memory-capped, and which does the heavy work. The kernel keeps waiting on
the pipe, which the service now holds, so the crashed process stays until the core is read.

Without the socket (no systemd as PID 1, early boot, containers, tests) the helper processes
the crash itself. The message is the argv joined by NUL bytes plus one flag byte; SCM_RIGHTS
carries [core pipe, pidfd, /proc/PID dirfd]. Only root can connect (SocketMode=0600).
"""

from __future__ import annotations

import _socket  # not `socket`: it imports enum and selectors (start-up time, see handler.py)
import errno
import os
import struct

from drkonqi_lite_collector.stage.argv import KernelArgs

MAX_MESSAGE = 64 * 1024
#: systemd's sd_listen_fds(3): passed sockets start at fd 3.
SD_LISTEN_FDS_START = 3


class ForwardError(OSError):
    """The service end received something that is not a crash hand-over."""


def open_process_fds(
    pid: int, pidfd: int | None = None, dirfd: int | None = None
) -> tuple[int | None, int | None, str]:
    """(pidfd, /proc/PID dirfd, why the pidfd could not be opened): the one place that opens
    the crashed process's handles, here in the stage and in the worker alike, opening only
    what it is not given. The pidfd comes first: while it names a live process the PID
    cannot be reused, so a /proc/PID opened after it is that process's, once the worker's
    Process.verify has seen the pidfd still alive with this PID (SECURITY.md 1)."""
    problem = ""
    if pidfd is None:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:
            problem = f"pidfd_open({pid}): {os.strerror(e.errno or errno.EIO)}"
    if dirfd is None:
        try:
            dirfd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            dirfd = None
    return pidfd, dirfd, problem


def hand_over(socket_path: str, raw_argv: list[str], args: KernelArgs, stdin: int) -> bool:
    """Send the crash to the service; False (nothing sent) when there is no service."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(socket_path)
        except OSError:
            return False
        from_kernel = args.pidfd is not None
        pidfd, dirfd, _ = open_process_fds(args.pid, args.pidfd)
        # -1 stands for "could not be opened": the service then fails closed on identity.
        fds = [stdin, -1 if pidfd is None else pidfd, -1 if dirfd is None else dirfd]
        sent = [fd for fd in fds if fd >= 0]
        mask = "".join("1" if fd >= 0 else "0" for fd in fds[1:])
        message = ("\0".join(raw_argv) + "\0" + ("K" if from_kernel else "O") + mask).encode(
            "utf-8", "surrogateescape"
        )
        sock.sendmsg(
            [message],
            [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(sent)}i", *sent))],
        )
        return True
    finally:
        sock.close()


class HandOver:
    """What the service received: the argv and the fds (core pipe, pidfd, /proc dirfd)."""

    __slots__ = ("argv", "dirfd", "from_kernel", "pidfd", "stdin")

    def __init__(
        self, argv: list[str], stdin: int, pidfd: int | None, from_kernel: bool, dirfd: int | None
    ) -> None:
        self.argv = argv
        self.stdin = stdin
        self.pidfd = pidfd
        self.from_kernel = from_kernel
        self.dirfd = dirfd


def receive(conn_fd: int) -> HandOver:
    """Read the one message of a connection (the service's fd from socket activation)."""
    sock = _socket.socket(fileno=conn_fd)
    try:
        # (`array` would import collections.abc: struct does the packing here.)
        size = struct.calcsize("i")
        data, ancdata, flags, _ = sock.recvmsg(MAX_MESSAGE, _socket.CMSG_SPACE(3 * size))
        received: list[int] = []
        for level, kind, blob in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                count = len(blob) // size
                received += struct.unpack(f"{count}i", blob[: count * size])
    finally:
        sock.close()
    if flags & (_socket.MSG_CTRUNC | _socket.MSG_TRUNC) or not data or not received:
        for fd in received:
            os.close(fd)
        raise ForwardError(0, "truncated or empty hand-over message")
    *argv, tail = data.decode("utf-8", "surrogateescape").split("\0")
    if (
        len(tail) != 3
        or tail[0] not in "KO"
        or any(c not in "01" for c in tail[1:])
        or len(received) != 1 + tail[1:].count("1")
    ):
        for fd in received:
            os.close(fd)
        raise ForwardError(0, "malformed hand-over message")
    rest = iter(received[1:])
    pidfd = next(rest) if tail[1] == "1" else None
    dirfd = next(rest) if tail[2] == "1" else None
    return HandOver(argv, received[0], pidfd, tail[0] == "K", dirfd)


def listen_fd() -> int:
    """The connection systemd passed (sd_listen_fds: LISTEN_PID is us, LISTEN_FDS is 1)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        raise ForwardError(0, "--service expects one socket from systemd (LISTEN_FDS=1)")
    return SD_LISTEN_FDS_START
