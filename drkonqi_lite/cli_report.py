"""`drkonqi-lite report`: send a crash to its developers on the Sentry protocol (DESIGN.md §2.5).

`report ID|PID [--dsn DSN] [--comment TEXT] [--include-cmdline]` sends one crash now (running
the command is the consent), prints the event id and exits 0 when the server took it, 75
(EX_TEMPFAIL, sysexits.h) when it was queued for later; `report --send-queued` sends what is
queued; `report --list-queued [--json]` lists it. Errors: one line, exit 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections.abc import Callable

from drkonqi_lite.adapters.report_queue import QueueBusyError, QueueError
from drkonqi_lite.adapters.reporter import Reporter, queue_for
from drkonqi_lite.adapters.sentry_transport import TIMEOUT_S, Outcome, event_link, send_envelope
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.dsn import DsnError
from drkonqi_lite.domain.plain_text import one_line
from drkonqi_lite.domain.reporting_policy import (
    NoDestinationError,
)
from drkonqi_lite.domain.sentry_event import EventOptions

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TEMPFAIL = 0, 1, 2, 75
ADMIN_CONF = "etc/drkonqi-lite/reporting.conf"
log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser(
        "report",
        help="send a crash report to the developers (Sentry protocol); exit 75 when queued",
    )
    rep.add_argument("crash", metavar="ID|PID", nargs="?")
    rep.add_argument("--dsn", default="", help="the Sentry DSN to send to (overrides settings)")
    rep.add_argument("--comment", default="", metavar="TEXT", help="what you were doing")
    rep.add_argument(
        "--include-cmdline",
        action="store_true",
        help="also send the command line (it may hold secrets; the environment is never sent)",
    )
    rep.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_S,
        metavar="S",
        help="seconds to wait for the server",
    )
    rep.add_argument("--send-queued", action="store_true", help="send the queued reports now")
    rep.add_argument("--list-queued", action="store_true", help="list the queued reports")
    rep.add_argument("--json", action="store_true", help="with --list-queued: JSON output")


def reported_ids() -> dict[str, str]:
    """crash id → event id of the user's delivered reports (`reported` in --json output)."""
    try:
        return Reporter(queue_for()).sent_ids()
    except OSError:
        return {}


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _list(reporter: Reporter, as_json: bool) -> int:
    reports = reporter.queue.reports()
    rows = [
        {
            "event_id": r.event_id,
            "crash_id": r.crash_id,
            "dsn_server": _server(r.dsn),
            "queued_at": r.queued_at,
            "attempts": r.attempts,
            "next_attempt": r.next_attempt,
            "last_error": r.last_error,
            "state": "rejected" if r.rejected else "queued",
        }
        for r in reports
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=True, sort_keys=True))
        return EXIT_OK
    for row in rows:
        print(
            f"{row['event_id']}  {row['crash_id']}  {row['state']:<8}  "
            f"queued {_when(float(row['queued_at']))}  attempts {row['attempts']}  "
            f"{one_line(str(row['last_error']))}"
        )
    if not rows:
        print("no queued reports")
    return EXIT_OK


def _server(dsn: str) -> str:
    try:
        from drkonqi_lite.domain.dsn import parse_dsn  # noqa: PLC0415

        return parse_dsn(dsn).server
    except DsnError:
        return ""


def _send_queued(reporter: Reporter) -> int:
    try:
        counts = reporter.send_queued(force=True)
    except QueueBusyError:
        print("drkonqi-lite: another drkonqi-lite is sending the queued reports", file=sys.stderr)
        return EXIT_TEMPFAIL
    left = sum(1 for r in reporter.queue.reports() if not r.rejected)
    print(
        f"sent {counts[Outcome.SENT]}, still queued {left}, "
        f"refused by the server {counts[Outcome.REJECTED]}, expired {counts['expired']}"
    )
    return EXIT_TEMPFAIL if left else EXIT_OK


def _report_one(args: argparse.Namespace, reporter: Reporter, crash: Crash) -> int:
    options = EventOptions(comment=args.comment, include_cmdline=args.include_cmdline)
    result = reporter.report_for_user(crash, args.dsn, options)
    print(result.event_id)
    if result.outcome is Outcome.SENT:
        if not result.message.startswith("sent"):
            print(f"drkonqi-lite: crash {crash.id} was {result.message}", file=sys.stderr)
        return EXIT_OK
    print(f"drkonqi-lite: {result.message}", file=sys.stderr)
    return EXIT_TEMPFAIL if result.queued else EXIT_FAIL


def cmd_report(args: argparse.Namespace, find: Callable[[str], Crash]) -> int:
    """The `report` subcommand; `find` resolves ID|PID among the user's crashes."""
    if args.timeout <= 0:
        print("drkonqi-lite: --timeout must be positive", file=sys.stderr)
        return EXIT_USAGE
    # The link is recorded for the crash window (Open on the server), as the app does.
    reporter = Reporter(queue_for(), lambda dsn, body: send_envelope(dsn, body, args.timeout),
                        find_link=event_link)  # fmt: skip
    modes = sum([bool(args.crash), args.send_queued, args.list_queued])
    if modes != 1:
        print(
            "drkonqi-lite: report needs exactly one of ID|PID, --send-queued, --list-queued",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.list_queued:
            return _list(reporter, args.json)
        if args.send_queued:
            return _send_queued(reporter)
        return _report_one(args, reporter, find(args.crash))
    except DsnError as exc:
        print(f"drkonqi-lite: malformed DSN: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NoDestinationError as exc:
        print(f"drkonqi-lite: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except QueueError as exc:
        print(f"drkonqi-lite: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAIL
