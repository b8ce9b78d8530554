"""The fleet forwarder's lines in `drkonqi-lite-collector status`: is drkonqi-lite-fleet.service
enabled and running, and how many reports wait in its queue.

The collector does not import the app (DESIGN.md §3): the queue's place and file names come from
schema.py, which both sides import; the unit's state from systemctl, when systemd runs.
"""

from __future__ import annotations

import os
import subprocess

from drkonqi_lite_collector.journal import schema

SYSTEMCTL = "/bin/systemctl"


def queue_dir(state_dir: str) -> str:
    return os.path.join(state_dir, schema.FLEET_SUBDIR, schema.FLEET_QUEUE_SUBDIR)


def queued(state_dir: str) -> int | None:
    """The number of queued reports, None when there is no queue (the service never ran)."""
    try:
        names = os.listdir(queue_dir(state_dir))
    except OSError:
        return None
    # Not the hidden temporary files a write in progress leaves, not sent/ and state/.
    return sum(1 for n in names if n.endswith(schema.QUEUED_SUFFIX) and not n.startswith("."))


def unit_state(systemd_dir: str = "/run/systemd/system") -> str:
    """systemctl's words: "enabled, running", "disabled, not running", ..., or why unknown."""
    if not os.path.isdir(systemd_dir):
        return "unknown (systemd is not running)"
    answers = []
    for verb in ("is-enabled", "is-active"):
        try:
            out = subprocess.run([SYSTEMCTL, verb, schema.FLEET_UNIT], capture_output=True,
                                 text=True, timeout=10, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({SYSTEMCTL}: {exc})"
        answers.append(out.stdout.strip() or "unknown")
    enabled, active = answers
    running = {"active": "running", "inactive": "not running", "failed": "failed"}
    return f"{enabled}, {running.get(active, active)}"


def lines(state_dir: str, systemd_dir: str = "/run/systemd/system") -> list[str]:
    count = queued(state_dir)
    waiting = "none (it never ran)" if count is None else f"{count} in {queue_dir(state_dir)}"
    return [
        f"fleet forwarder: {schema.FLEET_UNIT} {unit_state(systemd_dir)}",
        f"fleet queue:     {waiting}",
    ]
