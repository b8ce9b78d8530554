"""Reading back what the collector wrote: crash entries from the real journald, as raw bytes,
only those written since the test began (the journal is persistent and PIDs get reused).
"""

from __future__ import annotations

import pwd
import socket
import time
from collections.abc import Mapping

from systemd import journal

from drkonqi_lite_collector.journal.schema import MESSAGE_ID

Entry = Mapping[str, bytes]


class RawReader(journal.Reader):  # type: ignore[misc]
    """A journal reader that leaves every field as the bytes journald stored."""

    def _convert_field(self, key: str, value: bytes) -> bytes:
        return value


#: Entries written before this moment (µs since the epoch) belong to earlier tests: the
#: journal is persistent and PIDs get reused, so `COREDUMP_PID=` alone is ambiguous.
#: make_prefix() moves it to the start of each test.
not_before_us = [0]


def entries(
    since: float | None = None, message_id: str = MESSAGE_ID, **match: str | int
) -> list[Entry]:
    """Crash entries matching `match` (field=value), oldest first, written since the test began
    (and since `since`, a time.time() value, when given); `message_id` picks native crashes
    (the default) or self-reported ones (schema.BACKTRACE_MESSAGE_ID)."""
    floor = not_before_us[0] if since is None else max(not_before_us[0], int(since * 1e6))
    reader = RawReader()
    try:
        reader.add_match(MESSAGE_ID=message_id)
        for key, value in match.items():
            reader.add_match(**{key: str(value)})
        reader.seek_realtime(floor / 1e6)
        # RawReader leaves __REALTIME_TIMESTAMP as systemd-python's int (microseconds).
        return [dict(e) for e in reader if int(e["__REALTIME_TIMESTAMP"]) >= floor]
    finally:
        reader.close()


def wait_entry(
    timeout: float = 15.0,
    since: float | None = None,
    message_id: str = MESSAGE_ID,
    **match: str | int,
) -> Entry:
    """The one entry matching `match` (see entries), waiting for journald to write it."""
    deadline = time.monotonic() + timeout
    while True:
        found = entries(since, message_id, **match)
        if found:
            assert len(found) == 1, f"{len(found)} entries for {match}: one crash, one entry"
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no crash entry for {match} within {timeout}s")
        time.sleep(0.05)


def journald_socket_alive() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect("/run/systemd/journal/socket")
        except OSError:
            return False
    return True


def field(entry: Entry, name: str) -> bytes:
    value = entry.get(name)
    assert value is not None, f"{name} missing from the entry"
    return value


def entries_since(since: float, **match: str | int) -> list[Entry]:
    """`entries` received at or after `since`: PIDs recycle within minutes on a busy machine and
    the journal keeps every earlier crash, so a test matching on COREDUMP_PID looks only at its
    own time window."""
    return entries(since, MESSAGE_ID, **match)


def wait_entry_since(since: float, timeout: float = 15.0, **match: str | int) -> Entry:
    """`wait_entry` among the entries received at or after `since`."""
    return wait_entry(timeout, since, MESSAGE_ID, **match)


def admin_uid() -> int:
    """The uid the full entry of a restricted crash is sent as
    (collector/journal/restriction.py): the collector's system user where it exists, else root."""
    try:
        return pwd.getpwnam("drkonqi-lite").pw_uid
    except KeyError:
        return 0


def restricted_entries(since: float, pid: int, uid: int) -> tuple[Entry, Entry]:
    """(the user's own entry, the full one in the system journal) of a restricted crash."""
    own = wait_entry_since(since, COREDUMP_PID=pid, _UID=uid)
    full = wait_entry_since(since, COREDUMP_PID=pid, _UID=admin_uid())
    return own, full

