"""Sending crash reports: build the event, queue it durably, deliver it, keep what failed.

Every report is written to the queue before the first attempt and removed only after the
server's 2xx, so a report survives the process being killed mid-send, a server that is away,
5xx and 429 answers. Queued reports are retried with exponential backoff (a server's
Retry-After wins when longer) until they expire after 30 days. When the disk is full the report
is still sent directly; only if that fails too does the caller get an error that says both.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from drkonqi_lite.adapters.report_queue import (
    QueuedReport,
    QueueError,
    ReportQueue,
    SentRecord,
)
from drkonqi_lite.adapters.sentry_transport import Delivery, Outcome, send_envelope
from drkonqi_lite.adapters.state_store import StateStore, state_dir
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.dsn import Dsn, DsnError, envelope, parse_dsn
from drkonqi_lite.domain.reporting_policy import AdminPolicy, destination, parse_admin_policy
from drkonqi_lite.domain.sentry_event import EventOptions, HostFacts, build_event, serialize

#: Backoff after the n-th failed attempt: 1 min, 2 min, 4 min, ... at most 6 h.
log = logging.getLogger(__name__)
BACKOFF_BASE_S = 60.0
BACKOFF_MAX_S = 6 * 3600.0
Send = Callable[[Dsn, bytes], Delivery]
ADMIN_CONF = "etc/drkonqi-lite/reporting.conf"


def queue_for(env: Mapping[str, str] = os.environ) -> ReportQueue:
    return ReportQueue(state_dir(env) / "reports")


def admin_policy(prefix: str | None = None) -> AdminPolicy:
    """The administrator's reporting.conf (under DRKONQI_LITE_PREFIX, "/" by default)."""
    root = Path(prefix or os.environ.get("DRKONQI_LITE_PREFIX", "/"))
    try:
        text = (root / ADMIN_CONF).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return AdminPolicy()
    except OSError as exc:
        log.warning("cannot read %s: %s", root / ADMIN_CONF, exc.strerror)
        return AdminPolicy()
    return parse_admin_policy(text, log.warning)


def host_facts(env: Mapping[str, str] = os.environ, root: Path = Path("/")) -> HostFacts:
    """os-release (os-release(5): /etc, else /usr/lib), the kernel, the arch, the desktop."""
    release: dict[str, str] = {}
    for path in (root / "etc/os-release", root / "usr/lib/os-release"):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")[:65536]
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.isidentifier():
                release[key] = value.strip().strip("\"'")
        break
    uname = os.uname()
    return HostFacts(release, uname.release, uname.machine, env.get("XDG_CURRENT_DESKTOP", ""))


def backoff(attempts: int, retry_after: float | None) -> float:
    delay: float = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** max(0, attempts - 1))
    return max(delay, retry_after or 0.0)


def _iso(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True, slots=True)
class ReportResult:
    """The outcome of `report`: SENT, RETRY (queued) or REJECTED; one line for the user."""

    event_id: str
    outcome: Outcome
    message: str
    queued: bool


class Reporter:
    """Builds, queues and sends reports. `send` and `clock` are injectable for unit tests."""

    def __init__(
        self,
        queue: ReportQueue,
        send: Send = send_envelope,
        clock: Callable[[], float] = time.time,
        find_link: Callable[[Dsn, str], str] | None = None,
    ) -> None:
        """`find_link`: asks the server for the event's page once it took a report (the app
        and the CLI, which show it; not the fleet, which shows nothing)."""
        self.queue = queue
        self._send = send
        self._clock = clock
        self._find_link = find_link

    def _deliver(self, dsn: Dsn, event: dict[str, object]) -> Delivery:
        body = envelope(event, serialize(event), dsn, _iso(self._clock()))
        return self._send(dsn, body)

    def report(
        self, crash: Crash, dsn: Dsn, facts: HostFacts, options: EventOptions
    ) -> ReportResult:
        """Send one crash's report now; queue it when the server cannot take it."""
        event = build_event(crash, facts, options)
        now = self._clock()
        item = QueuedReport(
            str(event["event_id"]), crash.id, dsn.text, now, 0, now, 0.0, "", False, event
        )
        queue_error: QueueError | None = None
        try:
            self.queue.put(item)
        except QueueError as exc:
            queue_error = exc
        delivery = self._deliver(dsn, event)
        return self._settle(item, dsn, delivery, queue_error)

    def report_for_user(self, crash: Crash, dsn_text: str, options: EventOptions) -> ReportResult:
        """What `drkonqi-lite report` and D-Bus ReportCrash do: a crash already delivered gives
        its event id again and sends nothing; else the DSN is chosen (`dsn_text`, the user's
        setting, the admin's rules: DsnError / NoDestinationError) and the report sent."""
        done = self.queue.sent(crash.id)
        if done is not None:
            when = datetime.datetime.fromtimestamp(done.sent_at).strftime("%Y-%m-%d %H:%M")
            return ReportResult(done.event_id, Outcome.SENT,
                                f"already reported to {done.server} on {when}", False)  # fmt: skip
        return self.report(crash, self.destination(crash, dsn_text), host_facts(), options)

    def destination(self, crash: Crash, dsn_text: str = "") -> Dsn:
        """`dsn_text`, else the user's report_dsn setting, else the admin's rules."""
        user_dsn = StateStore.from_environment().settings().report_dsn
        return destination(crash, dsn_text, user_dsn, admin_policy())

    def sent_ids(self) -> dict[str, str]:
        """crash id → event id of every delivered report (the crash dict's `reported`)."""
        return {r.crash_id: r.event_id for r in self.queue.sent_records()}

    def sent_links(self) -> dict[str, str]:
        """crash id → the event's page, for the delivered reports whose server has one."""
        return {r.crash_id: r.link for r in self.queue.sent_records() if r.link}

    def _settle(
        self, item: QueuedReport, dsn: Dsn, delivery: Delivery, queue_error: QueueError | None
    ) -> ReportResult:
        queued = queue_error is None
        if delivery.outcome is Outcome.SENT:
            self._mark_sent(item, dsn, queued=queued)
            return ReportResult(item.event_id, Outcome.SENT, f"sent to {dsn.server}", False)
        if delivery.outcome is Outcome.REJECTED:
            if queued:
                self.queue.remove(item.event_id)
            return ReportResult(
                item.event_id,
                Outcome.REJECTED,
                f"{dsn.server} refused the report: {delivery.reason}",
                False,
            )
        if queue_error is not None:
            raise QueueError(
                queue_error.errno, f"not sent ({delivery.reason}) and {queue_error.strerror}"
            )
        self._retry_later(item, delivery)
        return ReportResult(
            item.event_id, Outcome.RETRY, f"queued, will retry: {delivery.reason}", True
        )

    def _mark_sent(self, item: QueuedReport, dsn: Dsn, *, queued: bool = True) -> None:
        # The record first: a crash between the two leaves a queued copy that the server
        # deduplicates by event id, never a delivered report that looks unsent.
        link = self._find_link(dsn, item.event_id) if self._find_link else ""
        try:
            self.queue.record_sent(
                SentRecord(item.crash_id, item.event_id, dsn.server, self._clock(), link)
            )
        except QueueError as exc:
            log.warning("report %s was sent, but not recorded: %s", item.event_id, exc.strerror)
        if queued:
            self.queue.remove(item.event_id)

    def _retry_later(self, item: QueuedReport, delivery: Delivery) -> None:
        now = self._clock()
        attempts = item.attempts + 1
        self.queue.put(
            dataclasses.replace(
                item,
                attempts=attempts,
                next_attempt=now + backoff(attempts, delivery.retry_after),
                not_before=now + delivery.retry_after if delivery.retry_after else 0.0,
                last_error=delivery.reason,
            )
        )

    def send_queued(self, *, force: bool = False) -> collections.Counter[str]:
        """Send what is due (all with `force`, except what a server's Retry-After holds back).
        After a connection failure, the other reports for that server wait for the next round.
        Returns counts by outcome, plus "expired" and "waiting"."""
        counts: collections.Counter[str] = collections.Counter()
        with self.queue.sending():
            now = self._clock()
            counts["expired"] = len(self.queue.expire(now))
            down: set[str] = set()
            for item in self.queue.reports():
                if (
                    item.rejected
                    or item.dsn in down
                    or now < item.not_before
                    or (not force and now < item.next_attempt)
                ):
                    counts["waiting"] += 1
                    continue
                counts[self._send_one(item, down)] += 1
        return counts

    def _send_one(self, item: QueuedReport, down: set[str]) -> str:
        try:
            dsn = parse_dsn(item.dsn)
        except DsnError as exc:
            self.queue.put(dataclasses.replace(item, rejected=True, last_error=str(exc)))
            return Outcome.REJECTED
        delivery = self._deliver(dsn, item.event)
        if delivery.outcome is Outcome.SENT:
            self._mark_sent(item, dsn)
        elif delivery.outcome is Outcome.REJECTED:
            self.queue.put(dataclasses.replace(item, rejected=True, last_error=delivery.reason))
        else:
            self._retry_later(item, delivery)
            if delivery.retry_after is not None or not delivery.reason.startswith("HTTP"):
                down.add(item.dsn)
        return delivery.outcome
