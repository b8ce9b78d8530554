"""The facts beyond the basics that a crash window, a report and `show --json` give: which
thread crashed, why the signal came (si_code), and what KCrash said about a KDE program.

The thread and si_code come from the entry (COREDUMP_TID, COREDUMP_THREAD_NAME, COREDUMP_CODE,
systemd's fields, written by our collector and newer systemd-coredump); the KCrash facts from
`Crash.kcrash`. Texts are raw (hostile) values: callers show them as inert text. Pure.
"""

from __future__ import annotations

import signal

from drkonqi_lite.domain.crash import Crash, bounded
from drkonqi_lite_collector.journal.schema import Field

#: si_code values any signal can carry (asm-generic/siginfo.h), as sigaction(2) words them.
_ANY_SIGNAL: dict[int, str] = {
    0: "sent by kill (SI_USER)",
    0x80: "sent by the kernel (SI_KERNEL)",
    -1: "sent by sigqueue (SI_QUEUE)",
    -2: "a POSIX timer expired (SI_TIMER)",
    -6: "sent by tkill or raise (SI_TKILL)",
}
#: si_code values of the signals that report a fault, per signal.
_FAULTS: dict[int, dict[int, str]] = {
    signal.SIGSEGV: {
        1: "address not mapped (SEGV_MAPERR)",
        2: "no permission for the mapped address (SEGV_ACCERR)",
        3: "failed address bound checks (SEGV_BNDERR)",
        4: "protection key check failed (SEGV_PKUERR)",
        10: "control protection fault (SEGV_CPERR)",
    },
    signal.SIGBUS: {
        1: "invalid address alignment (BUS_ADRALN)",
        2: "nonexistent physical address (BUS_ADRERR)",
        3: "object-specific hardware error (BUS_OBJERR)",
        4: "hardware memory error, action required (BUS_MCEERR_AR)",
        5: "hardware memory error, action optional (BUS_MCEERR_AO)",
    },
    signal.SIGILL: {
        1: "illegal opcode (ILL_ILLOPC)",
        2: "illegal operand (ILL_ILLOPN)",
        3: "illegal addressing mode (ILL_ILLADR)",
        4: "illegal trap (ILL_ILLTRP)",
        5: "privileged opcode (ILL_PRVOPC)",
        6: "privileged register (ILL_PRVREG)",
        7: "coprocessor error (ILL_COPROC)",
        8: "internal stack error (ILL_BADSTK)",
    },
    signal.SIGFPE: {
        1: "integer divide by zero (FPE_INTDIV)",
        2: "integer overflow (FPE_INTOVF)",
        3: "floating-point divide by zero (FPE_FLTDIV)",
        4: "floating-point overflow (FPE_FLTOVF)",
        5: "floating-point underflow (FPE_FLTUND)",
        6: "floating-point inexact result (FPE_FLTRES)",
        7: "invalid floating-point operation (FPE_FLTINV)",
        8: "subscript out of range (FPE_FLTSUB)",
    },
    signal.SIGTRAP: {1: "breakpoint (TRAP_BRKPT)", 2: "trace trap (TRAP_TRACE)"},
    signal.SIGSYS: {1: "system call blocked by seccomp (SYS_SECCOMP)"},
}


def signal_code(crash: Crash) -> int | None:
    """COREDUMP_CODE as a number, None when the entry has none."""
    raw = crash.fields.get(Field.CODE, "")
    return int(raw) if raw.lstrip("-").isdigit() and len(raw) < 12 else None


def signal_cause(crash: Crash) -> str:
    """Why the signal came, in words ("address not mapped (SEGV_MAPERR)"); "" when unknown."""
    code = signal_code(crash)
    if code is None:
        return ""
    known = _FAULTS.get(crash.signal, {}).get(code) if code > 0 else None
    return known or _ANY_SIGNAL.get(code) or f"si_code {code}"


def thread_tid(crash: Crash) -> int:
    """COREDUMP_TID, the crashing thread; 0 when the entry does not say (0 is never a TID)."""
    raw = crash.fields.get(Field.TID, "")
    return int(raw) if raw.isdigit() and len(raw) < 12 else 0


def thread_text(crash: Crash) -> str:
    """ "TID 9517 (render-worker)"; "" when the entry names no thread."""
    tid = thread_tid(crash)
    name = bounded(crash.fields.get(Field.THREAD_NAME, ""), 64)
    if not tid:
        return ""
    main = " — the main thread" if tid == crash.pid else ""
    return f"TID {tid}" + (f" ({name})" if name else "") + main


def facts(crash: Crash) -> list[tuple[str, str]]:
    """(label, value) rows for what the entry and KCrash add; empty values left out."""
    rows = [("Thread", thread_text(crash)), ("Cause", signal_cause(crash))]
    info = crash.kcrash
    if info is not None:
        rows += [("Version", info.version), ("Bugs to", info.bug_address)]
    return [(label, value) for label, value in rows if value]
