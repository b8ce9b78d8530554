"""The Log tab's source against the real journald: the lines a process logged before it died,
and nothing from other processes or from long before the crash."""

from __future__ import annotations

import subprocess
import sys
import time

from systemd import journal

from drkonqi_lite.adapters.process_log import process_log
from drkonqi_lite.domain.crash import crash_from_entry
from tests import entries
from tests.integration.desktop import wait_for

LOGGER = """
import sys
from systemd import journal
journal.send("opening <b>notes.txt</b>\\u202e", SYSLOG_IDENTIFIER="kwrite-test")
journal.send("about to crash", SYSLOG_IDENTIFIER="kwrite-test")
print("sent", flush=True)
"""


def test_log_lines_of_the_crashed_process(journald: None) -> None:
    before_us = time.time_ns() // 1000
    proc = subprocess.run([sys.executable, "-c", LOGGER], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert proc.stdout.strip() == "sent"
    noise = subprocess.run([sys.executable, "-c", LOGGER.replace("about to crash", "other")],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert noise.returncode == 0
    # The logger's PID, as journald stamped it on its entries.
    reader = journal.Reader()
    reader.add_match(SYSLOG_IDENTIFIER="kwrite-test")
    reader.seek_realtime(before_us / 1e6)
    pids: list[int] = []

    def logged() -> bool:
        reader.process()
        pids.extend(int(e["_PID"]) for e in reader if e.get("MESSAGE") == "about to crash")
        return bool(pids)

    wait_for(logged, timeout=15, what="the logger's entries")
    crash = crash_from_entry(entries.full_entry(pid=pids[0], ts=time.time_ns() // 1000))
    lines = process_log(crash)
    assert any(line.endswith(f"kwrite-test[{pids[0]}]: about to crash") for line in lines)
    assert any("opening <b>notes.txt</b>\u202e" in line for line in lines)  # raw: the tab escapes
    assert not any(line.endswith(": other") for line in lines)
