"""The Python-level stack of a crashed CPython program: threads of {function, file, line}.

Every producer writes the same JSON shape (collector/journal/schema.py, Field.PYTHON_STACK): the
unhandled-exception hook in the exception's journal entry, and the reading of a native crash's
core for a Python program. This module parses that text into
frozen records, bounded, with invalid UTF-8 (lone surrogates) replaced, and gives the plain
values of `show --json` / `GetCrash`. Pure and stdlib only: names in it are hostile input, kept
as text and never interpreted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

#: Bounds: a hostile entry must not make a 100,000-frame list or a megabyte function name.
MAX_THREADS = 64
MAX_FRAMES = 256
MAX_TEXT = 1024

#: The pseudo function name CPython gives a module's top-level code.
MODULE_CODE = "<module>"


@dataclasses.dataclass(frozen=True, slots=True)
class PythonFrame:
    """One Python frame: the function, its source file and the line being run."""

    function: str
    file: str
    line: int


@dataclasses.dataclass(frozen=True, slots=True)
class PythonThread:
    """One thread's Python stack, outermost frame first."""

    tid: int
    name: str
    crashed: bool
    frames: tuple[PythonFrame, ...]


def _clean(value: object) -> str:
    """Text from JSON, bounded; lone surrogates (undecodable bytes of a file name) become U+FFFD
    so that every later encode (journal, D-Bus, clipboard) succeeds."""
    text = value if isinstance(value, str) else ""
    try:  # undecodable bytes of a file name, as Python keeps them (PEP 383): one U+FFFD each
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates
        raw = text.encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _frame(raw: object) -> PythonFrame | None:
    if not isinstance(raw, dict):
        return None
    return PythonFrame(_clean(raw.get("function")), _clean(raw.get("file")), _int(raw.get("line")))


def _thread(raw: object) -> PythonThread | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("frames"), list):
        return None
    frames = tuple(f for f in map(_frame, raw["frames"][:MAX_FRAMES]) if f is not None)
    return PythonThread(_int(raw.get("tid")), _clean(raw.get("name")), raw.get("crashed") is True,
                        frames)  # fmt: skip


def parse(text: str) -> tuple[PythonThread, ...]:
    """Threads from a DRKONQI_LITE_PYTHON_STACK value, the crashing thread first; () for text
    that is not the expected JSON (a forged or cut entry is simply without a Python stack)."""
    if not text:
        return ()
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(raw, list):
        return ()
    threads = [t for t in map(_thread, raw[:MAX_THREADS]) if t is not None]
    # The crashing thread first, whatever order the producer used (stable otherwise).
    threads.sort(key=lambda t: not t.crashed)
    return tuple(threads)


def crashing_frames(threads: Sequence[PythonThread]) -> tuple[PythonFrame, ...]:
    """The crashing thread's frames (outermost first); () without a Python stack."""
    return threads[0].frames if threads else ()


def main_script(threads: Sequence[PythonThread]) -> str:
    """The program's script: the file of the outermost module-level frame of the main thread
    (else of any thread), "" when none is known. What "the program" is for a Python crash: the
    interpreter's executable is the same for every script."""
    ordered = sorted(threads, key=lambda t: t.name != "MainThread")
    for thread in ordered:
        for frame in thread.frames:
            if frame.function == MODULE_CODE and frame.file and not frame.file.startswith("<"):
                return frame.file
    return ""


def location(frames: Sequence[PythonFrame]) -> str:
    """ " in apply_delta (sync.py, line 37)": where a Python program was when it crashed — its
    own innermost frame, past the standard library's (ctypes, threading) when it has one."""
    if not frames:
        return ""
    own = [f for f in frames if not f.file.startswith(("/usr/lib/python3", "<"))]
    f = (own or list(frames))[-1]
    name = f.file.rsplit("/", 1)[-1]
    return f" in {f.function} ({name}, line {f.line})"


def frame_dicts(frames: Sequence[PythonFrame]) -> list[dict[str, str | int]]:
    """`python_stack` of the crash dict: [{function, file, line}], outermost first."""
    return [{"function": f.function, "file": f.file, "line": f.line} for f in frames]


def thread_dicts(threads: Sequence[PythonThread]) -> list[dict[str, object]]:
    """`python_threads` of the crash dict: every thread, the crashing one first."""
    return [
        {"tid": t.tid, "name": t.name, "crashed": t.crashed, "frames": frame_dicts(t.frames)}
        for t in threads
    ]


def dumps(threads: Sequence[PythonThread]) -> str:
    """The DRKONQI_LITE_PYTHON_STACK text for `threads` (the inverse of `parse`)."""
    return json.dumps(thread_dicts(threads), ensure_ascii=True, separators=(",", ":"))


def format_text(threads: Sequence[PythonThread]) -> str:
    """The Python stack as a reader expects it, like Python's own traceback (most recent call
    last), one block per thread; used by the Backtrace tab, copied and saved reports."""
    blocks = []
    for t in threads:
        head = f"Python stack of thread {t.tid}" + (f" ({t.name})" if t.name else "")
        head += " — crashed" if t.crashed else ""
        lines = [head + ", most recent call last:"]
        for f in t.frames:
            lines.append(f'  File "{f.file}", line {f.line}, in {f.function}')
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
