"""The systemd-coredump hook: wake the crashing user's app once systemd-coredump's entry is in.

`drkonqi-lite-coredump-hook@.service` is wanted by every `systemd-coredump@.service` instance
(as KDE DrKonqi's drkonqi-coredump-processor@ is) and runs `drkonqi-lite coredump-hook
INSTANCE` as root. It waits for the entry that instance sends (`_SYSTEMD_UNIT=` is set by
journald from the sender's cgroup, so no user can forge it), reads its COREDUMP_UID and sends
one empty datagram to that user's wake-up socket, which the user's socket unit turns into a
started app. It sends as that user (a child that drops to the crash's uid and gid first), so
a symlink the user plants at the socket's path reaches nothing the user could not reach. The
datagram carries nothing: the app reads the user's own journal with its own trust rules. Our
own collector pokes the socket itself; this is for systemd-coredump only.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from systemd import journal

from drkonqi_lite.adapters.wakeup import poke, wakeup_path
from drkonqi_lite_collector.journal.schema import MESSAGE_ID, Field

log = logging.getLogger(__name__)
#: systemd-coredump@.service instances are "N-PID-UID" of the connection (Accept=yes).
_INSTANCE = re.compile(r"^[0-9]+-[0-9]+-[0-9]+$")
#: Users below this are system users: they have no session and no app (login.defs).
FIRST_USER_UID = 1000
#: systemd-coredump gives up on a crash after 5 minutes (RuntimeMaxSec=); we wait 2 at most.
WAIT_S = 120.0


class HookError(Exception):
    """A bad instance name (the unit was started by hand with a wrong one)."""


def _number(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def crash_owner(instance: str, wait_s: float = WAIT_S) -> tuple[int, int] | None:
    """(COREDUMP_UID, COREDUMP_GID) of the entry systemd-coredump@INSTANCE.service sent."""
    if not _INSTANCE.match(instance):
        raise HookError(f"{instance!r} is not a systemd-coredump@.service instance")
    reader = journal.Reader()
    try:
        reader.data_threshold = 0
        reader.add_match(
            MESSAGE_ID=MESSAGE_ID, _SYSTEMD_UNIT=f"systemd-coredump@{instance}.service"
        )
        reader.seek_head()
        deadline = time.monotonic() + wait_s
        while True:
            entry = reader.get_next()
            if entry:
                uid, gid = _number(entry.get(Field.UID)), _number(entry.get(Field.GID))
                return None if uid is None or gid is None else (uid, gid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            reader.wait(min(remaining, 5.0))
    finally:
        reader.close()


def poke_as(uid: int, gid: int, path: Path) -> bool:
    """poke(path) from a child that runs as uid:gid with no supplementary groups."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            ok = poke(path)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def run(instance: str, runtime_root: Path = Path("/run/user")) -> int:
    """The hook's work; the exit status (0 also when there is nobody to wake)."""
    owner = crash_owner(instance)
    if owner is None:
        log.info("no entry from systemd-coredump@%s.service: nobody to wake", instance)
        return 0
    uid, gid = owner
    if uid < FIRST_USER_UID:
        return 0
    if poke_as(uid, gid, wakeup_path(str(runtime_root / str(uid)))):
        log.info("woke uid %d's crash notifier", uid)
    else:
        log.info("uid %d has no crash notifier listening", uid)
    return 0
