"""Crash signatures (grouping), the redacted report, and inert display text (issue 5)."""

from __future__ import annotations

import json

from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.plain_text import BREAK, multi_line, one_line, wrappable
from drkonqi_lite.domain.report import mask_secrets, relative_when, report_json, report_text
from drkonqi_lite.domain.signature import crashing_frame_line, group_key, top_frames
from tests.entries import entry

ABORT_TRACE = """Stack trace of thread 7:
#0  0x00007f3a1c2a9e2c __pthread_kill_implementation (libc.so.6 + 0x8ae2c)
#1  0x00007f3a1c25afb2 raise (libc.so.6 + 0x3bfb2)
#2  0x00007f3a1c245472 abort (libc.so.6 + 0x26472)
#3  0x000055d5e2a1b1a9 n/a (/usr/lib/libfoo.so.1 + 0x11a9)
#4  0x000055d5e2a1b2aa save (kate + 0x12aa)

Stack trace of thread 8:
#0  0x00007f3a1c2a4f16 __futex_abstimed_wait_common (libc.so.6 + 0x85f16)"""


def test_signature_skips_abort_machinery_and_names_unsymbolized_frames() -> None:
    assert top_frames(ABORT_TRACE) == ("libfoo.so.1+0x11a9", "save")
    assert crashing_frame_line(ABORT_TRACE) == 4  # the line of frame #3
    assert top_frames("") == ()
    assert crashing_frame_line("no frames here") is None


def test_same_program_and_frames_group_together_pid_and_time_do_not_matter() -> None:
    msg = f"Process 1 (kate) of user 1000 dumped core.\n\n{ABORT_TRACE}"
    a = crash_from_entry(entry(pid=1, ts=1, signo=6, MESSAGE=msg))
    b = crash_from_entry(entry(pid=2, ts=2, signo=6, MESSAGE=msg.replace("thread 7", "thread 9")))
    other = crash_from_entry(entry(pid=3, ts=3, signo=6, MESSAGE=msg.replace("save", "load")))
    segv = crash_from_entry(entry(pid=4, ts=4, signo=11, MESSAGE=msg))
    assert group_key(a) == group_key(b)
    assert group_key(a) != group_key(other)
    assert group_key(a) != group_key(segv)


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


def test_inert_text() -> None:
    assert one_line("<b>x</b>\u202e\n\x1b[31m\t") == "<b>x</b>\\u202e\\n\\x1b[31m\\t"
    assert multi_line("a\nb\u2066c\u200bd") == "a\nb\\u2066c\\u200bd"
    assert one_line("x" * 500, 10) == "x" * 9 + "…"
    long = "/usr/" + "e" * 100
    assert wrappable(long).replace(BREAK, "") == long
    assert wrappable(long).count(BREAK) == 4  # after "/", "usr/", then every 40 characters
