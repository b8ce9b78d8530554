"""The crash record: one trusted coredump journal entry, as every part of the app sees it.

Built from the raw journal fields (our collector's and systemd-coredump's entries share the
schema of DESIGN.md §2.1). This is the record the crash windows, the D-Bus service, the CLI and
the notifications all use. Pure and synchronous: it must not touch the journal, files or Qt, and
it must never execute or evaluate anything an entry says. Every text in it is hostile input.
"""

from __future__ import annotations

import dataclasses
import enum
import signal

# hashlib's own blake2b (hashlib takes it from here): hashlib's import also sets up OpenSSL's
# digests, which costs a cold start ~2 ms of its 200 (issue 12).
from _blake2 import blake2b
from collections.abc import Mapping

from drkonqi_lite.domain import python_stack
from drkonqi_lite.domain.python_stack import PythonFrame, PythonThread
from drkonqi_lite_collector.journal.schema import (
    BACKTRACE_MESSAGE_ID,
    CRASH_MESSAGE_IDS,
    CoreState,
    Field,
    unescape,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # kcrash.py uses `bounded` from here: a run-time import would be circular
    from drkonqi_lite.domain.kcrash import KCrashInfo

#: Bounds for hostile text (a 128 KiB argv[0] must not become a 128 KiB notification).
MAX_NAME_CHARS = 256
MAX_FIELD_CHARS = 1 << 20

#: Journal fields stamped by journald itself (trusted: the sender cannot forge them).
TRUSTED_UID = "_UID"
BOOT_ID = "_BOOT_ID"
REALTIME = "__REALTIME_TIMESTAMP"
CURSOR = "__CURSOR"

#: The plain-words reason for the signals that dump core (signal(7)), as a user would say it.
_REASONS: dict[int, str] = {
    signal.SIGSEGV: "Segmentation fault",
    signal.SIGABRT: "Aborted",
    signal.SIGBUS: "Bus error",
    signal.SIGFPE: "Arithmetic error",
    signal.SIGILL: "Illegal instruction",
    signal.SIGTRAP: "Trace or breakpoint trap",
    signal.SIGSYS: "Bad system call",
    signal.SIGQUIT: "Quit",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "File size limit exceeded",
}


class MalformedEntryError(ValueError):
    """A coredump entry that lacks what a crash record needs (skipped with a log line)."""


class Source(enum.StrEnum):
    """Who wrote the entry (from SYSLOG_IDENTIFIER; informative only, not a trust signal)."""

    DRKONQI_LITE = "drkonqi-lite-collector"
    SYSTEMD_COREDUMP = "systemd-coredump"
    OTHER = "other"


def crash_id(boot_id: str, pid: int, timestamp_us: int) -> str:
    """An opaque id, stable across restarts: the same crash always gets the same id.

    (boot, pid, timestamp) names one crash: PIDs are reused, but not within the same µs of one
    boot. Hashed so that nobody parses it; 20 hex digits, prefixed so it is never all digits
    (`drkonqi-lite show ID|PID` tells them apart).
    """
    digest = blake2b(f"{boot_id}:{pid}:{timestamp_us}".encode(), digest_size=10)
    return "c" + digest.hexdigest()


def reason_text(signo: int) -> str:
    """ "Segmentation fault" for 11; a generic wording for signals outside the core-dump set."""
    if signo in _REASONS:
        return _REASONS[signo]
    try:
        return f"Killed by signal {signal.Signals(signo).name}"
    except ValueError:
        return f"Killed by signal {signo}"


def bounded(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclasses.dataclass(frozen=True, slots=True)
class Crash:
    """One crash, as read from one trusted journal entry.

    `fields` holds every text field of the entry (including the environment: use
    `redaction.public_fields` before showing or exporting them). `core_state` is decided by the
    core file adapter (it needs the file system) and set with `dataclasses.replace`.
    """

    id: str
    pid: int
    uid: int
    gid: int
    signal: int
    signal_name: str
    comm: str
    exe: str
    cmdline: str
    timestamp_us: int
    hostname: str
    unit: str
    package: str
    package_version: str
    boot_id: str
    cursor: str
    sender_uid: int
    source: Source
    core_filename: str
    core_truncated: bool
    core_in_journal: bool
    restricted: bool
    restricted_reason: str
    core_missing_reason: str
    message: str
    fields: Mapping[str, str]
    #: One of CoreState's values (plain strings: the schema keeps the collector enum-free).
    core_state: str = CoreState.NONE
    #: The Python stack, crashing thread first: from the entry (unhandled exceptions) or, for a
    #: native crash of a Python program, read from the core by the app and set with replace.
    python_threads: tuple[PythonThread, ...] = ()
    #: An unhandled exception's type ("ValueError"); "" for a crash by signal.
    exception_type: str = ""
    exception_value: str = ""
    #: What KCrash wrote about a KDE program's crash (display name, version, bug address), set
    #: by the journal source with replace when the user's metadata file matches (kcrash.py).
    kcrash: KCrashInfo | None = None

    @property
    def reason(self) -> str:
        """The reason in plain words ("Segmentation fault", "Unhandled exception ValueError")."""
        if self.exception_type:
            return f"Unhandled exception {self.exception_type}"
        return reason_text(self.signal)

    @property
    def program_key(self) -> str:
        """What "the same program" means for grouping and muting: the executable, else comm;
        for a Python program its script (every script shares the interpreter's executable)."""
        return python_stack.main_script(self.python_threads) or self.exe or self.comm

    @property
    def program_path(self) -> str:
        """The program's file: a Python program's script, else the executable ("" unknown). What
        finds its .desktop entry (Restart program) — python3.11 is every script's executable."""
        return python_stack.main_script(self.python_threads) or self.exe

    @property
    def program_name(self) -> str:
        """What to call the program when no .desktop entry names it: a Python program's script
        ("sync.py", not "python3"), else comm."""
        script = python_stack.main_script(self.python_threads)
        return script.rsplit("/", 1)[-1] if script else self.comm

    @property
    def python_stack(self) -> tuple[PythonFrame, ...]:
        """The crashing thread's Python frames, outermost first; () when there are none."""
        return python_stack.crashing_frames(self.python_threads)

    @property
    def is_exception(self) -> bool:
        """A crash the program reported itself (an unhandled exception): no core, no signal."""
        return self.fields.get(Field.MESSAGE_ID) == BACKTRACE_MESSAGE_ID

    @property
    def backtrace(self) -> str:
        """The quick stack trace: MESSAGE after its head line and the blank line."""
        _head, sep, rest = self.message.partition("\n\n")
        return rest if sep else ""


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _int(fields: Mapping[str, str], key: str, *, required: bool) -> int:
    raw = fields.get(key, "")
    try:
        return int(raw)
    except ValueError:
        if required:
            raise MalformedEntryError(f"{key}={bounded(raw, 40)!r} is not an integer") from None
        return -1


def _unescaped(fields: Mapping[str, str], key: str, escaped: bool = True) -> str:
    """A field as the text its bytes spell (schema.unescape), when its writer escaped it; shown
    inertly by the views like any hostile text."""
    value = fields.get(key, "")
    return unescape(value).decode("utf-8", "replace") if escaped else value


def crash_from_entry(entry: Mapping[str, str | bytes]) -> Crash:
    """Build the record from one journal entry (field name → text or bytes).

    The caller decides trust (`trust.TrustPolicy`) before or after; this only checks shape.
    Raises MalformedEntryError for an entry that is not a usable coredump record.
    """
    fields = {
        k: bounded(_text(v), MAX_FIELD_CHARS) for k, v in entry.items() if k != Field.COREDUMP
    }
    message_id = fields.get(Field.MESSAGE_ID)
    if message_id not in CRASH_MESSAGE_IDS:
        raise MalformedEntryError("not a coredump entry")
    # A self-reported crash (--backtrace entry) has no core and may have no signal; a core
    # name in one is ignored, whoever wrote it.
    reported = message_id == BACKTRACE_MESSAGE_ID
    pid = _int(fields, Field.PID, required=True)
    uid = _int(fields, Field.UID, required=True)
    signo = max(_int(fields, Field.SIGNAL, required=not reported), 0)
    realtime = _int(fields, REALTIME, required=False)
    # COREDUMP_TIMESTAMP is the kernel's %t in µs; fall back to when journald got the entry.
    timestamp = _int(fields, Field.TIMESTAMP, required=False)
    if timestamp < 0:
        timestamp = realtime
    if timestamp < 0:
        raise MalformedEntryError("no timestamp")
    boot_id = fields.get(BOOT_ID, "")
    try:
        signal_name = signal.Signals(signo).name if signo else ""
    except ValueError:
        signal_name = fields.get(Field.SIGNAL_NAME, "")
    ident = fields.get(Field.SYSLOG_IDENTIFIER, "")
    source = Source(ident) if ident in set(Source) else Source.OTHER
    return Crash(
        id=crash_id(boot_id, pid, timestamp),
        pid=pid,
        uid=uid,
        gid=_int(fields, Field.GID, required=False),
        signal=signo,
        signal_name=bounded(signal_name, 32),
        # systemd and we both C-escape COMM; we also escape EXE and CMDLINE (SECURITY.md 14).
        comm=bounded(_unescaped(fields, Field.COMM)),
        exe=bounded(_unescaped(fields, Field.EXE, source is Source.DRKONQI_LITE), 4096),
        cmdline=bounded(_unescaped(fields, Field.CMDLINE, source is Source.DRKONQI_LITE), 4096),
        timestamp_us=timestamp,
        hostname=bounded(fields.get(Field.HOSTNAME, "")),
        unit=bounded(fields.get(Field.USER_UNIT) or fields.get(Field.UNIT, "")),
        package=bounded(fields.get(Field.PACKAGE_NAME, "")),
        package_version=bounded(fields.get(Field.PACKAGE_VERSION, "")),
        boot_id=boot_id,
        cursor=fields.get(CURSOR, ""),
        sender_uid=_int(fields, TRUSTED_UID, required=False),
        source=source,
        core_filename="" if reported else fields.get(Field.FILENAME, ""),
        core_truncated=fields.get(Field.TRUNCATED, "") == "1",
        core_in_journal=Field.COREDUMP in entry,
        restricted=fields.get(Field.RESTRICTED, "") == "1",
        restricted_reason=bounded(fields.get(Field.RESTRICTED_REASON, "")),
        core_missing_reason=bounded(fields.get(Field.CORE_MISSING, "")),
        message=fields.get(Field.MESSAGE, ""),
        fields=fields,
        python_threads=python_stack.parse(fields.get(Field.PYTHON_STACK, "")),
        exception_type=bounded(fields.get(Field.EXCEPTION_TYPE, "")) if reported else "",
        exception_value=bounded(fields.get(Field.EXCEPTION_VALUE, ""), 4096) if reported else "",
    )
