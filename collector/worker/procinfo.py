"""Race-safe capture of a crashed process's /proc metadata.

Identity first (SECURITY.md 1, CVE-2025-4598): we hold a pidfd of the crashed process (the
kernel's %F on Linux >= 6.16, else pidfd_open(PID) as early as possible), open /proc/PID once
as a directory fd, read every file through that fd, and afterwards check that the pidfd still
names a live process with that PID. A pidfd pins the PID: while it refers to a live process the
number cannot be reused, so a /proc/PID dirfd opened in that window is the crashed process's.
When identity cannot be proven the result says so, and the caller fails closed.

Everything read here is hostile: bytes are kept as bytes, every read is bounded.
"""

from __future__ import annotations

import os

from drkonqi_lite_collector.journal.native import FIELD_MAX
from drkonqi_lite_collector.journal.proc import ProcInfo, read_at
from drkonqi_lite_collector.stage.forward import open_process_fds

TYPE_CHECKING = False
if TYPE_CHECKING:  # typeshed describes the C module's contents as `signal`
    import signal as _signal
else:
    import _signal  # not `signal`: it imports enum (start-up time, see handler.py)

#: Per-file bound: one byte more than a field may hold, so that entry.bounded sees (and marks)
#: what was cut. The user chooses these sizes (argv and environ up to a quarter of an unlimited
#: stack, 65530 mappings, 100000 mounts in their own namespace): memory stays bounded.
READ_MAX = FIELD_MAX + 1
#: fds looked at, and fdinfo bytes per fd: POSIX locks add a line each to fdinfo, so one fd's
#: fdinfo can be megabytes; COREDUMP_OPEN_FDS as a whole stops at READ_MAX as well.
FDS_MAX = 4096
FDINFO_MAX = 4096
#: PF_DUMPCORE (include/linux/sched.h): set while the kernel writes this task's core.
PF_DUMPCORE = 0x00000200


class Identity:
    """Whether /proc data was proven to be the crashed process's, and how (or why not)."""

    __slots__ = ("reason", "verified")

    def __init__(self, verified: bool, reason: str) -> None:
        self.verified = verified
        self.reason = reason


def _read_at(dirfd: int, name: str, limit: int = READ_MAX) -> bytes | None:
    return read_at(dirfd, name, limit)


def _readlink_at(dirfd: int, name: str) -> bytes | None:
    try:
        return os.fsencode(os.readlink(name, dir_fd=dirfd))
    except OSError:
        return None


def _open_fds(dirfd: int) -> bytes | None:
    """systemd's COREDUMP_OPEN_FDS: `N:TARGET` then the fd's fdinfo, blocks blank-separated."""
    try:
        fd_dir = os.open("fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None
    try:
        # scandir, not listdir: a process may hold a million fds (nr_open); /proc lists them
        # in ascending order, so the first FDS_MAX are the lowest.
        names: list[int] = []
        with os.scandir(fd_dir) as it:
            for dent in it:
                if dent.name.isdigit():
                    names.append(int(dent.name))
                    if len(names) >= FDS_MAX:
                        break
        blocks: list[bytes] = []
        size = 0
        for number in sorted(names):
            target = _readlink_at(fd_dir, str(number))
            if target is None:
                continue
            info = _read_at(dirfd, f"fdinfo/{number}", FDINFO_MAX) or b""
            blocks.append(b"%d:%s\n%s" % (number, target, info))
            size += len(blocks[-1]) + 1
            if size >= READ_MAX:
                break
        return b"\n".join(blocks)
    finally:
        os.close(fd_dir)


def pidfd_pid(pidfd: int) -> int | None:
    """The PID a pidfd refers to (fdinfo `Pid:`; -1 once the process has been reaped)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}", "rb") as f:
            for line in f:
                if line.startswith(b"Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def exit_or_kill(pidfd: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the process of `pidfd` to exit (a pidfd polls readable
    then, pidfd_open(2)), else SIGKILL it; True when it had to be killed."""
    import select  # noqa: PLC0415 - a C module, needed only here

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if poller.poll(int(timeout * 1000)):
        return False
    try:
        _signal.pidfd_send_signal(pidfd, _signal.SIGKILL)
    except OSError:
        return False  # it exited in between
    return True


def end_dump(pidfd: int | None, timeout: float = 2.0) -> bool:
    """Once the crash is recorded: a crashed process that has not left its dump `timeout`
    seconds after its core pipe was let go is stuck in the kernel where we cannot see (its
    core dump reads the first page of every file mapping for the ELF header check, and a page
    of a file on the user's stopped FUSE waits for that daemon) and holds a core_pipe_limit
    slot: enough of them make the kernel skip every later crash on the machine. A dumping task
    takes SIGKILL and ends its dump (fs/coredump.c, dump_interrupted()). Never earlier: a
    SIGKILL within the dump becomes the exit status its parent sees. Closes `pidfd`; True
    when it had to be killed."""
    if pidfd is None:
        return False
    try:
        return exit_or_kill(pidfd, timeout)
    finally:
        os.close(pidfd)


def pidfd_alive(pidfd: int) -> bool:
    """True while the pidfd's process exists (signal 0 checks without sending anything)."""
    try:
        _signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Process:
    """An open handle on the crashed process: pidfd + /proc/PID dirfd."""

    def __init__(
        self,
        pid: int,
        pidfd: int | None,
        *,
        from_kernel: bool | None = None,
        dirfd: int | None = None,
    ) -> None:
        """Open the handles, or adopt ones opened earlier (the kernel-facing stage passes its
        pidfd and /proc dirfd to the service; `from_kernel` says where that pidfd came from)."""
        self.pid = pid
        self.from_kernel = pidfd is not None if from_kernel is None else from_kernel
        self.problem = ""
        bad = pidfd is not None and pidfd_pid(pidfd) is None
        if bad:
            self.problem = f"fd {pidfd} given as the pidfd is not a pidfd"
        opened, self.dirfd, problem = open_process_fds(pid, pidfd, dirfd)
        self.problem = self.problem or problem
        self.pidfd: int | None = None if bad else opened
        # Ours to close: the one we opened, or the one the stage handed over.
        self._own_pidfd = pidfd is None or from_kernel is not None

    def close(self) -> None:
        if self.dirfd is not None:
            os.close(self.dirfd)
            self.dirfd = None
        if self._own_pidfd and self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exe_link(self) -> bytes | None:
        """/proc/PID/exe as the kernel shows it: one readlink, for the rate limit."""
        return _readlink_at(self.dirfd, "exe") if self.dirfd is not None else None

    def capture(self, tid: int | None = None, *, light: bool = False) -> ProcInfo:
        """Read everything systemd-coredump records, through the directory fd; with `tid`
        (the crashing thread, %I) also that thread's name, which exists under task/ only
        when it is a thread of this process. `light` (a rate-limited crash): skip the files
        whose size the user chooses (environ, maps, mountinfo, fds)."""
        d = self.dirfd
        if d is None:
            return ProcInfo()
        comm = _read_at(d, "comm", 64)
        thread = _read_at(d, f"task/{tid}/comm", 64) if tid is not None else None
        return ProcInfo(
            comm=comm.rstrip(b"\n") if comm is not None else None,
            exe=_readlink_at(d, "exe"),
            cmdline=_read_at(d, "cmdline"),
            cwd=_readlink_at(d, "cwd"),
            root=_readlink_at(d, "root"),
            environ=None if light else _read_at(d, "environ"),
            status=_read_at(d, "status"),
            maps=None if light else _read_at(d, "maps"),
            limits=_read_at(d, "limits"),
            cgroup=_read_at(d, "cgroup"),
            mountinfo=None if light else _read_at(d, "mountinfo"),
            auxv=_read_at(d, "auxv", 4096),
            open_fds=None if light else _open_fds(d),
            stat=_read_at(d, "stat", 4096),
            container_cmdline=_container_cmdline(d),
            thread_name=thread.rstrip(b"\n") if thread is not None else None,
        )

    def pidfd_id(self) -> int | None:
        """The kernel-given pidfd's inode number, a 64-bit id unique to the process on pidfs
        (Linux >= 6.9; %F needs 6.16), which systemd records as COREDUMP_PIDFDID."""
        if not self.from_kernel or self.pidfd is None:
            return None
        try:
            return os.fstat(self.pidfd).st_ino
        except OSError:
            return None

    def dump_watch(self, verified: bool) -> int | None:
        """A pidfd of our own on the crashed process for end_dump (after these handles are
        closed); None unless /proc was proven to be the crashed process's."""
        if not verified or self.pidfd is None:
            return None
        try:
            return os.dup(self.pidfd)
        except OSError:
            return None

    def verify(self, info: ProcInfo, uid: int, gid: int) -> Identity:
        """Prove that what `capture` read belongs to the crashed process; fail closed."""
        if self.problem:
            return Identity(False, self.problem)
        if self.pidfd is None or self.dirfd is None:
            return Identity(False, f"/proc/{self.pid} could not be opened")
        owner = pidfd_pid(self.pidfd)
        if owner != self.pid:
            return Identity(False, f"pidfd refers to PID {owner}, not {self.pid}")
        if not pidfd_alive(self.pidfd):
            return Identity(False, "the process was gone before its metadata was verified")
        if info.status is None:
            return Identity(False, "/proc status unreadable")
        if (info.status_ids(b"Uid")[:1], info.status_ids(b"Gid")[:1]) != ((uid,), (gid,)):
            return Identity(False, "uid/gid in /proc differ from the kernel's %u/%g")
        if not self.from_kernel:
            # Our own pidfd_open() came after the kernel started us: the PID could have been
            # reused before it. A task the kernel is dumping has PF_DUMPCORE set; a recycled
            # PID does not.
            flags = info.stat_flags()
            if flags is None or not flags & PF_DUMPCORE:
                return Identity(False, "the process under this PID is not dumping core")
        return Identity(True, "pidfd" if self.from_kernel else "pidfd_open + PF_DUMPCORE")


def _ns(dirfd: int | None, name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"ns/{name}", dir_fd=dirfd) if dirfd is not None else os.stat(name)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _ppid(status: bytes) -> int:
    for line in status.splitlines():
        if line.startswith(b"PPid:"):
            value = line[5:].strip()
            return int(value) if value.isdigit() else 0
    return 0


def _container_cmdline(dirfd: int) -> bytes | None:
    """Command line of the container's leader when the process runs in another PID/mount ns.

    Walks up the parents to the last one still inside the crashed process's namespace and
    returns its parent's command line (the tool that made the container: unshare, nspawn...).
    Only reads /proc; never enters the namespace.
    """
    own = _ns(None, "/proc/self/ns/mnt"), _ns(None, "/proc/self/ns/pid")
    theirs = _ns(dirfd, "mnt"), _ns(dirfd, "pid")
    if None in theirs or theirs == own:
        return None
    status = _read_at(dirfd, "status", 65536) or b""
    for _ in range(64):
        ppid = _ppid(status)
        if ppid <= 1:
            return None
        try:
            pfd = os.open(f"/proc/{ppid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if (_ns(pfd, "mnt"), _ns(pfd, "pid")) == own:
                return _read_at(pfd, "cmdline", 65536)
            status = _read_at(pfd, "status", 65536) or b""
        finally:
            os.close(pfd)
    return None
