"""The redacted report: environment and command line withheld, their values masked; times."""

from __future__ import annotations

import json

from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.report import mask_secrets, relative_when, report_json, report_text
from tests.entries import entry


def test_report_withholds_environment_and_command_line_and_masks_their_values() -> None:
    crash = crash_from_entry(
        entry(COREDUMP_CMDLINE="/usr/bin/kate --password=opensesame123 file.txt")
    )
    gdb = 'main (argv=0x7ff) token="hunter2" pw="opensesame123"'
    text = report_text(crash, "Kate", gdb)
    data = json.loads(report_json(crash, "Kate", gdb))
    for secret in ("hunter2", "opensesame123", "--password"):
        assert secret not in text
        assert secret not in json.dumps(data)
    assert "Kate crashed with Segmentation fault (SIGSEGV)" in text
    assert data["fields"]["COREDUMP_ENVIRON"].startswith("(hidden")
    assert data["full_backtrace"] == 'main (argv=0x7ff) token="(hidden)" pw="(hidden)"'
    assert "seen" not in data
    assert data["pid"] == 4242


def test_mask_leaves_harmless_values() -> None:
    crash = crash_from_entry(entry())
    assert (
        mask_secrets("HOME is /home/u, token hunter2", crash) == "HOME is /home/u, token (hidden)"
    )


def test_relative_when() -> None:
    assert relative_when(0, 30_000_000) == "just now"
    assert relative_when(0, 60_000_000) == "1 minute ago"
    assert relative_when(0, 7_200_000_000) == "2 hours ago"
    assert relative_when(0, 3 * 86_400_000_000) == "3 days ago"

