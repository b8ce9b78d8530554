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

#: Bytes read of one /proc table: ~100 bytes a line, so thousands of mounts or mappings. A
#: device past the cut is unknown, so not looked at: bounded work, never a stall.
TABLE_MAX = 1 << 20


def _read(path: str, dir_fd: int | None) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return b""
    try:
        with open(fd, "rb", closefd=False) as f:
            return f.read(TABLE_MAX)
    except OSError:
        return b""
    finally:
        os.close(fd)


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


def mapping_devices(maps: bytes) -> dict[int, int]:
    """Start address -> device of every file mapping in a /proc/PID/maps table
    ("START-END PERMS OFFSET MAJOR:MINOR INODE PATH", the numbers in hex)."""
    out: dict[int, int] = {}
    for line in maps.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[4] == b"0":
            continue  # anonymous memory (inode 0)
        start, _, _ = fields[0].partition(b"-")
        major, _, minor = fields[3].partition(b":")
        try:
            out[int(start, 16)] = os.makedev(int(major, 16), int(minor, 16))
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


def survey(proc_dir_fd: int, own: str = "/proc/self/mountinfo") -> tuple[set[int], bool]:
    """(start addresses of the mappings whose files the collector may stat and open, whether
    it may stat the process's root directory) of the process at `proc_dir_fd`; `own` is the
    collector's mount table (a chrooted process's lacks the mount its root lies on)."""
    theirs = _read("mountinfo", proc_dir_fd)
    safe, stallable = safe_devices(theirs)
    own_safe, own_stallable = safe_devices(_read(own, None))
    trusted = (safe | own_safe) - stallable - own_stallable
    starts = {start for start, dev in mapping_devices(_read("maps", proc_dir_fd)).items()
              if dev in trusted}  # fmt: skip
    return starts, _root_device(theirs) in trusted
