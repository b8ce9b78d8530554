"""The journal lines of a crashed process (or its unit) around the time of the crash.

For the detail window's Log tab: what the program wrote to the journal just before it died.
Reads with journal matches (_PID, or the unit) and a time window, bounded in lines; only what
the user may read anyway (its own user journal, or the system journal when in adm/systemd-journal).
Blocking but index-driven (milliseconds); every line is hostile text for the caller to show inert.
"""

from __future__ import annotations

import datetime

from systemd import journal

from drkonqi_lite.domain.crash import Crash
from drkonqi_lite_collector.journal.schema import Field

BEFORE_S = 120
AFTER_S = 5
MAX_LINES = 500


def _line(entry: dict[str, object]) -> str:
    stamp = entry.get("__REALTIME_TIMESTAMP")
    when = stamp.strftime("%H:%M:%S") if isinstance(stamp, datetime.datetime) else "--:--:--"
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "?"
    pid = entry.get("_PID", "")
    message = entry.get("MESSAGE", "")
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return f"{when} {ident}[{pid}]: {message}"


def process_log(crash: Crash, path: str | None = None) -> list[str]:
    """Up to MAX_LINES journal lines of the process (or unit) before and just after the crash."""
    reader = journal.Reader(path=path) if path else journal.Reader()
    try:
        reader.add_match(_PID=str(crash.pid))
        if crash.unit:
            reader.add_disjunction()
            user_unit = bool(crash.fields.get(Field.USER_UNIT))
            key = "_SYSTEMD_USER_UNIT" if user_unit else "_SYSTEMD_UNIT"
            reader.add_match(**{key: crash.unit})
        start = crash.timestamp_us / 1e6 - BEFORE_S
        end_us = crash.timestamp_us + AFTER_S * 1_000_000
        reader.seek_realtime(start)
        lines: list[str] = []
        for entry in reader:
            stamp = entry.get("__REALTIME_TIMESTAMP")
            if isinstance(stamp, datetime.datetime) and stamp.timestamp() * 1e6 > end_us:
                break
            if entry.get("MESSAGE_ID") == crash.fields.get("MESSAGE_ID"):
                continue  # the crash entry itself is in the other tabs
            lines.append(_line(entry))
        return lines[-MAX_LINES:]
    finally:
        reader.close()
