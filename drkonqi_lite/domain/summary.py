"""The crash dict of the D-Bus API and of `--json` output (DESIGN.md §2.3), as plain values.

One place defines the keys so the D-Bus service, the CLI and the windows agree. `detail` adds
the backtrace and every field except the environment (privacy, SECURITY.md 9). Pure.
"""

from __future__ import annotations

from typing import TypedDict

from drkonqi_lite.domain import crash_facts
from drkonqi_lite.domain.crash import Crash, bounded
from drkonqi_lite.domain.kcrash import kcrash_dict
from drkonqi_lite.domain.python_stack import frame_dicts, thread_dicts
from drkonqi_lite.domain.redaction import public_fields
from drkonqi_lite_collector.journal.schema import Field


class CrashSummary(TypedDict):
    id: str
    pid: int
    uid: int
    signal: int
    signal_name: str
    comm: str
    exe: str
    timestamp: int
    hostname: str
    unit: str
    package: str
    core_state: str
    seen: bool
    #: DESIGN.md §2.5: the event id of the crash's delivered report, "" when not reported.
    reported: str


class CrashDetail(CrashSummary):
    backtrace: str
    fields: dict[str, str]
    #: DESIGN.md §2.5: [{function, file, line}] outermost first, of the crashing thread.
    python_stack: list[dict[str, str | int]]
    #: Every thread's Python stack, the crashing one first: {tid, name, crashed, frames}.
    python_threads: list[dict[str, object]]
    exception_type: str
    exception_value: str
    #: The crashing thread (COREDUMP_TID, 0 when the entry does not say) and its name.
    tid: int
    thread_name: str
    #: Why the signal came, in words, from COREDUMP_CODE ("address not mapped (SEGV_MAPERR)").
    signal_cause: str
    #: What KCrash said about a KDE program (display_name, version, bug_address, product,
    #: app_name); empty when it wrote nothing for this crash (domain/kcrash.py).
    kcrash: dict[str, str]


def summary(crash: Crash, *, seen: bool, reported: str = "") -> CrashSummary:
    """The D-Bus crash dict (`ListCrashes`, `CrashDetected`)."""
    return CrashSummary(
        id=crash.id,
        pid=crash.pid,
        uid=crash.uid,
        signal=crash.signal,
        signal_name=crash.signal_name,
        comm=crash.comm,
        exe=crash.exe,
        timestamp=crash.timestamp_us,
        hostname=crash.hostname,
        unit=crash.unit,
        package=crash.package,
        core_state=str(crash.core_state),
        seen=seen,
        reported=reported,
    )


def detail(crash: Crash, *, seen: bool, reported: str = "") -> CrashDetail:
    """`GetCrash`: the summary plus the quick backtrace and the non-secret fields."""
    base = summary(crash, seen=seen, reported=reported)
    return CrashDetail(
        **base,
        backtrace=crash.backtrace,
        fields=public_fields(crash.fields),
        python_stack=frame_dicts(crash.python_stack),
        python_threads=thread_dicts(crash.python_threads),
        exception_type=crash.exception_type,
        exception_value=crash.exception_value,
        tid=crash_facts.thread_tid(crash),
        thread_name=bounded(crash.fields.get(Field.THREAD_NAME, ""), 64),
        signal_cause=crash_facts.signal_cause(crash),
        kcrash=kcrash_dict(crash.kcrash),
    )
