"""`drkonqi-lite-collector status`'s fleet lines: the queue counted where the forwarder keeps it
(the app's ReportQueue writes it; the collector only counts), the unit's state from systemctl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drkonqi_lite.adapters.fleet import system_queue
from drkonqi_lite.adapters.report_queue import QueuedReport
from drkonqi_lite_collector.admin import fleet_status


def _report(event_id: str) -> QueuedReport:
    return QueuedReport(event_id, "crash-" + event_id, "http://k@h/1", 0.0, 0, 0.0, 0.0, "",
                        False, {"event_id": event_id})  # fmt: skip


def test_counts_what_the_forwarders_queue_holds(tmp_path: Path) -> None:
    state = tmp_path / "var/lib/drkonqi-lite"
    assert fleet_status.queued(str(state)) is None
    # The forwarder's own queue, as the unit's $STATE_DIRECTORY places it.
    queue = system_queue({"STATE_DIRECTORY": str(state / "fleet")})
    for n in range(3):
        queue.put(_report(f"{n:032x}"))
    queue.save_state("fleet-position", {"cursor": "c"})
    (Path(queue.directory) / ".tmp-in-progress.json").write_text("{}")
    assert fleet_status.queued(str(state)) == 3
    queue.remove(f"{0:032x}")
    assert fleet_status.lines(str(state), str(tmp_path / "no-systemd")) == [
        "fleet forwarder: drkonqi-lite-fleet.service unknown (systemd is not running)",
        f"fleet queue:     2 in {state}/fleet/reports",
    ]


def test_status_command_prints_the_fleet_lines(tmp_path: Path) -> None:
    """The real command, against a prefix whose fleet never ran."""
    collector = Path(sys.executable).parent / "drkonqi-lite-collector"
    out = subprocess.run([str(collector), "--prefix", str(tmp_path), "status"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "fleet forwarder: drkonqi-lite-fleet.service " in out.stdout
    assert "fleet queue:     none (it never ran)" in out.stdout
