"""Reporting without a server at hand: the durable queue, retries, never twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drkonqi_lite.adapters.report_queue import (
    EXPIRY_S,
    QueueBusyError,
    QueueError,
    ReportQueue,
)
from drkonqi_lite.adapters.reporter import BACKOFF_MAX_S, Reporter, backoff
from drkonqi_lite.adapters.sentry_transport import Delivery, Outcome, retry_after
from drkonqi_lite.domain.dsn import Dsn, parse_dsn
from drkonqi_lite.domain.sentry_event import EventOptions, HostFacts
from tests.entries import symbolized_crash as crash

DSN = "https://abc123@sentry.example.org/42"


FACTS = HostFacts({"NAME": "Debian"}, "6.18", "x86_64")


class FakeServer:
    """Answers each envelope with the next outcome; records what it got."""

    def __init__(self, *answers: Delivery) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []

    def __call__(self, dsn: Dsn, body: bytes) -> Delivery:
        self.bodies.append(body)
        return self.answers.pop(0) if self.answers else Delivery(Outcome.SENT, "HTTP 200")

    def event_ids(self) -> list[str]:
        return [json.loads(b.split(b"\n", 1)[0])["event_id"] for b in self.bodies]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def reporter(tmp_path: Path, server: FakeServer, clock: Clock | None = None) -> Reporter:
    return Reporter(ReportQueue(tmp_path / "reports"), server, clock or Clock())


def test_sent_reports_leave_the_queue_and_are_remembered(tmp_path: Path) -> None:
    server = FakeServer()
    rep = reporter(tmp_path, server)
    result = rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())
    assert result.outcome is Outcome.SENT
    assert rep.queue.reports() == []
    record = rep.queue.sent(crash().id)
    assert record is not None
    assert record.event_id == result.event_id
    assert server.event_ids() == [result.event_id]


def test_server_away_queues_then_sends_once(tmp_path: Path) -> None:
    clock = Clock()
    server = FakeServer(Delivery(Outcome.RETRY, "cannot reach"))
    rep = reporter(tmp_path, server, clock)
    result = rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())
    assert result.outcome is Outcome.RETRY
    assert result.queued
    [queued] = rep.queue.reports()
    assert queued.attempts == 1
    assert queued.next_attempt == clock.now + 60
    # Not due yet: nothing is sent; once due, it is sent, and a second round sends nothing.
    assert rep.send_queued()["waiting"] == 1
    clock.now += 61
    assert rep.send_queued()[Outcome.SENT] == 1
    assert rep.send_queued()[Outcome.SENT] == 0
    assert server.event_ids() == [result.event_id, result.event_id]
    assert rep.queue.reports() == []


def test_queued_reports_survive_a_new_process(tmp_path: Path) -> None:
    rep = reporter(tmp_path, FakeServer(Delivery(Outcome.RETRY, "HTTP 503")))
    rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions(comment="saved a file"))
    again = Reporter(ReportQueue(tmp_path / "reports"), FakeServer(), Clock())
    [queued] = again.queue.reports()
    assert queued.event["extra"]["user_comment"] == "saved a file"
    assert again.send_queued(force=True)[Outcome.SENT] == 1


def test_retry_after_holds_back_even_a_forced_send(tmp_path: Path) -> None:
    clock = Clock()
    server = FakeServer(Delivery(Outcome.RETRY, "HTTP 429", retry_after=3600))
    rep = reporter(tmp_path, server, clock)
    rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())
    [queued] = rep.queue.reports()
    assert queued.not_before == clock.now + 3600
    assert rep.send_queued(force=True)["waiting"] == 1
    assert len(server.bodies) == 1
    clock.now += 3601
    assert rep.send_queued()[Outcome.SENT] == 1


def test_a_down_server_is_tried_once_per_round(tmp_path: Path) -> None:
    server = FakeServer(*[Delivery(Outcome.RETRY, "cannot reach")] * 4)
    rep = reporter(tmp_path, server)
    for pid in ("1", "2", "3"):
        rep.report(crash(COREDUMP_PID=pid), parse_dsn(DSN), FACTS, EventOptions())
    assert len(server.bodies) == 3
    counts = rep.send_queued(force=True)
    assert len(server.bodies) == 4  # the first failure stops the round for that server
    assert counts[Outcome.RETRY] == 1
    assert counts["waiting"] == 2


def test_a_refused_report_is_not_queued(tmp_path: Path) -> None:
    rep = reporter(tmp_path, FakeServer(Delivery(Outcome.REJECTED, "HTTP 403 Forbidden")))
    result = rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())
    assert result.outcome is Outcome.REJECTED
    assert "HTTP 403" in result.message
    assert rep.queue.reports() == []
    assert rep.queue.sent(crash().id) is None


def test_reports_expire_after_30_days(tmp_path: Path) -> None:
    clock = Clock()
    rep = reporter(tmp_path, FakeServer(Delivery(Outcome.RETRY, "cannot reach")), clock)
    rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())
    clock.now += EXPIRY_S + 1
    assert rep.send_queued(force=True)["expired"] == 1
    assert rep.queue.reports() == []


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n, None) for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff(40, None) == BACKOFF_MAX_S
    assert backoff(1, 900) == 900
    assert retry_after("120", 0) == 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == 10
    assert retry_after("soon", 0) is None


def test_one_sender_at_a_time(tmp_path: Path) -> None:
    rep = reporter(tmp_path, FakeServer())
    with rep.queue.sending(), pytest.raises(QueueBusyError):
        rep.send_queued()


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    rep = reporter(tmp_path, FakeServer(Delivery(Outcome.RETRY, "cannot reach")))
    result = rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())
    [queued] = rep.queue.reports()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    path = tmp_path / "reports" / f"{result.event_id}.json"
    path.unlink()
    path.symlink_to(victim)
    assert rep.queue.reports() == []  # skipped, not read through the link
    rep.queue.put(queued)  # replaces the link itself
    assert victim.read_text() == "keep"
    assert not path.is_symlink()
    assert rep.queue.reports() == [queued]


def test_a_shared_queue_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "reports"
    directory.mkdir()
    directory.chmod(0o757)
    rep = Reporter(ReportQueue(directory), FakeServer(Delivery(Outcome.RETRY, "cannot reach")))
    with pytest.raises(QueueError, match="not private"):
        rep.report(crash(), parse_dsn(DSN), FACTS, EventOptions())


def test_queue_write_failure_still_sends_directly(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    server = FakeServer()
    ok = Reporter(ReportQueue(blocker), server)
    assert ok.report(crash(), parse_dsn(DSN), FACTS, EventOptions()).outcome is Outcome.SENT
    assert len(server.bodies) == 1
    down = Reporter(ReportQueue(blocker), FakeServer(Delivery(Outcome.RETRY, "cannot reach")))
    with pytest.raises(QueueError, match=r"not sent \(cannot reach\) and cannot"):
        down.report(crash(), parse_dsn(DSN), FACTS, EventOptions())

