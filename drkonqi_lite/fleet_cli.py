"""`drkonqi-lite-fleet`: the admin's service that forwards every crash of this machine to the
[Fleet] DSN of /etc/drkonqi-lite/reporting.conf (packaging/systemd/drkonqi-lite-fleet.service).

Runs until SIGTERM, which may end it anywhere: every file it writes is replaced atomically and a
crash already sent or queued is never reported again. `--once`: forward what is new, send the
queue, exit. Off unless the admin set `Enabled = yes` (else it says so and exits 0). Errors are
one line on stderr, exit 1. No Qt.
"""

from __future__ import annotations

import argparse
import logging
import sys

from drkonqi_lite.adapters.fleet import Forwarder, system_queue
from drkonqi_lite.adapters.report_queue import QueueError
from drkonqi_lite.adapters.reporter import Reporter, admin_policy
from drkonqi_lite.domain.dsn import DsnError, parse_dsn

CONF = "/etc/drkonqi-lite/reporting.conf"


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
    try:
        dsn = parse_dsn(policy.dsn)
    except DsnError as exc:
        print(f"drkonqi-lite-fleet: {CONF} [Fleet] DSN: {exc}", file=sys.stderr)
        return 1
    try:
        forwarder = Forwarder(policy, dsn, Reporter(system_queue()))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
