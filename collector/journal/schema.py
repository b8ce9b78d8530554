"""The journal contract shared by the collector and the per-user app.

A crash is ONE journal entry in systemd-coredump's schema (DESIGN.md §2.1), so that
`coredumpctl` and every other reader of systemd-coredump entries understands ours, and so that
the app understands systemd-coredump's.  This module names the fields, the storage file name
rule and the MESSAGE format.  It is stdlib only: the collector runs as root on hostile input and
the app imports this module too, so it must stay free of side effects, Qt and D-Bus.
"""

from __future__ import annotations

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Iterable

#: sd-messages.h SD_MESSAGE_COREDUMP: the id systemd-coredump (and we) stamp on every crash.
MESSAGE_ID = "fc2e22bc6ee647b6b90729ab34a250b1"
#: sd-messages.h SD_MESSAGE_BACKTRACE: what `systemd-coredump --backtrace` stamps on a crash
#: reported by the program itself, with no core (coredumpctl lists both ids). Our
#: unhandled-exception hook (python_hook.py) writes such entries.
BACKTRACE_MESSAGE_ID = "1f4e0a44a88649939aaea34fc6da8c95"
#: Every MESSAGE_ID that makes an entry a crash record.
CRASH_MESSAGE_IDS = (MESSAGE_ID, BACKTRACE_MESSAGE_ID)
#: systemd-coredump logs at LOG_CRIT.
PRIORITY = 2
SYSLOG_IDENTIFIER = "drkonqi-lite-collector"


class Field:
    """Journal field names. The COREDUMP_* ones keep systemd-coredump's meanings and formats.

    Plain string constants rather than an enum: the collector must not import `enum` at
    start-up (~5 ms of a small crash's budget, see handler.py)."""

    MESSAGE = "MESSAGE"
    MESSAGE_ID = "MESSAGE_ID"
    PRIORITY = "PRIORITY"
    SYSLOG_IDENTIFIER = "SYSLOG_IDENTIFIER"
    PID = "COREDUMP_PID"
    UID = "COREDUMP_UID"
    GID = "COREDUMP_GID"
    SIGNAL = "COREDUMP_SIGNAL"
    SIGNAL_NAME = "COREDUMP_SIGNAL_NAME"
    TIMESTAMP = "COREDUMP_TIMESTAMP"
    RLIMIT = "COREDUMP_RLIMIT"
    HOSTNAME = "COREDUMP_HOSTNAME"
    DUMPABLE = "COREDUMP_DUMPABLE"
    #: "1" when /proc was read through the pidfd the kernel gave (%F), as systemd 258 writes.
    BY_PIDFD = "COREDUMP_BY_PIDFD"
    #: That pidfd's inode number: pidfs gives every process a unique 64-bit id (Linux >= 6.9).
    PIDFDID = "COREDUMP_PIDFDID"
    #: The crashing thread's TID (%I) and its name (/proc/PID/task/TID/comm), as systemd
    #: records them since its pull request #41082.
    TID = "COREDUMP_TID"
    THREAD_NAME = "COREDUMP_THREAD_NAME"
    #: si_code of the fatal signal (why it was sent: SEGV_MAPERR=1, SEGV_ACCERR=2, SI_USER=0,
    #: ...). systemd reads it from pidfd info (#42019, a kernel newer than 6.18); the kernel
    #: also writes it into the core's NT_SIGINFO note, which is where we read it.
    CODE = "COREDUMP_CODE"
    COMM = "COREDUMP_COMM"
    EXE = "COREDUMP_EXE"
    CMDLINE = "COREDUMP_CMDLINE"
    CWD = "COREDUMP_CWD"
    ROOT = "COREDUMP_ROOT"
    ENVIRON = "COREDUMP_ENVIRON"
    OPEN_FDS = "COREDUMP_OPEN_FDS"
    PROC_STATUS = "COREDUMP_PROC_STATUS"
    PROC_MAPS = "COREDUMP_PROC_MAPS"
    PROC_LIMITS = "COREDUMP_PROC_LIMITS"
    PROC_CGROUP = "COREDUMP_PROC_CGROUP"
    PROC_MOUNTINFO = "COREDUMP_PROC_MOUNTINFO"
    PROC_AUXV = "COREDUMP_PROC_AUXV"
    CGROUP = "COREDUMP_CGROUP"
    UNIT = "COREDUMP_UNIT"
    USER_UNIT = "COREDUMP_USER_UNIT"
    SLICE = "COREDUMP_SLICE"
    SESSION = "COREDUMP_SESSION"
    OWNER_UID = "COREDUMP_OWNER_UID"
    CONTAINER_CMDLINE = "COREDUMP_CONTAINER_CMDLINE"
    PACKAGE_NAME = "COREDUMP_PACKAGE_NAME"
    PACKAGE_VERSION = "COREDUMP_PACKAGE_VERSION"
    PACKAGE_JSON = "COREDUMP_PACKAGE_JSON"
    FILENAME = "COREDUMP_FILENAME"
    TRUNCATED = "COREDUMP_TRUNCATED"
    #: Fields cut to journald-safe sizes (space-separated names; entry.bounded).
    TRUNCATED_FIELDS = "DRKONQI_LITE_TRUNCATED_FIELDS"
    #: The core itself, when Storage=journal (binary).
    COREDUMP = "COREDUMP"
    # --- ours -------------------------------------------------------------------------------
    #: Why there is no stored core (CoreMissing value), when there is none.
    CORE_MISSING = "DRKONQI_LITE_CORE_MISSING"
    #: "1" when the crashing user was denied read access to the core, with the reason in
    #: RESTRICTED_REASON (set-uid, non-dumpable, identity not proven, ...).
    RESTRICTED = "DRKONQI_LITE_RESTRICTED"
    RESTRICTED_REASON = "DRKONQI_LITE_RESTRICTED_REASON"
    #: "verified" when the pidfd proved /proc/PID was the crashed process, else "unverified".
    IDENTITY = "DRKONQI_LITE_IDENTITY"
    #: On the user's entry of a restricted crash: the names of the fields kept out of it
    #: (space-separated); the full entry is in the system journal
    #: (collector/journal/restriction.py).
    WITHHELD = "DRKONQI_LITE_WITHHELD"
    #: Crashes of this executable by this user in the current rate-limit window.
    CRASH_COUNT = "DRKONQI_LITE_CRASH_COUNT"
    #: Set on entries that were spooled because journald was unreachable, then replayed.
    SPOOLED_AT = "DRKONQI_LITE_SPOOLED_AT"
    #: Size in bytes of the core as the kernel handed it over (before compression).
    CORE_SIZE = "DRKONQI_LITE_CORE_SIZE"
    #: Modules (mapped ELF objects) with build-ids, one per line: "NAME BUILDID".
    MODULES = "DRKONQI_LITE_MODULES"
    #: Stack trace status: "ok", "partial: REASON" or "none: REASON".
    STACKTRACE = "DRKONQI_LITE_STACKTRACE"
    #: The collector's version.
    VERSION = "DRKONQI_LITE_VERSION"
    #: The Python stack of a crashed CPython program, JSON: a list of threads, the crashing one
    #: first, `{"tid": int, "name": str, "crashed": bool, "frames": [{"function": str,
    #: "file": str, "line": int}, ...]}` with frames outermost first (domain/python_stack.py).
    PYTHON_STACK = "DRKONQI_LITE_PYTHON_STACK"
    #: An unhandled exception's qualified type name ("json.decoder.JSONDecodeError") and its
    #: str() (bounded), in the hook's backtrace entries.
    EXCEPTION_TYPE = "DRKONQI_LITE_EXCEPTION_TYPE"
    EXCEPTION_VALUE = "DRKONQI_LITE_EXCEPTION_VALUE"


# --- Names both processes agree on: defined here once, imported by the collector and the app.

#: The collector's system user (sysusers.d): it sends the entries of system users' crashes, and
#: the app trusts it as a sender (domain/trust.py).
COLLECTOR_USER = "drkonqi-lite"
#: uid_is_system(): uids up to SYSTEM_UID_MAX (login.defs) belong to the system.
SYSTEM_UID_MAX = 999
#: The collector's state directory below its prefix ("/" on a real system), and where the
#: cores are stored inside it (DESIGN.md §2.2).
STATE_DIR = "var/lib/drkonqi-lite"
STORAGE_SUBDIR = "coredump"
STORAGE_DIR = f"/{STATE_DIR}/{STORAGE_SUBDIR}"
#: drkonqi-lite-fleet's state below STATE_DIR (its unit's StateDirectory=): the saved journal
#: position and, in FLEET_QUEUE_SUBDIR, one QUEUED_SUFFIX file per report not sent yet
#: (`drkonqi-lite-collector status` counts them; the app writes them, adapters/report_queue.py).
FLEET_SUBDIR = "fleet"
FLEET_QUEUE_SUBDIR = "reports"
QUEUED_SUFFIX = ".json"
#: The fleet's unit, which `drkonqi-lite-collector status` asks systemd about.
FLEET_UNIT = "drkonqi-lite-fleet.service"
#: drkonqi-lite-cores.socket, which deletes a user's core for them (admin/cores.py).
CORES_SOCKET = "/run/drkonqi-lite/cores.socket"
#: Its protocol: one SOCK_SEQPACKET datagram, DELETE_REQUEST then the core's base name; the
#: answer is DELETE_OK, or DELETE_ERROR, a NUL and why (words for the user).
DELETE_REQUEST = b"delete\0"
DELETE_OK = b"ok"
DELETE_ERROR = b"error"
#: The app's wake-up datagram socket below the user's runtime directory ($XDG_RUNTIME_DIR,
#: which the collector knows as /run/user/UID); the datagram carries nothing the app trusts.
WAKEUP_SOCKET = "drkonqi-lite/wakeup"


def wakeup_path(runtime_dir: str) -> str:
    return f"{runtime_dir}/{WAKEUP_SOCKET}"


class CoreMissing:
    """Why an entry has no stored core (value of DRKONQI_LITE_CORE_MISSING)."""

    STORAGE_NONE = "storage-none"
    DISK_FULL = "disk-full"
    WRITE_FAILED = "write-failed"
    RATE_LIMITED = "rate-limited"
    EMPTY = "empty"
    #: The kernel stopped sending the core before its first byte (a dump stuck on a page of
    #: a user's stopped FUSE file: corestream.STALL_TIMEOUT).
    STALLED = "stalled"
    COLLECTOR_CRASH = "collector-crash"


class CoreState:
    """What the app can say about a crash's core (the D-Bus `core_state`)."""

    PRESENT = "present"
    MISSING = "missing"
    INACCESSIBLE = "inaccessible"
    TRUNCATED = "truncated"
    NONE = "none"


def format_frame(
    index: int, pc: int, function: str | None, module: str | None, offset: int | None
) -> str:
    """One frame in systemd's format: `#N  0x%016x FUNC (MODULE + 0xOFF)`.

    Like systemd's elf-util.c frame_callback, the parenthesis is always there: a frame outside
    every known module reads `FUNC (n/a + 0x0)`, and a missing name is `n/a` (strna()).
    """
    return f"#{index:<2} 0x{pc:016x} {function or 'n/a'} ({module or 'n/a'} + 0x{offset or 0:x})"


def format_thread(tid: int, frames: Iterable[str]) -> str:
    """A thread block: `Stack trace of thread TID:` then its frames.

    systemd separates thread blocks with one blank line: join blocks with "\\n\\n".
    """
    return "\n".join([f"Stack trace of thread {tid}:", *frames])


#: C escapes of systemd's cescape_char() (basic/escape.c); any other byte outside printable
#: ASCII becomes `\\ooo` (octal, as glib's g_strescape does).
_C_ESCAPES = {
    0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
    0x0B: "\\v", 0x5C: "\\\\", 0x22: '\\"', 0x27: "\\'",
}  # fmt: skip
_C_UNESCAPES = {v[1]: k for k, v in _C_ESCAPES.items()}


def _cescape_byte(b: int) -> str:
    if b in _C_ESCAPES:
        return _C_ESCAPES[b]
    return chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}"


def escape_comm(raw: bytes) -> str:
    """COREDUMP_COMM as systemd writes it (get_process_comm() → cellescape()): printable ASCII
    kept, quotes and backslash and every other byte C-escaped. Pure ASCII, no control byte."""
    return "".join(_cescape_byte(b) for b in raw)


def escape_printable(raw: bytes, keep: str = "") -> str:
    """`raw` as valid UTF-8 with no control character, for the fields coredumpctl and
    journalctl print (SECURITY.md 14): printable text (UTF-8 included) kept; backslash, invalid
    UTF-8 bytes and every character str.isprintable() refuses (C0/DEL/C1 controls, bidi and
    other format characters, line separators), except those in `keep`, C-escaped byte by byte
    like escape_comm. Printable paths stay as they are, so coredumpctl debug still finds them."""
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if ch in keep:
            out.append(ch)
        elif 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\{o - 0xDC00:03o}")
        elif not ch.isprintable() or ch == "\\":
            out.append("".join(_cescape_byte(b) for b in ch.encode()))
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str) -> bytes:
    """The bytes behind escape_comm/escape_printable (and systemd's cescape): `\\ooo`, `\\xNN`
    and the C escapes decoded; anything else kept as it is."""
    out = bytearray()
    data = text.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(data):
        b = data[i]
        nxt = chr(data[i + 1]) if b == 0x5C and i + 1 < len(data) else ""
        octal = data[i + 1 : i + 4] if nxt else b""
        if nxt in _C_UNESCAPES and nxt:
            out.append(_C_UNESCAPES[nxt])
            i += 2
        elif len(octal) == 3 and all(0x30 <= c <= 0x37 for c in octal) and octal[0] <= 0x33:
            out.append(int(octal, 8))
            i += 4
        elif nxt == "x" and _is_hex(data[i + 2 : i + 4]):
            out.append(int(data[i + 2 : i + 4], 16))
            i += 4
        else:
            out.append(b)
            i += 1
    return bytes(out)


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


#: Bytes kept as they are in file names: printable ASCII except space, `.`, `/` and `\\`.
_SAFE_NAME_BYTES = frozenset(range(0x21, 0x7F)) - frozenset(b"./\\")


def escape_name(raw: bytes) -> str:
    """Escape a process name for use inside a file name.

    Like systemd's xescape(comm, "./ "): every byte that is not a printable ASCII character,
    and `/`, `.`, space and backslash, becomes `\\xNN`. The result has no path separator, no
    dot (so never `..`) and no control or non-ASCII byte, whatever the crashed process chose.
    """
    return "".join(chr(b) if b in _SAFE_NAME_BYTES else f"\\x{b:02x}" for b in raw)


CORE_SUFFIX = ".zst"


def core_filename(comm: bytes, uid: int, boot_id: str, pid: int, timestamp_us: int) -> str:
    """`core.COMM.UID.BOOTID.PID.TIMESTAMP.zst` (DESIGN.md §2.2)."""
    return f"core.{escape_name(comm)}.{uid}.{boot_id}.{pid}.{timestamp_us}{CORE_SUFFIX}"


def parse_core_filename(name: str) -> tuple[int, int, int] | None:
    """(uid, pid, timestamp_us) of a core file name we (or systemd) write, or None.

    `core.COMM.UID.BOOTID.PID.TIMESTAMP[.zst|.xz|.lz4]`; COMM is escaped, so has no dot.
    """
    parts = name.split(".")
    if parts[-1] in ("zst", "xz", "lz4"):
        parts.pop()
    if len(parts) != 6 or parts[0] != "core" or not parts[1]:
        return None
    _, _comm, uid, boot, pid, ts = parts
    if not (
        uid.isdigit()
        and pid.isdigit()
        and ts.isdigit()
        and uid.isascii()
        and pid.isascii()
        and ts.isascii()
    ):
        return None
    if len(boot) != 32 or not all(c in "0123456789abcdef" for c in boot):
        return None
    return int(uid), int(pid), int(ts)
