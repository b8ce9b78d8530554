"""The admin's fleet forwarder: every crash of the machine, to the admin's DSN (DESIGN.md §2.5).

Follows the system journal (our collector's entries and systemd-coredump's, every user's,
trusted by journald's `_UID` as the app trusts them) and hands each crash to the same Reporter
the user's app uses: the same event, the same durable queue (in the system state directory),
the admin's [Fleet] redaction choices. The journal position is saved after each entry, and only
once its report was sent, durably queued or refused by the server: a restart never sends a crash
twice (a crash already recorded as sent is skipped too) and never skips one. Before the first
entry the position is the time the service first ran, so crashes between two runs are not lost.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from drkonqi_lite.adapters.journal import JournalSource, machine_trust_policy
from drkonqi_lite.adapters.report_queue import QueueBusyError, ReportQueue
from drkonqi_lite.adapters.reporter import Reporter, host_facts
from drkonqi_lite.adapters.sentry_transport import Outcome
from drkonqi_lite.domain.crash import CURSOR, REALTIME
from drkonqi_lite.domain.reporting_policy import FleetPolicy, NoDestinationError, fleet_destination
from drkonqi_lite.domain.sentry_event import EventOptions, HostFacts
from drkonqi_lite_collector.journal.schema import FLEET_QUEUE_SUBDIR, FLEET_SUBDIR, STATE_DIR

log = logging.getLogger(__name__)
#: The unit's StateDirectory=drkonqi-lite/fleet sets $STATE_DIRECTORY; this is the same place.
SYSTEM_STATE = Path("/") / STATE_DIR / FLEET_SUBDIR
POSITION = "fleet-position"
#: How long to sleep at most when nothing happens: queued reports are retried at least this often.
IDLE_S = 60.0
#: The journal fd wakes on every entry of the machine, crash or not: forward at most this often
#: (a crash reaches the server up to this much later; a forwarder with nothing to do wakes a few
#: times a minute, not once per log line of every program: benchmarks/REPORTING.md).
COALESCE_S = 5.0


def system_queue(env: dict[str, str] | None = None) -> ReportQueue:
    """SYSTEM_STATE/reports (or $STATE_DIRECTORY/reports under systemd)."""
    env = dict(os.environ) if env is None else env
    base = env.get("STATE_DIRECTORY", "").split(":")[0] or str(SYSTEM_STATE)
    return ReportQueue(Path(base) / FLEET_QUEUE_SUBDIR)


class Forwarder:
    """One pass or a follow loop over the system journal; `source` is injectable for tests."""

    def __init__(self, policy: FleetPolicy, reporter: Reporter,
                 source: JournalSource | None = None) -> None:  # fmt: skip
        """`policy`'s DSNs are well-formed (fleet_cli checks them all before it starts)."""
        self.policy = policy
        self.reporter = reporter
        self.options = EventOptions(include_cmdline=policy.include_cmdline,
                                    include_hostname=policy.include_hostname)  # fmt: skip
        self.facts: HostFacts = host_facts({})
        self.source = source or JournalSource(machine_trust_policy(), kcrash=lambda _c: None,
                                              untrusted_level=logging.DEBUG)  # fmt: skip
        self.forwarded = 0
        self._since_us = 0
        #: A report just went through: the server is back, the queue need not wait its backoff.
        self._server_up = False

    def start(self) -> None:
        """Position the reader after the saved cursor, else at the saved (or now's) floor."""
        # sd_journal_get_fd(3) makes the inotify watches: before the first read, so that an
        # entry written between that read and the first wait wakes the wait (made later, it
        # would go unnoticed until the wait's timeout, IDLE_S).
        self.source.fileno()
        saved = self.reporter.queue.state(POSITION) or {}
        cursor, since = str(saved.get("cursor", "")), saved.get("since_us")
        if cursor:
            self.source.seek_after(cursor)
            return
        self._since_us = since if isinstance(since, int) else int(time.time() * 1e6)
        if not isinstance(since, int):
            self.reporter.queue.save_state(POSITION, {"cursor": "", "since_us": self._since_us})
        self.source.seek_realtime(self._since_us)

    def drain(self) -> int:
        """Forward every new entry; returns how many crashes were forwarded or queued."""
        n, skipped = 0, self.source.skipped
        for entry in self.source.raw_entries():
            if int(str(entry[REALTIME])) >= self._since_us:
                n += self._forward(entry)
            # Only now: the report is on the server, in the queue, or refused for good.
            self.reporter.queue.save_state(POSITION, {"cursor": str(entry[CURSOR])})
        if self.source.skipped > skipped:
            # Any user can file entries: one line per batch, not one per forgery.
            log.info("skipped %d untrusted or malformed crash entries",
                     self.source.skipped - skipped)  # fmt: skip
        return n

    def _forward(self, entry: dict[str, str | bytes]) -> int:
        crash = self.source.crash(entry)
        if crash is None:
            return 0
        # Stopped between the send (or queueing) and the cursor's save: not a second report.
        queue = self.reporter.queue
        if queue.sent(crash.id) is not None or any(r.crash_id == crash.id for r in queue.reports()):
            log.info("crash %s was forwarded before; not again", crash.id)
            return 0
        try:
            dsn = fleet_destination(crash, self.policy)
        except NoDestinationError as exc:
            log.info("crash %s (%s) not forwarded: %s", crash.id, crash.exe or crash.comm, exc)
            return 0
        result = self.reporter.report(crash, dsn, self.facts, self.options)
        log.info("crash %s (%s, uid %d): %s, event %s", crash.id, crash.exe or crash.comm,
                 crash.uid, result.message, result.event_id)  # fmt: skip
        self.forwarded += 1
        self._server_up = self._server_up or result.outcome is Outcome.SENT
        return 1

    def retry_queued(self, *, force: bool = False) -> None:
        """Send the queued reports that are due (all of them once a new report went through)."""
        try:
            self.reporter.send_queued(force=force or self._server_up)
        except QueueBusyError:
            log.info("another process is sending the queued reports; next round")
        self._server_up = False

    def follow(self) -> None:
        """Forward as crashes arrive, and retry the queue when due; until killed."""
        self.start()
        while True:
            self.drain()
            self.retry_queued()
            # Before the wait, not between it and the read: what the journal reports in
            # process() (files created meanwhile: a new user's first crash) is read at once.
            time.sleep(COALESCE_S)
            self.source.wait(self._idle())
            self.source.process()

    def _idle(self) -> float:
        due = [r.next_attempt for r in self.reporter.queue.reports() if not r.rejected]
        return max(1.0, min([IDLE_S, *(d - time.time() for d in due)]))
