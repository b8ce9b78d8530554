"""Crash-loop limiting: count every crash, store at most a burst of cores per window.

Keyed by (uid, executable), and by uid alone with a larger burst: copies or renames of one
binary are different executables, the user is the same (SECURITY.md 11). Root has no user
key: its crashes are those of every daemon started as root, so one daemon's crash loop would
take the cores of all the others, and only root can make copies of a program that runs as
root (a set-uid program's crash is its real user's, %u). The state is one
small file per key in a root-owned directory, updated under flock so that a storm of concurrent
collectors counts exactly. A limited crash still gets its journal entry (nothing is dropped
silently); only the expensive parts — reading the core, storing it, the stack trace, the big
/proc files — are skipped, which bounds disk and CPU during a loop (SECURITY.md 7).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
import zlib

from drkonqi_lite_collector.journal.schema import escape_name


class Verdict:
    """`crashes` of this program in the current window (this one included); over a burst?"""

    __slots__ = ("by_user", "crashes", "limited")

    def __init__(self, crashes: int, limited: bool, by_user: bool = False) -> None:
        self.crashes = crashes
        self.limited = limited
        #: limited by the user's count across all their programs, not this program's
        self.by_user = by_user


def check(
    dir_fd: int,
    uid: int,
    exe: bytes,
    interval: float,
    burst: int,
    now: float | None = None,
    *,
    user_burst: int | None = None,
) -> Verdict:
    """Record one crash of (uid, exe) and say whether it is over either burst."""
    now = time.time() if now is None else now
    # Readable and bounded: uid, the escaped program name, and a checksum of the full path
    # (hashlib would load OpenSSL: ~3 ms of start-up for a non-cryptographic need).
    name = escape_name(exe.rsplit(b"/", 1)[-1])[:64]
    crashes, fresh = _count(dir_fd, f"{uid}.{name}.{zlib.crc32(exe):08x}", interval, now)
    user_burst = 2 * burst if user_burst is None else user_burst
    by_user, fresh_user = 0, False
    if uid != 0:
        # The user's own key: one number, never the shape of a program key (three parts).
        by_user, fresh_user = _count(dir_fd, str(uid), interval, now)
    if fresh or fresh_user:
        # A new key or a new window: the moment the directory can grow, so the moment to drop
        # the state of programs that have not crashed for a while (not on every crash).
        expire(dir_fd, interval, now)
    over_user = by_user > user_burst
    return Verdict(crashes=crashes, limited=crashes > burst or over_user, by_user=over_user)


def _count(dir_fd: int, key: str, interval: float, now: float) -> tuple[int, bool]:
    """Add one crash to `key`'s window; returns (crashes in the window, a new window?)."""
    fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            # Our own plain file or nothing (SECURITY.md 3): through a planted hard link the
            # truncate + write below would overwrite another file. No verdict: not limited.
            raise OSError(errno.EPERM, "rate-limit state file is not ours", key)
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 64, 0).split()
        try:
            start, count = float(raw[0]), int(raw[1])
        except (IndexError, ValueError):
            start, count = now, 0
        if now - start >= interval or now < start:
            start, count = now, 0
        count += 1
        data = f"{start:.6f} {count}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
    return count, count == 1


def expire(dir_fd: int, interval: float, now: float | None = None) -> None:
    """Remove state files of windows that ended long ago (keeps the directory small)."""
    now = time.time() if now is None else now
    for entry in os.scandir(dir_fd):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > 10 * interval:
                os.unlink(entry.name, dir_fd=dir_fd)
        except OSError:
            continue
