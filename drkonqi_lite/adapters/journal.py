"""The crash source: this user's coredump entries in the journal, as trusted crash records.

Reads with `add_match(MESSAGE_ID=…)` (journald's index; never scanning), and exposes
`fileno()`/`process()` so the Qt loop can watch the journal fd with a QSocketNotifier
(TESTING.md: idle cost zero; the slot must call `process()` or the fd stays readable). Every
entry's sender (`_UID`, stamped by journald) is checked first; only a trusted sender's entry is
read further (SECURITY.md 15: a 100 MiB field in an entry another uid wrote is never loaded).
Untrusted and malformed entries are skipped with a log line, never raised. The core file named
by an entry is probed (opened, never read) only inside the storage directories; the user's own
KCrash metadata file for a crash is read through kcrash_file.
"""

from __future__ import annotations

import dataclasses
import logging
import pwd
import select
import time
from collections.abc import Callable, Iterator

# The C reader itself: systemd.journal's Python layer on it (datetime, uuid and logging
# converters and handlers) adds nothing used here and costs a cold start ~5 ms (issue 12).
from systemd._reader import LOCAL_ONLY, _Reader

from drkonqi_lite.adapters.core_file import probe_core
from drkonqi_lite.adapters.kcrash_file import KCrashLookup
from drkonqi_lite.domain.crash import (
    CURSOR,
    MAX_FIELD_CHARS,
    REALTIME,
    TRUSTED_UID,
    Crash,
    MalformedEntryError,
    crash_from_entry,
)
from drkonqi_lite.domain.kcrash import KCrashInfo
from drkonqi_lite.domain.trust import COLLECTOR_USERS, CoreProbe, TrustPolicy, decide_core_state
from drkonqi_lite_collector.journal.schema import CRASH_MESSAGE_IDS

log = logging.getLogger(__name__)

#: Entries read per drain before yielding to the event loop (KDE DrKonqi drains 128 at a time).
BATCH = 128

Entry = dict[str, str | bytes]

#: sd_journal_set_data_threshold(3) for trusted entries: above what the domain keeps
#: (MAX_FIELD_CHARS), so that it still sees and marks an over-long field. Only a hint (it bounds
#: compressed fields only), which is why untrusted entries are not read at all.
FIELD_THRESHOLD = 4 * MAX_FIELD_CHARS
#: Crash ids remembered to yield each crash once (see JournalSource.crash); far more than a
#: restricted crash's two entries can ever lie apart.
MAX_RECENT_IDS = 4096


def _collector_uids() -> frozenset[int]:
    collectors: set[int] = set()
    for name in COLLECTOR_USERS:
        try:
            collectors.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    return frozenset(collectors)


def trust_policy_for(uid: int) -> TrustPolicy:
    """The policy for `uid`: root, the collector system users that exist here, and `uid`."""
    return TrustPolicy.for_user(uid, _collector_uids())


def machine_trust_policy() -> TrustPolicy:
    """The fleet's policy: entries from root and the collector system users, any user's crash."""
    return TrustPolicy.for_machine(_collector_uids())


def _text(value: bytes) -> str | bytes:
    """A field's value as UTF-8 text; bytes when it is not (the domain replaces those)."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """Where the reader stands: the cursor and realtime of the last entry read."""

    cursor: str
    realtime_us: int


class JournalSource:
    """Trusted crash records of one user from the local journal (or a directory, for tests)."""

    def __init__(
        self,
        policy: TrustPolicy,
        *,
        path: str | None = None,
        probe: Callable[[TrustPolicy, str], CoreProbe] = probe_core,
        kcrash: Callable[[Crash], KCrashInfo | None] | None = None,
        untrusted_level: int = logging.INFO,
    ) -> None:
        self._policy = policy
        # The fleet sees every user's forgeries: it logs a count instead of a line each.
        self._untrusted_level = untrusted_level
        self._probe = probe
        self._kcrash = KCrashLookup() if kcrash is None else kcrash
        self._reader = _Reader(0, path) if path else _Reader(LOCAL_ONLY)
        self._reader.data_threshold = FIELD_THRESHOLD
        # Two matches on one field are OR-ed by sd-journal (sd_journal_add_match(3)): native
        # crashes and self-reported ones (unhandled exceptions), both through the index.
        for message_id in CRASH_MESSAGE_IDS:
            self._reader.add_match(f"MESSAGE_ID={message_id}")
        self.position = Position("", 0)
        self.skipped = 0
        #: crash id → cursor of the entry it was read from (bounded, oldest first).
        self._views: dict[str, str] = {}
        self.last_read = 0

    def close(self) -> None:
        self._reader.close()

    def fileno(self) -> int:
        """The fd to watch for readability (journald's inotify wake-ups)."""
        return int(self._reader.fileno())

    def process(self) -> None:
        """Acknowledge the fd's event (also picks up journal files created since)."""
        self._reader.process()

    def seek_realtime(self, realtime_us: int) -> None:
        """Seek near `realtime_us`; sd_journal may land on a slightly earlier entry ("the next
        closest", sd_journal_seek_realtime_usec(3)), so callers filter by realtime too."""
        # An int is taken as µs as is (a float would be seconds, rounded through a double).
        self._reader.seek_realtime(int(realtime_us))

    def seek_after(self, cursor: str) -> None:
        """Continue after the entry of `cursor`; when that entry is gone (vacuumed), from the
        next one that is still there (sd_journal_seek_cursor(3) lands on the closest)."""
        self._reader.seek_cursor(cursor)
        if self._reader._next(1) and not self._reader.test_cursor(cursor):
            self._reader._previous(1)

    def wait(self, timeout_s: float) -> None:
        """Block until the journal fd is readable or `timeout_s` passed (then call process()).

        Not sd_journal_wait(3): it retries its poll when a signal interrupts it, so a Python
        SIGTERM handler would run only at the end of the timeout. poll() here returns to Python
        on EINTR (PEP 475), which runs the handler at once. As sd_journal_wait does, the wait
        is shortened to sd_journal_get_timeout(3)'s when the journal asks for that."""
        ms = max(0.0, timeout_s) * 1000
        journal_us = self._reader.get_timeout()
        if journal_us is not None:
            ms = min(ms, max(0.0, journal_us / 1000 - time.monotonic() * 1000))
        poller = select.poll()
        poller.register(self.fileno(), self._reader.get_events())
        poller.poll(ms)

    def seek_now(self) -> None:
        """Only entries from now on (never seek_tail with a match: TESTING.md)."""
        self._reader.seek_realtime(int(time.time() * 1e6))

    def raw_entries(self, limit: int | None = None) -> Iterator[Entry]:
        """The next entries as raw field dicts (advances `position`). Of an entry from a sender
        the policy does not trust, only `_UID` is read (journald stamps it: it is short)."""
        n = 0
        while limit is None or n < limit:
            if not self._reader._next(1):
                return
            n += 1
            realtime = int(self._reader._get_realtime())
            cursor = str(self._reader._get_cursor())
            self.position = Position(cursor, realtime)
            sender = self._sender()
            if self._policy.may_read(sender):
                # A field given twice comes as a list: no field of ours is, so it is dropped.
                fields = {k: _text(v) for k, v in self._reader._get_all().items()
                          if isinstance(v, bytes)}  # fmt: skip
            else:
                fields = {TRUSTED_UID: str(sender)}
            yield fields | {REALTIME: str(realtime), CURSOR: cursor}

    def _sender(self) -> int:
        try:
            value = self._reader._get(TRUSTED_UID)
        except KeyError:
            return -1
        return int(value) if value.isdigit() else -1

    def crash(self, entry: Entry) -> Crash | None:
        """The trusted record of one entry, or None (logged) when untrusted or malformed."""
        sender = str(entry.get(TRUSTED_UID, ""))
        if not sender.isdigit() or not self._policy.may_read(int(sender)):
            # raw_entries read nothing more of it
            self.skipped += 1
            log.log(self._untrusted_level, "ignored an untrusted coredump entry (sender uid %s)",
                    sender or "?")  # fmt: skip
            return None
        try:
            crash = crash_from_entry(entry)
        except MalformedEntryError as exc:
            self.skipped += 1
            log.warning("skipped a malformed coredump entry at %s: %s", entry.get(CURSOR), exc)
            return None
        if not self._policy.accepts(crash):
            self.skipped += 1
            log.log(self._untrusted_level, "ignored an untrusted coredump entry (sender uid %d)",
                    crash.sender_uid)  # fmt: skip
            return None
        if not self._first_view(crash.id, str(entry.get(CURSOR, ""))):
            log.debug("crash %s: its second entry (a restricted crash's other view)", crash.id)
            return None
        probe = self._probe(self._policy, crash.core_filename) if crash.core_filename else None
        return dataclasses.replace(
            crash, core_state=decide_core_state(crash, probe), kcrash=self._kcrash(crash)
        )

    def _first_view(self, crash_id: str, cursor: str) -> bool:
        """Whether this entry is the first one read of its crash (the same entry read again is).

        A restricted crash has two entries with one id (collector/journal/restriction.py): the
        full one in the system journal, sent first, and the user's own. A reader in an admin
        group (systemd-journal, adm) reads both; it must see one crash, the full one."""
        known = self._views.get(crash_id)
        if known is not None:
            return known == cursor
        self._views[crash_id] = cursor
        if len(self._views) > MAX_RECENT_IDS:
            del self._views[next(iter(self._views))]
        return True

    def read(self, limit: int | None = None) -> list[Crash]:
        """The next trusted crashes (up to `limit` entries read; `last_read` says how many)."""
        out = []
        self.last_read = 0
        for entry in self.raw_entries(limit):
            self.last_read += 1
            crash = self.crash(entry)
            if crash is not None:
                out.append(crash)
        return out

    def history(
        self, since_us: int, cursor: str, cursor_realtime_us: int
    ) -> tuple[list[Crash], list[Crash]]:
        """(already handled, new) trusted crashes since `since_us`, split at the saved cursor.

        Entries up to and including the cursor's own entry were handled in an earlier run. If
        that entry is gone (vacuumed, or older than `since_us`), its realtime decides.
        Leaves the reader after the last entry, ready for the live watch.
        """
        self.seek_realtime(since_us)
        handled: list[Crash] = []
        new: list[Crash] = []
        found = False
        rows: list[tuple[str, int, Crash | None]] = []
        for entry in self.raw_entries():
            if self.position.realtime_us < since_us:
                continue
            crash = self.crash(entry)
            rows.append((self.position.cursor, self.position.realtime_us, crash))
            found = found or (bool(cursor) and self.position.cursor == cursor)
        after = not cursor
        for row_cursor, realtime, crash in rows:
            if found:
                is_new = after
                after = after or row_cursor == cursor
            else:
                is_new = not cursor or realtime > cursor_realtime_us
            if crash is not None:
                (new if is_new else handled).append(crash)
        return handled, new
