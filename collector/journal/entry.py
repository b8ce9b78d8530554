"""The journal entry of a crash, from what the collector learned (DESIGN.md §2.1).

The worker gathers small frozen fact records (Seen: /proc, Core: what became of the core,
Trace: the stack trace) and build() turns them into the entry's fields: the one place an entry
is assembled, for a crash the worker handled and for one whose worker died (supervisor.py).
Pure functions over bytes: no I/O, so the exact field formats are unit-testable.
"""

from __future__ import annotations

from drkonqi_lite_collector import __version__
from drkonqi_lite_collector.journal.native import FIELD_MAX, FIELDS_MAX, Blob, FieldValue
from drkonqi_lite_collector.journal.schema import (
    MESSAGE_ID,
    PRIORITY,
    SYSLOG_IDENTIFIER,
    Field,
    escape_comm,
    escape_printable,
)

TYPE_CHECKING = False  # no typing/collections imports at run time: see worker/handler.py
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Self

    from drkonqi_lite_collector.journal.proc import ProcInfo
    from drkonqi_lite_collector.stage.argv import KernelArgs

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


class _Facts:
    """A fact record: its fields are set once, by the constructor (no dataclasses: they cost
    milliseconds at start-up, see worker/handler.py), and read-only afterwards."""

    __slots__ = ()

    def __init__(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is a frozen fact record")

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed (the record itself stays as it was)."""
        names: tuple[str, ...] = getattr(type(self), "__slots__")  # noqa: B009 - the subclass's
        values = {name: getattr(self, name) for name in names}
        new = object.__new__(type(self))
        _Facts.__init__(new, **{**values, **changes})
        return new


class Seen(_Facts):
    """What /proc said of the crashed process, and whether it was proven to be that process's
    (through the pidfd). An unproven `info` is never used: it may be another process's."""

    __slots__ = ("info", "pidfd_id", "verified")
    info: ProcInfo
    verified: bool
    pidfd_id: int | None

    def __init__(self, info: ProcInfo, verified: bool, pidfd_id: int | None = None) -> None:
        super().__init__(info=info, verified=verified, pidfd_id=pidfd_id)

    @property
    def comm(self) -> bytes:
        return self.info.comm or b"n/a"


class Core(_Facts):
    """What became of the core: its size as the kernel wrote it, where it is kept (or why not),
    the signal code from its notes, and why the user may not read it (None: they may)."""

    __slots__ = ("code", "filename", "missing", "restricted", "size", "truncated")
    size: int | None
    truncated: bool
    filename: str | None
    missing: str | None
    code: int | None
    restricted: str | None

    def __init__(
        self,
        *,
        size: int | None,
        missing: str | None,
        truncated: bool = False,
        filename: str | None = None,
        code: int | None = None,
        restricted: str | None = None,
    ) -> None:
        super().__init__(
            size=size,
            missing=missing,
            truncated=truncated,
            filename=filename,
            code=code,
            restricted=restricted,
        )


class Trace(_Facts):
    """What the stack-trace engine found (unwinder/stacktrace.py): the status ("ok",
    "partial: …", "none: …"), the text in systemd's format, crashing thread first ("" when
    none), the modules ("PATH BUILDID" per line, "-" without build id), the package like
    systemd's COREDUMP_PACKAGE_*, the Python stack of a CPython process
    (schema.Field.PYTHON_STACK JSON, or None). `for_user`: the same without the function
    names, build-ids and package notes of the modules the crashing user cannot read
    (SECURITY.md 13), or None when there are none."""

    __slots__ = (
        "for_user",
        "modules",
        "package_json",
        "package_name",
        "package_version",
        "python_stack",
        "status",
        "text",
    )
    status: str
    text: str
    modules: str
    package_name: str | None
    package_version: str | None
    package_json: str | None
    python_stack: str | None
    for_user: Trace | None

    def __init__(
        self,
        status: str,
        text: str = "",
        modules: str = "",
        package_name: str | None = None,
        package_version: str | None = None,
        package_json: str | None = None,
        python_stack: str | None = None,
        for_user: Trace | None = None,
    ) -> None:
        super().__init__(
            status=status,
            text=text,
            modules=modules,
            package_name=package_name,
            package_version=package_version,
            package_json=package_json,
            python_stack=python_stack,
            for_user=for_user,
        )


def build(
    args: KernelArgs,
    seen: Seen | None,
    core: Core,
    trace: Trace | None,
    crash_count: int | None = None,
    note: str = "",
) -> Fields:
    """The crash's journal entry from the facts the collector gathered; `seen` None: nothing
    was learned from /proc (the worker died); `trace` None: no stack trace was attempted and
    the entry says nothing of it; `note` a last paragraph for MESSAGE."""
    fields = kernel_fields(args)
    if seen is not None:
        if seen.pidfd_id is not None:
            # systemd 258's meaning: /proc was read through the kernel's own pidfd (%F).
            fields += [(Field.BY_PIDFD, 1), (Field.PIDFDID, seen.pidfd_id)]
        fields += proc_fields(seen.info)
        fields.append((Field.IDENTITY, "verified" if seen.verified else "unverified"))
    fields += _core_fields(core, crash_count)
    fields += trace_fields(trace) if trace is not None else []
    text = message(args, seen.comm if seen is not None else b"n/a", trace.text if trace else "")
    if note:
        text += "\n\n" + escape_printable(note.encode())
    fields += [(Field.VERSION, __version__), (Field.MESSAGE, text)]
    return fields


def trace_fields(trace: Trace) -> Fields:
    """STACKTRACE, MODULES and the package fields of a stack trace (not MESSAGE)."""
    fields: Fields = [(Field.STACKTRACE, trace.status)]
    if trace.modules:
        fields.append((Field.MODULES, trace.modules))
    if trace.python_stack:
        fields.append((Field.PYTHON_STACK, trace.python_stack))
    for name, value in (
        (Field.PACKAGE_NAME, trace.package_name),
        (Field.PACKAGE_VERSION, trace.package_version),
        (Field.PACKAGE_JSON, trace.package_json),
    ):
        if value:
            fields.append((name, value))
    return fields


def _core_fields(core: Core, crash_count: int | None) -> Fields:
    fields: Fields = [] if crash_count is None else [(Field.CRASH_COUNT, crash_count)]
    if core.filename is not None:
        fields.append((Field.FILENAME, core.filename))
    if core.size is not None:
        fields.append((Field.CORE_SIZE, core.size))
    if core.code is not None:
        fields.append((Field.CODE, core.code))
    if core.truncated:
        fields.append((Field.TRUNCATED, 1))
    if core.missing is not None:
        fields.append((Field.CORE_MISSING, core.missing))
    if core.restricted is not None:
        fields += [(Field.RESTRICTED, 1), (Field.RESTRICTED_REASON, core.restricted)]
    return fields


def dropped(why: str) -> Fields:
    """Not a crash entry: the collector's own error that a crash was lost before it knew which
    (malformed arguments from the kernel), for the system journal."""
    return [
        (Field.PRIORITY, 3),
        (Field.SYSLOG_IDENTIFIER, SYSLOG_IDENTIFIER),
        (Field.MESSAGE, f"{SYSLOG_IDENTIFIER}: a crash was dropped: {why}"),
    ]
