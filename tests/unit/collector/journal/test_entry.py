"""entry.build(): the one place a crash's journal entry is assembled from fact records."""

from __future__ import annotations

import pytest

from drkonqi_lite_collector import __version__
from drkonqi_lite_collector.journal import entry
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.proc import ProcInfo
from drkonqi_lite_collector.journal.schema import MESSAGE_ID, CoreMissing, Field, unescape
from drkonqi_lite_collector.stage import argv

KERNEL = ["1234", "1000", "1000", "11", "1795675000", "0", "host", "1"]
ARGS = argv.parse(KERNEL)


def test_the_entry_of_a_dead_worker_says_why_from_the_kernels_facts_alone() -> None:
    fields = entry.build(
        ARGS,
        None,
        entry.Core(size=None, missing=CoreMissing.COLLECTOR_CRASH),
        entry.Trace("none: collector failed (killed by SIGKILL)"),
        note="The collector failed while processing this crash (killed by SIGKILL).",
    )
    d = dict(fields)
    assert len(d) == len(fields), "each field once"
    assert d[Field.MESSAGE_ID] == MESSAGE_ID
    assert d[Field.CORE_MISSING] == CoreMissing.COLLECTOR_CRASH
    assert d[Field.STACKTRACE] == "none: collector failed (killed by SIGKILL)"
    assert d[Field.VERSION] == __version__
    assert d[Field.MESSAGE] == (
        "Process 1234 (n/a) of user 1000 dumped core.\n\n"
        "The collector failed while processing this crash (killed by SIGKILL)."
    )
    assert not {Field.COMM, Field.IDENTITY, Field.CORE_SIZE, Field.FILENAME} & d.keys()


def test_every_fact_lands_in_its_field_and_an_absent_one_in_none() -> None:
    seen = entry.Seen(ProcInfo(comm=b"crasher", exe=b"/bin/crasher"), True, pidfd_id=7)
    core = entry.Core(
        size=10, missing=None, truncated=True, filename="/c.zst", code=1, restricted="why"
    )
    trace = entry.Trace("ok", "#0 main", "/bin/crasher abcd", "crasher", "1.0", None)
    d = dict(entry.build(ARGS, seen, core, trace, crash_count=3))
    assert (d[Field.BY_PIDFD], d[Field.PIDFDID], d[Field.IDENTITY]) == (1, 7, "verified")
    assert (d[Field.COMM], d[Field.EXE]) == ("crasher", "/bin/crasher")
    assert (d[Field.CORE_SIZE], d[Field.TRUNCATED], d[Field.FILENAME], d[Field.CODE]) == (
        10, 1, "/c.zst", 1
    )  # fmt: skip
    assert (d[Field.RESTRICTED], d[Field.RESTRICTED_REASON]) == (1, "why")
    assert (d[Field.CRASH_COUNT], d[Field.MODULES], d[Field.PACKAGE_NAME]) == (
        3, "/bin/crasher abcd", "crasher"
    )  # fmt: skip
    assert Field.PACKAGE_JSON not in d
    assert Field.CORE_MISSING not in d
    message = d[Field.MESSAGE]
    assert isinstance(message, str)
    assert message.endswith("dumped core.\n\n#0 main")


def test_no_stack_trace_attempted_means_no_stacktrace_field() -> None:
    d = dict(entry.build(ARGS, None, entry.Core(size=0, missing="empty"), None))
    assert Field.STACKTRACE not in d
    assert d[Field.CORE_SIZE] == 0


def test_fact_records_are_frozen() -> None:
    core = entry.Core(size=1, missing=None)
    with pytest.raises(AttributeError, match="frozen"):
        core.size = 2


def test_a_dropped_crash_is_reported_as_the_collectors_error() -> None:
    d = dict(entry.dropped("malformed arguments: x"))
    assert d[Field.PRIORITY] == 3
    assert d[Field.MESSAGE] == "drkonqi-lite-collector: a crash was dropped: malformed arguments: x"
    assert Field.MESSAGE_ID not in d, "not a crash entry: no reader lists it as one"


def test_a_fact_record_is_copied_with_changes_never_changed() -> None:
    trace = entry.Trace("ok", "#0 main", "/bin/crasher abcd")
    with_stack = trace.replace(python_stack="[]", for_user=trace)
    assert (with_stack.status, with_stack.text, with_stack.python_stack) == ("ok", "#0 main", "[]")
    assert with_stack.for_user is trace
    assert (trace.python_stack, trace.for_user) == (None, None)
    with pytest.raises(AttributeError, match="frozen"):
        trace.status = "partial: x"


def test_cgroup_units_like_systemd() -> None:
    units = entry.cgroup_units(
        b"/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.kde.kate-1234.scope"
    )
    assert units == {
        "COREDUMP_SLICE": b"user-1000.slice",
        "COREDUMP_UNIT": b"user@1000.service",
        "COREDUMP_OWNER_UID": b"1000",
        "COREDUMP_USER_UNIT": b"app-org.kde.kate-1234.scope",
    }
    session = entry.cgroup_units(b"/user.slice/user-1000.slice/session-3.scope")
    assert session["COREDUMP_SESSION"] == b"3"
    assert session["COREDUMP_OWNER_UID"] == b"1000"
    system = entry.cgroup_units(b"/system.slice/cups.service")
    assert system == {"COREDUMP_SLICE": b"system.slice", "COREDUMP_UNIT": b"cups.service"}


def test_cmdline_and_environ_keep_bytes() -> None:
    assert entry.cmdline_text(b"a\0b c\0\xff\0") == b"a b c \xff"
    assert entry.environ_text(b"A=1\0B=x\ny\0") == b"A=1\nB=x\ny"


def test_bounded_entry_cuts_and_names_what_it_cut() -> None:
    fields: list[tuple[str, journal.FieldValue | journal.Blob]] = [
        ("A", b"x" * 100),
        ("B", "y" * 10),
        ("C", 5),
        ("D", b"z" * 40),
    ]
    out = entry.bounded(fields, field_max=50, total_max=1000)
    assert dict(out)["A"] == b"x" * 50
    assert dict(out)["DRKONQI_LITE_TRUNCATED_FIELDS"] == "A"
    assert ("C", 5) in out
    assert entry.bounded(fields, field_max=1000, total_max=1000) == fields


def test_bounded_entry_keeps_the_whole_under_its_limit() -> None:
    fields: list[tuple[str, journal.FieldValue | journal.Blob]] = [
        (f"F{i}", bytes(64 * 1024)) for i in range(40)
    ]
    out = entry.bounded(fields, field_max=64 * 1024, total_max=1024 * 1024)
    assert sum(len(v) for _, v in out if isinstance(v, bytes)) <= 1024 * 1024
    assert len(str(dict(out)["DRKONQI_LITE_TRUNCATED_FIELDS"]).split()) == 40


def test_entry_fields_carry_tid_and_thread_name_only_when_known() -> None:
    args = argv.parse([*KERNEL, "3", "--tid=1240"])
    assert (Field.TID, 1240) in entry.kernel_fields(args)
    assert Field.TID not in dict(entry.kernel_fields(argv.parse(KERNEL)))
    fields = dict(entry.proc_fields(ProcInfo(comm=b"prog", thread_name=b"worker \xff")))
    # Escaped like COMM (systemd's cellescape), the bytes recoverable exactly (SECURITY.md 14).
    assert fields[Field.THREAD_NAME] == "worker \\377"
    assert unescape(str(fields[Field.THREAD_NAME])) == b"worker \xff"
    assert Field.THREAD_NAME not in dict(entry.proc_fields(ProcInfo(comm=b"prog")))
