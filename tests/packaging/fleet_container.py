"""drkonqi-lite-fleet.service as installed, under a real systemd (test_deb.py's container), with
every sandboxing line in force: the admin configures [Fleet] with the DSN of a Bugsink on this
machine's loopback (the container shares the host's network), enables the unit, and real crashes
of a user's program become events in Bugsink's database; a restart sends none twice; `systemctl
stop` ends it at once and cleanly; `drkonqi-lite-collector status` says it runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.bugsink import Bugsink
from tests.packaging.container import in_container

UNIT = "drkonqi-lite-fleet.service"
#: As drkonqi-lite-reporting.conf(5) says an admin turns it on.
CONF = "[Fleet]\nEnabled = yes\nDSN = {dsn}\n"


def _events(bugsink: Bugsink, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Bugsink's stored events (it is this check's own server), once there are `count` (and a
    moment later, so that a duplicate would show)."""
    deadline = time.monotonic() + timeout
    while len(bugsink.events()) < count and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)
    return bugsink.events()


def _show(leader: int, prop: str) -> str:
    return in_container(leader, "systemctl", "show", "-P", prop, UNIT).strip()


def _log(leader: int) -> str:
    return in_container(leader, "journalctl", "--no-pager", "-u", UNIT)


def check_fleet_under_systemd(leader: int, bugsink: Bugsink, crash: Callable[[], object]) -> None:
    """`crash()` crashes a user's program through the container's collector. (The crashed
    process is the host's, outside the container's PID namespace: its entry has no exe, see
    test_deb.py check_under_systemd, so the events are told apart by count, not by program.)"""
    # Shipped off: the package installed it on this machine but enabled nothing (the container's
    # /etc is a fresh tmpfs, where systemd's presets decide, so look at the host's).
    wants = Path("/etc/systemd/system/multi-user.target.wants") / UNIT
    assert not wants.is_symlink(), "the package enabled the fleet"
    assert Path("/lib/systemd/system", UNIT).is_file()
    etc = Path(f"/proc/{leader}/root/etc/drkonqi-lite")
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "reporting.conf").write_text(CONF.format(dsn=bugsink.dsn))
    in_container(leader, "systemctl", "enable", "--now", UNIT)
    deadline = time.monotonic() + 30
    while _show(leader, "ActiveState") != "active" or not _position(leader):
        assert time.monotonic() < deadline, _log(leader)
        time.sleep(0.2)
    crash()
    events = _events(bugsink, 1)
    assert len(events) == 1, _log(leader)
    first = events[0]
    assert first["data"]["exception"]["values"][0]["type"] == "SIGSEGV", first["data"]
    assert first["data"]["exception"]["values"][0]["stacktrace"]["frames"]
    # The sandbox's dynamic user, in systemd-journal, as the unit says.
    status = in_container(leader, "/usr/bin/drkonqi-lite-collector", "status")
    assert f"fleet forwarder: {UNIT} enabled, running" in status, status
    assert "fleet queue:     0 in /var/lib/drkonqi-lite/fleet/reports" in status, status

    # A restart goes on after the saved cursor: the first crash is not sent again.
    in_container(leader, "systemctl", "restart", UNIT)
    crash()
    events = _events(bugsink, 2)
    ids = [e["event_id"] for e in events]
    assert len(ids) == 2, f"{ids}\n{_log(leader)}"
    assert len({e["issue"] for e in events}) == 1, "one program's one crash: one issue"

    # systemctl stop: SIGTERM, which it obeys at once (TimeoutStopSec= would kill it after 10 s)
    # with status 0; the position it saved is that of the last crash.
    saved = _position(leader)
    started = time.monotonic()
    in_container(leader, "systemctl", "stop", UNIT)
    took = time.monotonic() - started
    log = _log(leader)
    assert took < 5, f"stop took {took:.1f} s:\n{log}"
    assert _show(leader, "Result") == "success", log
    assert _show(leader, "ExecMainStatus") == "0", log
    assert "stopped; crashes forwarded since the start: 1" in log, log
    assert _position(leader) == saved
    assert "Traceback" not in log, log


def _position(leader: int) -> str:
    """The saved journal cursor ("" before the first crash), as the service wrote it."""
    path = Path(f"/proc/{leader}/root/var/lib/drkonqi-lite/fleet/reports/state/fleet-position.json")
    try:
        return str(json.loads(path.read_text()).get("cursor", "")) or "floor"
    except FileNotFoundError:
        return ""
