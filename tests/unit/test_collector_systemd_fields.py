"""The systemd 258+ fields at their source: the tagged %I word, NT_SIGINFO, the entry's fields.

The real crashes are in tests/integration/test_collector_systemd_fields.py; these pin what an
older kernel or a hostile core can hand us."""

from __future__ import annotations

import pytest

from drkonqi_lite_collector.journal import entry
from drkonqi_lite_collector.journal.proc import ProcInfo
from drkonqi_lite_collector.journal.schema import Field, unescape
from drkonqi_lite_collector.stage import argv

KERNEL = ["1234", "1000", "1000", "11", "1795675000", "18446744073709551615", "host", "1"]


def test_the_tid_word_is_parsed_with_and_without_a_pidfd() -> None:
    assert argv.parse([*KERNEL, "3", "--tid=1240"]).tid == 1240
    with_prefix = argv.parse(["--prefix=/tmp/x", *KERNEL, "--tid=1234"])
    assert (with_prefix.tid, with_prefix.pidfd, with_prefix.prefix) == (1234, None, "/tmp/x")


def test_a_kernel_without_the_specifier_or_an_old_pattern_gives_no_tid() -> None:
    # The kernel drops an unknown %X: the word arrives as `--tid=`; patterns installed before
    # the word existed have none. Neither loses the crash or shifts %F.
    empty = argv.parse([*KERNEL, "3", "--tid="])
    assert (empty.tid, empty.pidfd) == (None, 3)
    assert argv.parse([*KERNEL, "3"]).tid is None
    assert "%I" in argv.TID_WORD


@pytest.mark.parametrize("bad", ["--tid=x", "--tid=0", "--tid=99999999", "--tid=\u0661"])
def test_a_malformed_tid_is_rejected_with_a_reason(bad: str) -> None:
    with pytest.raises(argv.ArgvError, match="TID"):
        argv.parse([*KERNEL, bad])


def test_entry_fields_carry_tid_and_thread_name_only_when_known() -> None:
    args = argv.parse([*KERNEL, "3", "--tid=1240"])
    assert (Field.TID, 1240) in entry.kernel_fields(args)
    assert Field.TID not in dict(entry.kernel_fields(argv.parse(KERNEL)))
    fields = dict(entry.proc_fields(ProcInfo(comm=b"prog", thread_name=b"worker \xff")))
    # Escaped like COMM (systemd's cellescape), the bytes recoverable exactly (SECURITY.md 14).
    assert fields[Field.THREAD_NAME] == "worker \\377"
    assert unescape(str(fields[Field.THREAD_NAME])) == b"worker \xff"
    assert Field.THREAD_NAME not in dict(entry.proc_fields(ProcInfo(comm=b"prog")))
