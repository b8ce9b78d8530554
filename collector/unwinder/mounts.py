"""Which mapped files the root collector may touch: none whose file system a user can stall.

Every stat() or open() of a file on a FUSE file system is a request to the process serving it,
and any user may serve one (fusermount3 is set-uid root; Debian's /dev/fuse is 0666). Mounted
with allow_other (user_allow_other in /etc/fuse.conf), the root collector's stat() of a mapped
file waits for that user's daemon, which the user may have stopped (SIGSTOP): the worker would
hold the kernel's core pipe and a core_pipe_limit slot until its last timeout. So a mapping's
file is only looked at when its device (/proc/PID/maps, written by the kernel) is the device
of a mount that is not FUSE, in the crashed process's mount table or in ours (device numbers
are the superblock's, the same in every namespace: a container's overlay files are on a host
file system its own table does not list). A device in neither table is not looked at either.
Both tables and the maps come from /proc, which never calls into a file system.
"""

from __future__ import annotations

import os

from drkonqi_lite_collector.journal.proc import read_at

#: Bytes read of one /proc table: ~100 bytes a line, so thousands of mounts or mappings. A
#: device past the cut is unknown, so not looked at: bounded work, never a stall.
TABLE_MAX = 1 << 20


def _stallable(fstype: bytes) -> bool:
    """FUSE in all its names: fuse, fuseblk, fuse.bindfs, fuse.sshfs, ..."""
    return fstype in (b"fuse", b"fuseblk") or fstype.startswith(b"fuse.")


def safe_devices(mountinfo: bytes) -> tuple[set[int], set[int]]:
    """(devices of mounts that are not FUSE, devices of FUSE mounts) of one mountinfo table
    (proc_pid_mountinfo(5): "ID PARENT MAJOR:MINOR ROOT POINT OPTIONS [TAGS...] - TYPE ...")."""
    safe: set[int] = set()
    stallable: set[int] = set()
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(b" - ")
        fields = head.split(b" ", 3)
        if not sep or len(fields) < 3:
            continue
        major, _, minor = fields[2].partition(b":")
        try:
            dev = os.makedev(int(major), int(minor))
        except (ValueError, OverflowError):
            continue
        (stallable if _stallable(tail.split(b" ", 1)[0]) else safe).add(dev)
    return safe, stallable


def file_mappings(maps: bytes) -> list[tuple[int, int, int]]:
    """(start, end, device) of every file mapping in a /proc/PID/maps table
    ("START-END PERMS OFFSET MAJOR:MINOR INODE PATH", the numbers in hex); anonymous memory
    (inode 0) is left out."""
    out: list[tuple[int, int, int]] = []
    for line in maps.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or fields[4] == b"0":
            continue
        low, _, high = fields[0].partition(b"-")
        major, _, minor = fields[3].partition(b":")
        try:
            out.append((int(low, 16), int(high, 16), os.makedev(int(major, 16), int(minor, 16))))
        except (ValueError, OverflowError):
            continue
    return out


def _root_device(mountinfo: bytes) -> int | None:
    """The device of the mount at "/" of a mountinfo table (the last one: mounts stack)."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split(b" ", 5)
        if len(fields) > 4 and fields[4] == b"/":
            major, _, minor = fields[2].partition(b":")
            try:
                found = os.makedev(int(major), int(minor))
            except (ValueError, OverflowError):
                found = None
    return found


class Survey:
    """A process's file mappings and which devices the collector may touch, from /proc."""

    __slots__ = ("files", "root_ok", "trusted")

    def __init__(self, maps: bytes, theirs: bytes, own: bytes) -> None:
        if len(maps) >= TABLE_MAX:  # cut: its last line may be cut too
            maps = maps[: maps.rfind(b"\n") + 1]
        safe, stallable = safe_devices(theirs)
        own_safe, own_stallable = safe_devices(own)
        #: devices of mounts that are not FUSE, in their table or ours, and FUSE in neither
        self.trusted = (safe | own_safe) - stallable - own_stallable
        self.files = file_mappings(maps)
        #: whether the process's root directory may be stat()ed
        self.root_ok = _root_device(theirs) in self.trusted

    @classmethod
    def of(cls, proc_dir_fd: int, own: str = "/proc/self/mountinfo") -> Survey:
        """Read from the process's /proc directory; `own` is the collector's mount table (a
        chrooted process's lacks the mount its root lies on)."""

        def table(name: str, dir_fd: int | None) -> bytes:
            return read_at(dir_fd, name, TABLE_MAX) or b""

        return cls(table("maps", proc_dir_fd), table("mountinfo", proc_dir_fd), table(own, None))

    def touchable_starts(self) -> set[int]:
        """Start addresses of the mappings whose files the collector may stat and open."""
        return {start for start, _end, dev in self.files if dev in self.trusted}
