"""A hint that a crash of this user is about to reach the journal: its core appearing in storage.

systemd-coredump (and our collector) store the core before they send the journal entry, and
journald wakes journal readers 250-500 ms late (TESTING.md). Watching the storage directories
with inotify (IN_CREATE: O_TMPFILE+linkat and O_EXCL creation both raise it; IN_MOVED_TO for a
rename) tells the app to read the journal now, with the same bounded retries as the wake-up
socket. The event is only a hint: the app trusts nothing from it, reads nothing from the file
and only reacts to names whose UID part is this user's (DESIGN.md §2.2 naming), so other users'
crashes do not wake it. No polling: the fd sits in the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import Iterable

from drkonqi_lite_collector.journal.schema import parse_core_filename

log = logging.getLogger(__name__)

_IN_CREATE = 0x00000100
_IN_MOVED_TO = 0x00000080
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (inotify(7))


class StorageWatch:
    """inotify on the storage dirs; `drain()` says whether one of this user's cores appeared."""

    def __init__(self, uid: int) -> None:
        self._uid = uid
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd: int | None = fd
        self.watched: list[str] = []

    def watch(self, directories: Iterable[str]) -> None:
        """Watch those that exist (a missing one is simply not used on this machine)."""
        assert self._fd is not None  # noqa: S101 (internal invariant, not a security check)
        for directory in directories:
            wd = self._add_watch(self._fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO)
            if wd >= 0:
                self.watched.append(directory)
            elif ctypes.get_errno() not in {errno.ENOENT, errno.EACCES}:
                log.info("cannot watch %s: %s", directory, os.strerror(ctypes.get_errno()))

    def fileno(self) -> int:
        if self._fd is None:
            raise RuntimeError("storage watch closed")
        return self._fd

    def drain(self) -> bool:
        """Consume pending events; True if a core of this user appeared."""
        if self._fd is None:
            return False
        mine = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return mine
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                parsed = parse_core_filename(raw.rstrip(b"\0").decode("ascii", "replace"))
                if parsed is not None and parsed[0] == self._uid:
                    mine = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
