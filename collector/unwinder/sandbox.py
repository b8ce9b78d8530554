"""The unwinder's process: forked from the collector, stripped of every privilege, then run.

The child (SECURITY.md §4 and §7): closes every inherited descriptor but the sparse core
image, the module files and its two pipes (stdin is the kernel's core pipe in the collector);
is not dumpable and has no core size (its own crash never becomes a core for us); gets CPU,
heap, address-space and file-size limits; chroots into the debug-info tree (or an empty
directory) and becomes nobody with no groups.  It may be started early: it then loads libdw
while the collector is still streaming the core, and waits for a "go" carrying the core's
final size.  It reports one JSON line per finding on its result pipe.
"""

from __future__ import annotations

import os
import resource

TYPE_CHECKING = False  # the parent half stays lean: see handler.py; the child imports freely
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
    from typing import Any

    from drkonqi_lite_collector.unwinder.module import ModuleFiles
else:
    import _signal

NOBODY = 65534
#: Heap of the child (RLIMIT_DATA counts private writable memory, Linux >= 4.7): what libdw
#: may allocate.  Read-only maps of the module files and of the sparse core image (as big as
#: the core, but holes cost nothing) count only against the address-space backstop.
CHILD_DATA_LIMIT = 512 * 1024 * 1024
CHILD_AS_SLACK = 2 * 1024 * 1024 * 1024
DEBUG_ROOT = "/usr/lib/debug"


class UnwinderProcess:
    """A forked unwinder waiting for (or running after) its go."""

    def __init__(self, pid: int, results: int, go: int, empty_dir: str | None) -> None:
        self.pid = pid
        #: Read end of the result pipe (JSON lines).
        self.results = results
        self._go = go
        self._empty_dir = empty_dir
        self._reaped: int | None = None

    def start(self, core_size: int) -> None:
        """Let the child unwind the image, now complete, of a core of `core_size` bytes."""
        if self._go >= 0:
            try:
                os.write(self._go, core_size.to_bytes(8, "little"))
            except OSError:
                pass
            os.close(self._go)
            self._go = -1

    def reap(self) -> int:
        """SIGKILL (if still running) and wait; returns the wait status."""
        if self._reaped is None:
            try:
                os.kill(self.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reaped = os.waitpid(self.pid, 0)[1]
        return self._reaped

    def close(self) -> None:
        """Reap the child and release the pipes and the empty directory (idempotent)."""
        self.reap()
        if self._go >= 0:
            os.close(self._go)
            self._go = -1
        if self.results >= 0:
            os.close(self.results)
            self.results = -1
        if self._empty_dir is not None:
            _remove_empty_dir(self._empty_dir)
            self._empty_dir = None


def spawn(core_fd: int, modules: ModuleFiles, *, timeout: float) -> UnwinderProcess:
    """Fork the unwinder; it prepares itself and waits for UnwinderProcess.start()."""
    # The chroot keeps debug files findable by build-id while every path the core names (libdwfl
    # opens NT_FILE and link-map names itself, blocking, before asking find_elf) fails to open.
    empty = None if os.path.isdir(DEBUG_ROOT) else _make_empty_dir()
    jail = DEBUG_ROOT if empty is None else empty
    results_r, results_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        for fd in (results_r, results_w, go_r, go_w):
            os.close(fd)
        if empty is not None:
            _remove_empty_dir(empty)
        raise
    if pid == 0:  # pragma: no cover -- the child, exercised by the integration tests
        os.close(results_r)
        os.close(go_w)
        _child(core_fd, modules, results_w, go_r, jail, timeout=timeout)
    os.close(results_w)
    os.close(go_r)
    return UnwinderProcess(pid, results_r, go_w, empty)


def _make_empty_dir() -> str:
    import tempfile  # noqa: PLC0415 - rare: only without /usr/lib/debug

    return tempfile.mkdtemp(prefix="drkonqi-lite-unwind-")


def _remove_empty_dir(path: str) -> None:
    try:
        os.rmdir(path)  # the child never writes in it (RLIMIT_FSIZE 0, nobody)
    except OSError:
        pass


def _child(
    core_fd: int, modules: ModuleFiles, w: int, go: int, jail: str, *, timeout: float
) -> None:
    """The sandboxed unwinder process. Never returns."""
    code = 0
    try:
        # Only the child loads ctypes and libdw.
        from drkonqi_lite_collector.unwinder.unwind import Unwinder  # noqa: PLC0415

        _close_other_fds({core_fd, w, go, *modules.by_start.values()})
        _not_dumpable()
        emit = _emitter(w)
        os.environ.pop("DEBUGINFOD_URLS", None)  # never ask the network for debug info
        unwinder = Unwinder(
            core_fd,
            modules.by_start,
            emit=emit,
            debuginfo_path=b"/" if jail == DEBUG_ROOT else None,
        )
        size = _read_go(go)
        if size is not None:
            _limits(timeout, size)
            _drop_privileges(jail)
            unwinder.run()
            emit({"done": True})
    except BaseException as e:  # noqa: BLE001 -- report, then leave without cleanup handlers
        try:
            os.write(w, encode_json({"fatal": f"{type(e).__name__}: {e}"}).encode() + b"\n")
        except OSError:
            pass
        code = 1
    os._exit(code)


def _read_go(go: int) -> int | None:
    """Block until the parent says go: the core's size, or None when it gave up (EOF)."""
    data = b""
    while len(data) < 8:
        more = os.read(go, 8 - len(data))
        if not more:
            return None
        data += more
    return int.from_bytes(data, "little")


def _json_string(text: str) -> str:
    out = ['"']
    for c in text:
        o = ord(c)
        if c in '"\\' or o < 0x20 or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def encode_json(value: object) -> str:
    """JSON for the child's reports (dicts, lists, strings, ints, booleans, None), one line.

    Not the json module: importing it (and re with it) would cost the child ~4 ms on the
    critical path of every small crash. Every character that could end a string or a line is
    escaped, lone surrogates included; the parent decodes with decode_json.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{_json_string(str(k))}:{encode_json(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"cannot report a {type(value).__name__}")


class _Strict:
    """What the C scanner of the json package reads off json.JSONDecoder (CPython's _json)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN and Infinity: never written by encode_json


def decode_json(line: bytes) -> object:
    """One of the child's report lines, decoded. The json package would import re, enum and
    collections on the worker's critical path (~7 ms of a ~35 ms small crash); its C scanner
    alone parses the same grammar. ValueError for anything that is not one JSON value."""
    try:
        import _json  # noqa: PLC0415 - CPython's accelerator of the json package
    except ImportError:  # another interpreter: the json package itself
        import json  # noqa: PLC0415

        return json.loads(line)
    text = line.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        # typeshed types the context as the scanner class itself; any object with these
        # attributes is what _json.c reads.
        value, end = _json.make_scanner(_Strict())(text, 0)  # type: ignore[arg-type]
    except StopIteration as e:
        raise ValueError(f"not JSON at {e.value}") from None
    if end != len(text):
        raise ValueError(f"extra data at {end}")
    return value


def _emitter(w: int) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        view = memoryview(encode_json(event).encode("utf-8") + b"\n")
        while view:
            view = view[os.write(w, view) :]

    return emit


def _close_other_fds(keep: set[int]) -> None:
    """Close every inherited descriptor but `keep`; stdin/stdout/stderr become /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        if std not in keep:
            os.dup2(null, std)
    if null > 2 and null not in keep:
        os.close(null)
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _not_dumpable() -> None:
    import ctypes  # noqa: PLC0415

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limits(timeout: float, core_size: int) -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (CHILD_DATA_LIMIT, CHILD_DATA_LIMIT))
    space = core_size + CHILD_AS_SLACK
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
    cpu = int(timeout) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _drop_privileges(jail: str) -> None:
    """chroot into `jail`, then become nobody with no groups (only when running as root)."""
    if os.geteuid() != 0:
        return
    os.chroot(jail)
    os.chdir("/")
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
