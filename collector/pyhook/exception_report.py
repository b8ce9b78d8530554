"""One journal entry for a Python program's unhandled exception, sent by the dying program.

Loaded by python_hook.py only when a program dies of an exception. The entry is what
`systemd-coredump --backtrace` writes (systemd's coredump-backtrace.c): MESSAGE_ID
SD_MESSAGE_BACKTRACE, PRIORITY 2, the COREDUMP_* fields of the process from /proc, and a MESSAGE
of the reporter's choosing — here systemd's head line and the traceback as Python printed it.
Ours on top: the exception's type and value and the Python stack of every thread (JSON, see
schema.Field.PYTHON_STACK). The environment never: it is the program's secrets, and unlike a
core there is nothing that needs it.

It is sent by the crashing process itself over journald's native protocol, so journald stamps
the kernel's credentials and files it in that user's journal. Crash loops are limited like
native crashes (ratelimit.py, keyed by the script, state in the user's runtime directory):
beyond the burst the entry carries the count but no traceback, stack or maps.
"""

from __future__ import annotations

import os
import sys
import time

from drkonqi_lite_collector import __version__, config
from drkonqi_lite_collector.journal import entry
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.schema import BACKTRACE_MESSAGE_ID, PRIORITY, Field
from drkonqi_lite_collector.worker import procinfo, ratelimit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType

#: Who wrote the entry (informative; journald's _UID/_PID say who really sent it).
SYSLOG_IDENTIFIER = "drkonqi-lite-python-hook"
#: Bounds well below journald's per-field limits; a traceback can be megabytes (recursion).
MAX_TRACEBACK = 64 * 1024
MAX_VALUE = 4096
MAX_FRAMES = 256
MAX_THREADS = 64
#: Kernel's RLIM_INFINITY as %c prints it (Python says -1).
RLIM_INFINITY = (1 << 64) - 1
#: Fields of the full entry that a rate-limited one leaves out (bounded cost in a loop).
_HEAVY = frozenset({Field.PYTHON_STACK, Field.PROC_MAPS, Field.PROC_MOUNTINFO, Field.OPEN_FDS})

Frames = list[dict[str, object]]

#: Characters a terminal acts on (C0 but newline and tab, DEL, C1, bidi overrides): in MESSAGE
#: they are written as \xNN / \uNNNN, because `coredumpctl info` and `journalctl` print
#: MESSAGE as it is (SECURITY.md 14). Our own fields keep the exact text; the app shows it inert.
_TERMINAL = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}
_TERMINAL.update({c: f"\\u{c:04x}" for c in (0x200E, 0x200F, *range(0x202A, 0x202F),
                                              *range(0x2066, 0x206A))})  # fmt: skip


def _frame_dict(code: object, line: int | None) -> dict[str, object]:
    name = getattr(code, "co_qualname", None) or getattr(code, "co_name", "")
    return {"function": str(name), "file": str(getattr(code, "co_filename", "")),
            "line": line if isinstance(line, int) else -1}  # fmt: skip


def traceback_frames(tb: TracebackType | None) -> Frames:
    """The traceback's frames, outermost first (the order Python prints them)."""
    out: Frames = []
    while tb is not None and len(out) < MAX_FRAMES:
        out.append(_frame_dict(tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    return out


def frame_stack(frame: FrameType | None) -> Frames:
    """A live thread's frames, outermost first."""
    out: Frames = []
    while frame is not None and len(out) < MAX_FRAMES:
        out.append(_frame_dict(frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return out[::-1]


def python_threads(tb: TracebackType | None) -> list[dict[str, object]]:
    """The crashing thread (the traceback's frames), then every other thread as it stands."""
    threading = sys.modules.get("threading")  # names only if the program imported it
    me = threading.current_thread() if threading else None
    names = {t.ident: t.name for t in threading.enumerate()} if threading else {}
    native = {t.ident: t.native_id for t in threading.enumerate()} if threading else {}
    import _thread  # noqa: PLC0415 - the C module; always loaded

    current = _thread.get_ident()
    threads: list[dict[str, object]] = [{
        "tid": _thread.get_native_id(), "name": me.name if me else "MainThread",
        "crashed": True, "frames": traceback_frames(tb),
    }]  # fmt: skip
    for ident, frame in sys._current_frames().items():
        if ident == current or len(threads) >= MAX_THREADS:
            continue
        threads.append({"tid": native.get(ident) or -1, "name": names.get(ident, ""),
                        "crashed": False, "frames": frame_stack(frame)})  # fmt: skip
    return threads


def _type_name(etype: type[BaseException]) -> str:
    module = getattr(etype, "__module__", "")
    name = getattr(etype, "__qualname__", etype.__name__)
    return name if module in ("builtins", "__main__", "") else f"{module}.{name}"


def _value_text(value: BaseException) -> str:
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a __str__ that raises must not stop the report
        text = "<exception str() failed>"
    return text[:MAX_VALUE]


def _traceback_text(
    etype: type[BaseException], value: BaseException, tb: TracebackType | None
) -> str:
    import traceback  # noqa: PLC0415 - only on a crash

    text = "".join(traceback.format_exception(etype, value, tb)).translate(_TERMINAL)
    return text if len(text) <= MAX_TRACEBACK else "…\n" + text[-MAX_TRACEBACK:]


def _process_fields() -> list[tuple[str, journal.FieldValue]]:
    with procinfo.Process(os.getpid(), None) as process:
        info = process.capture()
    info.environ = None  # never the environment
    return [(k, v) for k, v in entry.proc_fields(info) if k != Field.ENVIRON]


def build_fields(
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    *,
    crashes: int,
    limited: bool,
    now: float,
) -> list[tuple[str, journal.FieldValue]]:
    """The entry's fields (see the module docstring)."""
    import json  # noqa: PLC0415 - only on a crash
    import resource  # noqa: PLC0415

    pid, uid = os.getpid(), os.getuid()
    rlimit = resource.getrlimit(resource.RLIMIT_CORE)[0]
    proc = _process_fields()
    comm = next((v for k, v in proc if k == Field.COMM), b"")
    type_name = _type_name(etype)
    head = b"Process %d (%s) of user %d failed with %s" % (
        pid, comm if isinstance(comm, bytes) else str(comm).encode(), uid,
        type_name.encode("utf-8", "replace"))  # fmt: skip
    body = "" if limited else _traceback_text(etype, value, tb)
    message = head + (b"\n\n" + body.encode("utf-8", "surrogateescape") if body else b"")
    fields: list[tuple[str, journal.FieldValue]] = [
        (Field.MESSAGE_ID, BACKTRACE_MESSAGE_ID),
        (Field.PRIORITY, PRIORITY),
        (Field.SYSLOG_IDENTIFIER, SYSLOG_IDENTIFIER),
        (Field.MESSAGE, message),
        (Field.PID, pid),
        (Field.UID, uid),
        (Field.GID, os.getgid()),
        # Not killed by a signal; coredumpctl needs the field (it shows "Reason: 0").
        (Field.SIGNAL, 0),
        (Field.TIMESTAMP, int(now * 1e6)),
        (Field.RLIMIT, RLIM_INFINITY if rlimit < 0 else rlimit),
        (Field.HOSTNAME, os.uname().nodename),
        *proc,
        (Field.EXCEPTION_TYPE, type_name),
        (Field.EXCEPTION_VALUE, _value_text(value)),
        (Field.PYTHON_STACK, json.dumps(python_threads(tb), separators=(",", ":"))),
        (Field.CRASH_COUNT, crashes),
        (Field.VERSION, __version__),
    ]
    return [(k, v) for k, v in fields if not (limited and k in _HEAVY)]


def state_dir() -> int | None:
    """The user's rate-limit state directory as an fd: in the user's runtime directory
    (XDG_RUNTIME_DIR, else /run/user/UID), else ~/.cache; None when there is none of them."""
    uid = os.getuid()
    home = os.path.expanduser("~")
    candidates = [(os.environ.get("XDG_RUNTIME_DIR", ""), ""), (f"/run/user/{uid}", ""),
                  (home, ".cache")]  # fmt: skip
    base = next((os.path.join(b, sub) for b, sub in candidates
                 if b.startswith("/") and _owned_dir(b, uid)), None)  # fmt: skip
    if base is None:
        return None
    path = os.path.join(base, "drkonqi-lite", "python-ratelimit")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


def _owned_dir(path: str, uid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == uid and os.path.isdir(path)


def _rate(cfg: config.Config, now: float) -> ratelimit.Verdict:
    main = sys.modules.get("__main__")
    script = os.path.abspath(str(getattr(main, "__file__", ""))).encode("utf-8", "surrogateescape")
    fd = state_dir()
    if fd is None:
        return ratelimit.Verdict(crashes=1, limited=False)
    try:
        return ratelimit.check(
            fd, os.getuid(), script, cfg.rate_limit_interval, cfg.rate_limit_burst, now
        )
    except OSError:
        return ratelimit.Verdict(crashes=1, limited=False)
    finally:
        os.close(fd)


def record(
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    *,
    prefix: str = "/",
    send: Callable[[int | bytes], None] = journal.send_payload,
) -> bool:
    """Record the crash unless PythonExceptions=no; True when an entry was sent."""
    cfg = config.load(config.Paths(prefix))
    if not cfg.python_exceptions:
        return False
    now = time.time()
    verdict = _rate(cfg, now)
    fields = build_fields(etype, value, tb, crashes=verdict.crashes, limited=verdict.limited,
                          now=now)  # fmt: skip
    payload = journal.build_payload(fields)
    try:
        send(payload)
    finally:
        if isinstance(payload, int):
            os.close(payload)
    return True
