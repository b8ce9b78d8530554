"""What makes two crashes "the same crash": the program plus the top frames of the crashing thread.

The quick stack trace in MESSAGE uses systemd's format (DESIGN.md §2.1): `Stack trace of thread
TID:` then `#N  0x%016x FUNC (MODULE + 0xOFF)`; the first thread listed is the one that got the
signal (systemd-coredump and our collector both put it first). A frame without a symbol name is
identified by module + offset, which is stable across runs (offsets are module-relative, so ASLR
does not change them). Pure: no I/O.
"""

from __future__ import annotations

import re

from drkonqi_lite.domain.crash import Crash

#: How many innermost frames identify a crash (enough to tell abort() callers apart).
TOP_FRAMES = 3

_FRAME = re.compile(
    r"^#(?P<n>\d+)\s+0x[0-9a-fA-F]+\s+(?P<func>\S+)"
    r"(?:\s+\((?P<module>.*) \+ (?P<off>0x[0-9a-f]+)\))?"
)
_THREAD = "Stack trace of thread "


def first_thread_frames(backtrace: str, limit: int | None = None) -> list[tuple[int, str]]:
    """(line number, frame line) of the crashing (first) thread's frames, at most `limit`."""
    frames: list[tuple[int, str]] = []
    seen_thread = False
    for number, line in enumerate(backtrace.split("\n")):
        stripped = line.strip()
        if stripped.startswith(_THREAD):
            if seen_thread:
                break
            seen_thread = True
            continue
        if stripped.startswith("#") and _FRAME.match(stripped):
            frames.append((number, stripped))
            if limit is not None and len(frames) >= limit:
                break
    return frames


#: Functions that only deliver the signal (abort(), assert, fortify): the crash is in a caller.
SIGNAL_MACHINERY = frozenset({
    "__pthread_kill_implementation", "__pthread_kill_internal", "pthread_kill", "__GI_raise",
    "raise", "__GI_abort", "abort", "__assert_fail_base", "__assert_fail", "__libc_message",
    "__fortify_fail", "__chk_fail", "__stack_chk_fail", "__libc_fatal", "__GI___pthread_kill",
    "qt_assert", "qFatal", "std::terminate", "__gnu_cxx::__verbose_terminate_handler",
})  # fmt: skip


def crashing_frame_line(backtrace: str) -> int | None:
    """The line of the frame to look at first: the first frame of the crashing thread that is
    not signal-delivery machinery (abort, raise, assert), else frame #0; None without frames."""
    frames = first_thread_frames(backtrace, 16)
    for number, line in frames:
        match = _FRAME.match(line)
        if match is not None and match["func"] not in SIGNAL_MACHINERY:
            return number
    return frames[0][0] if frames else None


_FRAME_LINE = re.compile(
    r"^[ \t]*#\d+\s+0x[0-9a-fA-F]+\s+(\S+)(?:\s+\((.*) \+ (0x[0-9a-f]+)\))?", re.MULTILINE
)


def top_frames(backtrace: str, count: int = TOP_FRAMES) -> tuple[str, ...]:
    """The identities of the innermost `count` frames after the signal-delivery machinery
    (abort, raise: the same in every abort): the function, else module + offset.

    One regex scan over the first thread's block (10,000 crashes are grouped when the list
    opens, so this is on the clock)."""
    first = backtrace.find(_THREAD)
    end = backtrace.find("\n" + _THREAD, first + 1) if first >= 0 else -1
    block = backtrace[: end if end >= 0 else len(backtrace)]
    out: list[str] = []
    for match in _FRAME_LINE.finditer(block):
        func = match[1]
        if not out and func in SIGNAL_MACHINERY:
            continue
        if func in {"n/a", "??"} and match[2]:
            func = f"{match[2].rsplit('/', 1)[-1]}+{match[3]}"
        out.append(func)
        if len(out) == count:
            break
    return tuple(out)


def python_top_frames(crash: Crash, count: int = TOP_FRAMES) -> tuple[str, ...]:
    """The innermost `count` Python frames of the crashing thread as "function@file:line"."""
    inner = crash.python_stack[::-1][:count]
    return tuple(f"{f.function}@{f.file}:{f.line}" for f in inner)


def signature(crash: Crash) -> str:
    """The crash's signature: signal and top frames ("SIGSEGV|f;g;main"). For a Python program
    the Python frames decide ("SIGSEGV|py:f@app.py:7;..."): two crashes at the same Python line
    are the same crash even when the interpreter's C frames differ; an unhandled exception is
    named by its type instead of a signal."""
    head = crash.exception_type or crash.signal_name
    if crash.python_stack:
        return f"{head}|py:" + ";".join(python_top_frames(crash))
    return f"{head}|" + ";".join(top_frames(crash.backtrace))


def group_key(crash: Crash) -> tuple[str, str]:
    """(program, signature): repeats of the same crash share it."""
    return crash.program_key, signature(crash)
