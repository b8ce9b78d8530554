"""Turning what the collector learned into the journal entry's fields (DESIGN.md §2.1).

Pure functions over bytes: no I/O, so the exact field formats are unit-testable.
"""

from __future__ import annotations

from drkonqi_lite_collector.journal.native import FIELD_MAX, FIELDS_MAX, Blob, FieldValue
from drkonqi_lite_collector.journal.schema import (
    MESSAGE_ID,
    PRIORITY,
    SYSLOG_IDENTIFIER,
    Field,
    escape_comm,
    escape_printable,
)
from drkonqi_lite_collector.stage.argv import KernelArgs
from drkonqi_lite_collector.worker.procinfo import ProcInfo

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Iterator

Fields = list[tuple[str, FieldValue]]


def kernel_fields(args: KernelArgs) -> Fields:
    return [
        (Field.MESSAGE_ID, MESSAGE_ID),
        (Field.PRIORITY, PRIORITY),
        (Field.SYSLOG_IDENTIFIER, SYSLOG_IDENTIFIER),
        (Field.PID, args.pid),
        (Field.UID, args.uid),
        (Field.GID, args.gid),
        (Field.SIGNAL, args.signal),
        (Field.SIGNAL_NAME, args.signal_name),
        (Field.TIMESTAMP, args.timestamp_us),
        (Field.RLIMIT, args.rlimit),
        (Field.HOSTNAME, args.hostname),
        (Field.DUMPABLE, args.dumpable),
        *([(Field.TID, args.tid)] if args.tid is not None else []),
    ]


def cmdline_text(raw: bytes) -> bytes:
    """systemd's COREDUMP_CMDLINE: the arguments joined by single spaces, bytes unchanged."""
    return raw.rstrip(b"\0").replace(b"\0", b" ")


def environ_text(raw: bytes) -> bytes:
    """systemd's COREDUMP_ENVIRON: one VAR=value per line."""
    return raw.rstrip(b"\0").replace(b"\0", b"\n")


def cgroup_path(raw: bytes) -> bytes | None:
    """The unified (cgroup v2) path from /proc/PID/cgroup (`0::/path`)."""
    for line in raw.splitlines():
        if line.startswith(b"0::"):
            return line[3:]
    return None


_UNIT_SUFFIXES = (b".service", b".scope", b".socket", b".mount", b".swap", b".timer")


def _number_between(text: bytes, prefix: bytes, suffix: bytes) -> bytes | None:
    """`1000` from `user-1000.slice` (prefix `user-`, suffix `.slice`); None otherwise."""
    if not (text.startswith(prefix) and text.endswith(suffix)):
        return None
    middle = text[len(prefix) : len(text) - len(suffix)]
    return middle if middle.isdigit() else None


def cgroup_units(path: bytes) -> dict[str, bytes]:
    """UNIT, USER_UNIT, SLICE, SESSION and OWNER_UID from a cgroup path, the way
    systemd's cg_path_get_* read them (e.g. /user.slice/user-1000.slice/session-2.scope)."""
    parts = [p for p in path.split(b"/") if p]
    out: dict[str, bytes] = {}
    unit_index = None
    for i, part in enumerate(parts):
        if part.endswith(b".slice"):
            out[Field.SLICE] = part
            continue
        if part.endswith(_UNIT_SUFFIXES):
            out[Field.UNIT] = part
            unit_index = i
            break
    if unit_index is not None:
        unit = parts[unit_index]
        if unit.startswith(b"session-") and unit.endswith(b".scope"):
            out[Field.SESSION] = unit[len(b"session-") : -len(b".scope")]
        owner = _number_between(unit, b"user@", b".service")
        if owner is not None:
            out[Field.OWNER_UID] = owner
            for part in parts[unit_index + 1 :]:
                if part.endswith(_UNIT_SUFFIXES):
                    out[Field.USER_UNIT] = part
                    break
    for part in parts:
        owner = _number_between(part, b"user-", b".slice")
        if owner is not None and Field.OWNER_UID not in out:
            out[Field.OWNER_UID] = owner
    return out


def _printable(raw: bytes | None) -> str | None:
    return escape_printable(raw) if raw is not None else None


def proc_fields(info: ProcInfo) -> Iterator[tuple[str, FieldValue]]:
    """The COREDUMP_* fields that come from /proc, each only when it was readable.

    The ones coredumpctl prints (COMM, THREAD_NAME, EXE, CMDLINE, CONTAINER_CMDLINE and the
    cgroup's) are escaped (SECURITY.md 14): COMM and THREAD_NAME as systemd escapes comm, the
    others as printable UTF-8; schema.unescape gives the bytes back. The rest stays byte-exact.
    """
    simple: list[tuple[str, bytes | str | None]] = [
        (Field.COMM, escape_comm(info.comm) if info.comm is not None else None),
        (
            Field.THREAD_NAME,
            escape_comm(info.thread_name) if info.thread_name is not None else None,
        ),
        (Field.EXE, _printable(info.exe)),
        (
            Field.CMDLINE,
            _printable(cmdline_text(info.cmdline)) if info.cmdline is not None else None,
        ),
        (Field.CWD, info.cwd),
        (Field.ROOT, info.root),
        (Field.ENVIRON, environ_text(info.environ) if info.environ else None),
        (Field.OPEN_FDS, info.open_fds),
        (Field.PROC_STATUS, info.status),
        (Field.PROC_MAPS, info.maps),
        (Field.PROC_LIMITS, info.limits),
        (Field.PROC_CGROUP, info.cgroup),
        (Field.PROC_MOUNTINFO, info.mountinfo),
        (Field.PROC_AUXV, info.auxv),
        (
            Field.CONTAINER_CMDLINE,
            _printable(cmdline_text(info.container_cmdline)) if info.container_cmdline else None,
        ),
    ]
    for name, value in simple:
        if value is not None:
            yield name, value
    path = cgroup_path(info.cgroup) if info.cgroup else None
    if path is not None:
        yield Field.CGROUP, escape_printable(path)
        for name, value in cgroup_units(path).items():
            yield name, escape_printable(value)


def message(args: KernelArgs, comm: bytes, stacktrace: str) -> str:
    """MESSAGE in systemd's words, comm escaped as in COREDUMP_COMM, and the stack trace's
    names (from the crashed program's files) escaped but its lines kept: printable UTF-8, so
    journalctl shows it as text and no terminal sees a control sequence (SECURITY.md 14)."""
    head = f"Process {args.pid} ({escape_comm(comm)}) of user {args.uid} dumped core."
    trace = stacktrace.rstrip("\n")
    if not trace:
        return head
    return head + "\n\n" + escape_printable(trace.encode("utf-8", "surrogateescape"), keep="\n")


def bounded(
    fields: list[tuple[str, FieldValue | Blob]],
    field_max: int = FIELD_MAX,
    total_max: int = FIELDS_MAX,
) -> list[tuple[str, FieldValue | Blob]]:
    """The entry cut to journald-safe sizes: no value over `field_max` bytes, all values but
    the core (a Blob, bounded while it streamed) at most `total_max` together, the largest cut
    first. Cut fields are named in DRKONQI_LITE_TRUNCATED_FIELDS; nothing is dropped."""
    texts: list[bytes | None] = [
        v.encode("utf-8", "surrogateescape")
        if isinstance(v, str)
        else v
        if isinstance(v, bytes)
        else None
        for _, v in fields
    ]
    cut: list[str] = []
    limit = field_max
    while True:
        for i, text in enumerate(texts):
            if text is not None and len(text) > limit:
                texts[i] = text[:limit]
                if fields[i][0] not in cut:
                    cut.append(fields[i][0])
        if sum(len(t) for t in texts if t is not None) <= total_max or limit <= 4096:
            break
        limit //= 2  # rare (many huge fields): halve the largest until the whole fits
    if not cut:
        return list(fields)
    out: list[tuple[str, FieldValue | Blob]] = [
        (name, value if text is None else text)
        for (name, value), text in zip(fields, texts, strict=True)
    ]
    return [*out, (Field.TRUNCATED_FIELDS, " ".join(cut))]
