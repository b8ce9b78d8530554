"""The durable per-user queue of crash reports that could not be sent yet, and the record of
what was sent.

Layout under `$XDG_STATE_HOME/drkonqi-lite/reports/` (mode 0700): `EVENT_ID.json`, one queued
report each (the event, its DSN, attempts and when to try next); `sent/CRASH_ID.json`, one per
delivered report (event id, server, when). Every file is written to a temporary name through the
directory's fd with O_EXCL|O_NOFOLLOW, fsync'd, renamed over the final name and the directory
fsync'd: a crash or power loss leaves the old or the new file, never a torn one. A report is
removed only after the server answered 2xx, and the event id is the server's idempotency key,
so a report is never stored twice. Reports older than 30 days expire. A full disk raises
QueueError with one line saying so; nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drkonqi_lite_collector.journal.schema import QUEUED_SUFFIX

log = logging.getLogger(__name__)
EXPIRY_S = 30 * 86400
#: A queued file larger than this is not ours (events are bounded to 512 KiB).
MAX_FILE = 2 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class QueueError(OSError):
    """The queue could not store or read a report (one line for the user)."""


class QueueBusyError(QueueError):
    """Another process is sending the queued reports right now."""


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedReport:
    """One report waiting for its server."""

    event_id: str
    crash_id: str
    dsn: str
    queued_at: float
    attempts: int
    next_attempt: float
    not_before: float
    last_error: str
    rejected: bool
    event: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"format": 1, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True, slots=True)
class SentRecord:
    """A delivered report: what the crash list shows."""

    crash_id: str
    event_id: str
    server: str
    sent_at: float
    #: The event's page on the server, where it has one for the id (domain/event_link.py);
    #: records written before links existed have none.
    link: str = ""


def _name_ok(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_" for c in name)


class ReportQueue:
    """The queue directory (created on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _open_dir(self, sub: str = "", *, create: bool) -> int:
        path = self.directory / sub if sub else self.directory
        try:
            if create:
                # The queue's own directory first: `parents` would make it 0755 (umask'd 0777).
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not create:
                raise
            raise QueueError(exc.errno, f"cannot open {path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
            os.close(fd)
            raise QueueError(errno.EPERM, f"{path} is not private to this user: not used")
        return fd

    def _write(self, sub: str, name: str, data: dict[str, Any]) -> None:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        dfd = self._open_dir(sub, create=True)
        tmp = f".{name}.{os.getpid()}.tmp"
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dfd,
            )
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.fsync(dfd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            where = self.directory / sub
            raise QueueError(
                exc.errno, f"cannot store the report in {where}: {exc.strerror}"
            ) from None
        finally:
            os.close(dfd)

    def _read(self, dfd: int, name: str) -> dict[str, Any] | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("skipping %s: %s", name, exc.strerror)
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_FILE + 1)
        try:
            value = json.loads(data) if len(data) <= MAX_FILE else None
        except ValueError:
            value = None
        if not isinstance(value, dict):
            log.warning("skipping %s: not a queued report", name)
            return None
        return value

    def put(self, report: QueuedReport) -> None:
        """Store (or replace) `report` durably; QueueError when it cannot be stored."""
        if not _name_ok(report.event_id):
            raise QueueError(errno.EINVAL, f"bad event id {report.event_id!r}")
        self._write("", report.event_id + QUEUED_SUFFIX, report.to_json())

    def remove(self, event_id: str) -> None:
        try:
            dfd = self._open_dir(create=False)
        except FileNotFoundError:
            return
        try:
            os.unlink(event_id + QUEUED_SUFFIX, dir_fd=dfd)
            os.fsync(dfd)
        except FileNotFoundError:
            pass
        finally:
            os.close(dfd)

    def reports(self) -> list[QueuedReport]:
        """Every queued report, oldest first (unreadable files are skipped with a warning)."""
        try:
            dfd = self._open_dir(create=False)
        except FileNotFoundError:
            return []
        out: list[QueuedReport] = []
        try:
            for name in os.listdir(dfd):
                if not name.endswith(QUEUED_SUFFIX) or not _name_ok(name[: -len(QUEUED_SUFFIX)]):
                    continue
                data = self._read(dfd, name)
                if data is not None:
                    try:
                        data.pop("format", None)
                        out.append(QueuedReport(**data))
                    except TypeError:
                        log.warning("skipping %s: not a queued report", name)
        finally:
            os.close(dfd)
        return sorted(out, key=lambda r: r.queued_at)

    def expire(self, now: float) -> list[QueuedReport]:
        """Remove the reports queued more than 30 days ago; return them (the caller says so)."""
        old = [r for r in self.reports() if now - r.queued_at > EXPIRY_S]
        for report in old:
            log.warning("report %s of crash %s expired unsent", report.event_id, report.crash_id)
            self.remove(report.event_id)
        return old

    def record_sent(self, record: SentRecord) -> None:
        self._write("sent", f"{record.crash_id}.json", dataclasses.asdict(record))

    def sent(self, crash_id: str) -> SentRecord | None:
        """The delivery record of `crash_id`, if its report reached a server."""
        if not _name_ok(crash_id):
            return None
        try:
            dfd = self._open_dir("sent", create=False)
        except (FileNotFoundError, QueueError):
            return None
        try:
            data = self._read(dfd, f"{crash_id}.json")
        finally:
            os.close(dfd)
        try:
            return SentRecord(**data) if data is not None else None
        except TypeError:
            return None

    def sent_records(self) -> list[SentRecord]:
        """Every delivery record (one directory listing: the crash list shows them all)."""
        try:
            dfd = self._open_dir("sent", create=False)
        except (FileNotFoundError, QueueError):
            return []
        out = []
        try:
            for name in os.listdir(dfd):
                data = self._read(dfd, name) if name.endswith(".json") else None
                if data is not None:
                    with contextlib.suppress(TypeError):
                        out.append(SentRecord(**data))
        finally:
            os.close(dfd)
        return out

    def save_state(self, name: str, data: dict[str, Any]) -> None:
        """Durably store a small record of the sender's own (the fleet's journal cursor) in
        `state/NAME.json`, as atomically as a report."""
        self._write("state", f"{name}.json", data)

    def state(self, name: str) -> dict[str, Any] | None:
        try:
            dfd = self._open_dir("state", create=False)
        except FileNotFoundError:
            return None
        try:
            return self._read(dfd, f"{name}.json")
        finally:
            os.close(dfd)

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Hold the queue's send lock (one sender at a time, so nothing is sent twice)."""
        dfd = self._open_dir(create=True)
        try:
            fd = os.open(
                ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
            )
        finally:
            os.close(dfd)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise QueueBusyError(errno.EBUSY, "another drkonqi-lite is sending") from None
            yield
        finally:
            os.close(fd)
