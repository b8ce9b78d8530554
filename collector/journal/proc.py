"""What /proc said about the crashed process: the fact record the worker fills
(worker/procinfo.py reads it race-free) and the entry turns into fields (entry.py,
restriction.py). Raw bytes, None where unreadable; the parsers below read hostile bytes and
never raise.
"""

from __future__ import annotations

import os

#: AT_SECURE in the auxiliary vector (elf.h): set for set-uid/set-gid/file-caps executables.
AT_SECURE = 23


def read_at(dirfd: int | None, name: str, limit: int) -> bytes | None:
    """At most `limit` bytes of /proc file `name` (relative to `dirfd`, or absolute), never
    following a symlink; None when it cannot be opened or read (the process is gone)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dirfd)
    except OSError:
        return None
    try:
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


_PROC_FIELDS = (
    "comm",
    "exe",
    "cmdline",
    "cwd",
    "root",
    "environ",
    "status",
    "maps",
    "limits",
    "cgroup",
    "mountinfo",
    "auxv",
    "open_fds",
    "stat",
    "container_cmdline",
    "thread_name",
)


class ProcInfo:
    """What /proc said about the crashed process: raw bytes, None where unreadable."""

    __slots__ = _PROC_FIELDS

    def __init__(self, **fields: bytes | None) -> None:
        for name in _PROC_FIELDS:
            setattr(self, name, fields.pop(name, None))
        if fields:
            raise TypeError(f"unknown /proc fields: {sorted(fields)}")

    comm: bytes | None
    exe: bytes | None
    cmdline: bytes | None
    cwd: bytes | None
    root: bytes | None
    environ: bytes | None
    status: bytes | None
    maps: bytes | None
    limits: bytes | None
    cgroup: bytes | None
    mountinfo: bytes | None
    auxv: bytes | None
    open_fds: bytes | None
    stat: bytes | None
    container_cmdline: bytes | None
    thread_name: bytes | None

    def status_ids(self, key: bytes) -> tuple[int, ...]:
        """The numbers on a `Uid:`/`Gid:` line of status (real, effective, saved, fs)."""
        for line in (self.status or b"").splitlines():
            if line.startswith(key + b":"):
                return tuple(int(x) for x in line.split()[1:] if x.isdigit())
        return ()

    def stat_flags(self) -> int | None:
        """The `flags` field of /proc/PID/stat, parsed after the LAST ')' (comm may hold ')')."""
        if not self.stat:
            return None
        rest = self.stat[self.stat.rfind(b")") + 1 :].split()
        # rest[0] is field 3 (state); flags is field 9.
        return int(rest[6]) if len(rest) > 6 and rest[6].isdigit() else None

    def at_secure(self) -> int | None:
        """AT_SECURE from the binary auxv (pairs of native unsigned longs), None if absent."""
        if not self.auxv:
            return None
        data = self.auxv
        for off in range(0, len(data) - 15, 16):
            key = int.from_bytes(data[off : off + 8], "little")
            if key == AT_SECURE:
                return int.from_bytes(data[off + 8 : off + 16], "little")
            if key == 0:
                break
        return None
