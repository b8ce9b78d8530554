"""Finding the KCrash metadata file of one of the user's crashes, and reading it safely.

The file lives in the user's own cache (domain/kcrash.py says what KCrash writes and when), a
directory the crashed program could write: so it is opened through a directory fd with
O_NOFOLLOW|O_NONBLOCK (a planted symlink or FIFO is never followed or blocked on), and used
only when it is a regular file owned by the user, no bigger than kcrash.MAX_BYTES, modified
within kcrash.MTIME_SLACK_S of the crash, named for the crash's boot id and PID, and its own
`pid=`/`exe=` lines name the crashed process. Read only for the user's own crashes; never
written or deleted (DrKonqi's cleanup owns that).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.kcrash import (
    DIRECTORY,
    MAX_BYTES,
    MTIME_SLACK_S,
    KCrashInfo,
    matching_info,
)

#: Entries of the directory looked at, at most (it is the crashed program's to fill).
MAX_ENTRIES = 4096


def metadata_dir(env: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CACHE_HOME/kcrash-metadata, as Qt's GenericCacheLocation (~/.cache by default)."""
    cache = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME", "~"), ".cache")
    return Path(cache) / DIRECTORY


def candidate_names(names: list[str], boot_id: str, pid: int) -> list[str]:
    """KF6's `<appname>.<bootid>.<pid>.ini` for this boot and PID, then KF5's `<pid>.ini`."""
    tail = f".{boot_id}.{pid}.ini"
    kf6 = sorted(n for n in names if boot_id and n.endswith(tail) and len(n) > len(tail))
    return [*kf6, *([f"{pid}.ini"] if f"{pid}.ini" in names else [])]


def _read(dir_fd: int, name: str, uid: int, crash_s: float) -> str | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != uid
            or st.st_size > MAX_BYTES
            or abs(st.st_mtime - crash_s) > MTIME_SLACK_S
        ):
            return None
        return os.read(fd, MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def lookup(crash: Crash, directory: Path, uid: int) -> KCrashInfo | None:
    """What KCrash wrote for `crash`, or None (no file, or none that passes every check)."""
    if crash.uid != uid or crash.pid <= 0:
        return None
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(dir_fd).st_uid != uid:
            return None
        names: list[str] = []
        with os.scandir(dir_fd) as it:
            for entry in it:
                names.append(entry.name)
                if len(names) >= MAX_ENTRIES:
                    break
        for name in candidate_names(names, crash.boot_id, crash.pid):
            text = _read(dir_fd, name, uid, crash.timestamp_us / 1e6)
            info = matching_info(text, pid=crash.pid, exe=crash.exe) if text else None
            if info is not None:
                return info
        return None
    except OSError:
        return None
    finally:
        os.close(dir_fd)


class KCrashLookup:
    """`lookup` bound to this user's cache directory (the journal source calls it per crash)."""

    def __init__(self, directory: Path | None = None, uid: int | None = None) -> None:
        self.directory = metadata_dir() if directory is None else directory
        self.uid = os.getuid() if uid is None else uid

    def __call__(self, crash: Crash) -> KCrashInfo | None:
        return lookup(crash, self.directory, self.uid)
