"""The durable spool: entries journald could not take, replayed later in order.

One file per entry in PREFIX/var/lib/drkonqi-lite/spool/, named
`<time_ns 20 digits>.<pid>.<uid>.<gid>.entry` so that lexical order is arrival order and the
credentials to send it with travel with it. Written through O_TMPFILE and linked only after
fsync, so a crash of the collector leaves either a whole entry or none. Replay holds an
exclusive flock so two collectors never send the same entry twice.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from drkonqi_lite_collector import storage
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.schema import Field
from drkonqi_lite_collector.log import log

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Callable

LOCK_NAME = ".replay.lock"


class Spooled:
    """A spooled entry's file name and the credentials to send it with."""

    __slots__ = ("creds", "name")

    def __init__(self, name: str, creds: journal.Credentials) -> None:
        self.name = name
        self.creds = creds


def _parse_name(name: str) -> journal.Credentials | None:
    """Credentials from `<20 digits>.<pid>.<uid>.<gid>.entry`, None for anything else."""
    parts = name.split(".")
    if len(parts) != 5 or parts[4] != "entry" or len(parts[0]) != 20:
        return None
    if not all(p.isascii() and p.isdigit() for p in parts[:4]):
        return None
    return journal.Credentials(int(parts[2]), int(parts[3]))


def spool(dir_fd: int, payload: bytes, creds: journal.Credentials) -> str:
    """Store one serialised entry durably; returns its file name. Raises OSError if it can't."""
    payload += journal.serialize([(Field.SPOOLED_AT, time.time_ns() // 1000)])
    name = f"{time.time_ns():020d}.{os.getpid()}.{creds.uid}.{creds.gid}.entry"
    with storage.TempFile(dir_fd, 0o600) as tmp:
        journal.write_all(tmp.fd, payload)
        tmp.commit(name, sync=True)
    return name


def pending(dir_fd: int) -> list[Spooled]:
    found = []
    for name in os.listdir(dir_fd):
        creds = _parse_name(name)
        if creds is not None:
            found.append(Spooled(name, creds))
    return sorted(found, key=lambda s: s.name)


if TYPE_CHECKING:
    Sender = Callable[[bytes, journal.Credentials], int]


def replay(dir_fd: int, send: Sender) -> tuple[int, int]:
    """Send spooled entries oldest first; stop at the first failure (order is kept).

    Returns (sent, left). When another process is replaying already, returns (0, -1).
    """
    lock_fd = os.open(
        LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
    )
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0, -1
        queue = pending(dir_fd)
        sent = skipped = 0
        for item in queue:
            payload = _read_entry(dir_fd, item.name)
            if payload is None:
                skipped += 1
                continue
            err = send(payload, item.creds)
            if err:
                return sent, len(queue) - sent - skipped
            try:
                os.unlink(item.name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            sent += 1
        return sent, 0
    finally:
        os.close(lock_fd)


def _read_entry(dir_fd: int, name: str) -> bytes | None:
    """A spooled entry's bytes; None (left in place, never sent) for anything that is not our
    own plain file: a symlink, a FIFO (O_NONBLOCK: opening it must not hang the collector) or
    a hard link planted under an entry's name (SECURITY.md 3)."""
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            log(f"spool: not replaying {name}: {e}")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            log(f"spool: not replaying {name}: not a plain file of ours")
            return None
        return f.read()
