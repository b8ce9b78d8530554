"""Crash signatures: what groups repeats of one crash together."""

from __future__ import annotations

from drkonqi_lite.domain.crash import crash_from_entry
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

