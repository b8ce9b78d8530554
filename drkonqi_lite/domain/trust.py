"""Which journal entries and core paths the app trusts (DESIGN.md §4, SECURITY.md 6 and 9).

Any user can write a journal entry with the coredump MESSAGE_ID, so an entry is believed only
when journald's own `_UID` (stamped from the sender's socket credentials, unforgeable) is root,
the collector's system user, systemd-coredump's user, or this user; and only crashes of this
user are shown. A core path is believed only when it names a file directly inside one of the
known storage directories. Pure: the caller resolves user names and opens files.
"""

from __future__ import annotations

import dataclasses
import enum
import posixpath

from drkonqi_lite.domain.crash import Crash
from drkonqi_lite_collector.journal.schema import (
    COLLECTOR_USER,
    CRASH_MESSAGE_IDS,
    STORAGE_DIR,
    CoreState,
)

#: Where cores may live: ours (DESIGN.md §2.2) and systemd-coredump's. Ours comes first
#: (drkonqi_lite/adapters/stored_core.py: only ours has a deletion service).
STORAGE_DIRS: tuple[str, ...] = (STORAGE_DIR, "/var/lib/systemd/coredump")
#: System users that file coredump entries for crashes of other system users.
COLLECTOR_USERS: tuple[str, ...] = (COLLECTOR_USER, "systemd-coredump")


@dataclasses.dataclass(frozen=True, slots=True)
class TrustPolicy:
    """The trust decision for one user (`own_uid`) and the senders vouched for."""

    own_uid: int
    trusted_senders: frozenset[int]
    storage_dirs: tuple[str, ...] = STORAGE_DIRS
    #: The admin's fleet service: crashes of every user (the senders are still checked).
    every_user: bool = False

    @classmethod
    def for_user(cls, own_uid: int, collector_uids: frozenset[int]) -> TrustPolicy:
        """Root, the collectors' system users (those that exist) and the user itself."""
        return cls(own_uid=own_uid, trusted_senders=frozenset({0, own_uid}) | collector_uids)

    @classmethod
    def for_machine(cls, collector_uids: frozenset[int]) -> TrustPolicy:
        """Root and the collectors' system users about any user's crash, and a user about their
        own (our collector sends a regular user's entry with that user's credentials, so that
        it lands in their journal: handler.sender_credentials). A user can thus file entries
        about their own uid only, as with the app; the fleet forwards them as that user's."""
        return cls(own_uid=0, trusted_senders=frozenset({0}) | collector_uids, every_user=True)

    def accepts_entry(self, message_id: str, sender_uid: int, crash_uid: int) -> bool:
        """True for a coredump (or self-reported backtrace) entry from a trusted sender about a
        crash of this user (of any user for the fleet)."""
        if message_id not in CRASH_MESSAGE_IDS:
            return False
        if self.every_user:
            return sender_uid in self.trusted_senders or sender_uid == crash_uid
        return sender_uid in self.trusted_senders and crash_uid == self.own_uid

    def may_read(self, sender_uid: int) -> bool:
        """Whether an entry of this sender is read at all (the fleet: every sender's, since
        each user files their own crashes; the app: only the trusted senders')."""
        return self.every_user or sender_uid in self.trusted_senders

    def accepts(self, crash: Crash) -> bool:
        """`accepts_entry` for a parsed record."""
        return self.accepts_entry(crash.fields.get("MESSAGE_ID", ""), crash.sender_uid, crash.uid)

    def core_location(self, filename: str) -> tuple[str, str] | None:
        """(storage dir, base name) when `filename` is directly inside a storage dir, else None.

        Rejects relative paths, `..`, `.`, doubled slashes and sub-directories rather than
        normalising them: a path we did not write ourselves is not worth interpreting.
        """
        if not filename.startswith("/") or "\x00" in filename:
            return None
        directory, name = posixpath.split(filename)
        if name in {"", ".", ".."} or posixpath.normpath(filename) != filename:
            return None
        if directory not in self.storage_dirs:
            return None
        return directory, name


class CoreProbe(enum.StrEnum):
    """What opening the core file (O_NOFOLLOW, inside the storage dir) found."""

    READABLE = "readable"
    UNREADABLE = "unreadable"
    ABSENT = "absent"
    NOT_A_FILE = "not-a-file"
    OUTSIDE_STORAGE = "outside-storage"


def decide_core_state(crash: Crash, probe: CoreProbe | None) -> str:
    """The `core_state` shown to the user, from the entry and the probe of its file (if any).

    `probe` is None when the entry names no file. A restricted core (set-uid, non-dumpable,
    identity not proven) is `inaccessible` even if a broken ACL would let us read it.
    """
    if probe is None:
        return CoreState.PRESENT if crash.core_in_journal else CoreState.NONE
    if probe is CoreProbe.OUTSIDE_STORAGE:
        return CoreState.NONE
    if probe in {CoreProbe.ABSENT, CoreProbe.NOT_A_FILE}:
        return CoreState.MISSING
    if crash.restricted or probe is CoreProbe.UNREADABLE:
        return CoreState.INACCESSIBLE
    if crash.core_truncated:
        return CoreState.TRUNCATED
    return CoreState.PRESENT
