"""Probing a crash's core file without trusting the path the entry gives (SECURITY.md 3, 6).

Only a name directly inside a known storage directory is considered; the directory is opened
as a dir fd and the file with O_NOFOLLOW|O_NONBLOCK through it, then closed unread: a symlink,
FIFO or device planted there is never followed, read or blocked on. Nothing here reads or
decompresses the core (issue 5's gdb runner does, on request).
"""

from __future__ import annotations

import errno
import os
import stat

from drkonqi_lite.domain.trust import CoreProbe, TrustPolicy

_DENIED = {errno.EACCES, errno.EPERM}


def open_storage_dir(directory: str) -> int:
    """A handle on a storage directory for opening files in it by name: O_PATH, because the
    directory is searchable but not readable by users (0711, SECURITY.md 9) and a plain
    O_RDONLY open of it fails with EACCES."""
    return os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def probe_core(policy: TrustPolicy, filename: str) -> CoreProbe:
    """What the user can do with the core at `filename` (see CoreProbe)."""
    location = policy.core_location(filename)
    if location is None:
        return CoreProbe.OUTSIDE_STORAGE
    directory, name = location
    try:
        dir_fd = open_storage_dir(directory)
    except OSError as exc:
        return CoreProbe.UNREADABLE if exc.errno in _DENIED else CoreProbe.ABSENT
    try:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            return CoreProbe.UNREADABLE if exc.errno in _DENIED else CoreProbe.ABSENT
        if not stat.S_ISREG(st.st_mode):
            return CoreProbe.NOT_A_FILE
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _DENIED:
                return CoreProbe.UNREADABLE
            return CoreProbe.ABSENT if exc.errno == errno.ENOENT else CoreProbe.NOT_A_FILE
        os.close(fd)
        return CoreProbe.READABLE
    finally:
        os.close(dir_fd)
