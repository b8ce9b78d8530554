"""`drkonqi-lite-fleet`: the admin's service that forwards every crash of this machine to the
[Fleet] DSN of /etc/drkonqi-lite/reporting.conf (packaging/systemd/drkonqi-lite-fleet.service).

Runs until SIGTERM, which ends it at once wherever it is (also in the wait for the journal), with
status 0: every file it writes is replaced atomically, a report is queued before it is sent and
the journal position saved after, so a crash already sent or queued is never reported again and
none is skipped. `--once`: forward what is new, send the queue, exit. Off unless the admin set
`Enabled = yes` (else it says so and exits 0). Errors are one line on stderr: exit 78
(EX_CONFIG, the unit does not restart) for a malformed [Fleet], 1 otherwise. No Qt.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from drkonqi_lite.adapters.fleet import Forwarder, system_queue
from drkonqi_lite.adapters.report_queue import QueueError
from drkonqi_lite.adapters.reporter import Reporter, admin_policy
from drkonqi_lite.domain.dsn import DsnError, parse_dsn
from drkonqi_lite.domain.reporting_policy import fleet_dsns

CONF = "/etc/drkonqi-lite/reporting.conf"
#: sysexits.h: the configuration is wrong; restarting will not help.
EX_CONFIG = 78
log = logging.getLogger("drkonqi-lite-fleet")


class Stopped(BaseException):
    """SIGTERM (systemctl stop): raised wherever the forwarder is, as KeyboardInterrupt is."""


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise Stopped


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="drkonqi-lite-fleet",
        description=f"Forward every crash of this machine (all users, our collector's and "
        f"systemd-coredump's journal entries) to the [Fleet] DSN of {CONF}.",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="forward the new crashes and send every queued report now, then exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    policy = admin_policy().fleet
    if not policy.enabled:
        print(f"drkonqi-lite-fleet: forwarding is off ([Fleet] Enabled = yes in {CONF})",
              file=sys.stderr)  # fmt: skip
        return 0
    for where, text in fleet_dsns(policy):
        try:
            parse_dsn(text)
        except DsnError as exc:
            print(f"drkonqi-lite-fleet: {CONF} {where} DSN: {exc}", file=sys.stderr)
            return EX_CONFIG
    # Python's default for SIGTERM kills without a word; this ends it as cleanly, and says so.
    signal.signal(signal.SIGTERM, _stop)
    forwarder = None
    try:
        forwarder = Forwarder(policy, Reporter(system_queue()))
        if args.once:
            forwarder.start()
            forwarder.drain()
            forwarder.retry_queued(force=True)
        else:
            forwarder.follow()
    except QueueError as exc:
        print(f"drkonqi-lite-fleet: {exc.strerror or exc}; will resume from the last crash "
              "forwarded", file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        return 130
    except Stopped:
        log.info("stopped; crashes forwarded since the start: %d",
                 forwarder.forwarded if forwarder else 0)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
