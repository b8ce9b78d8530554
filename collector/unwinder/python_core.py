"""The Python stack of a native crash of a CPython program: py-spy (else pystack) on the core,
in a sandbox.

For a process whose executable or a mapped library is CPython's (python3.X, libpython3.X), the
tap keeps the whole core (frames, code objects and strings live on the heap, _PyRuntime in the
interpreter's data, pointers to them in read-only RELRO pages), and py-spy (`dump --core
--json`, benchmarks/PYTHON.md) reads the image; the parts the kernel did not dump (symbols, the
version) come from the interpreter's file, which py-spy opens by the path the core names — so
only for a process in the collector's own root (ModuleFiles.same_root), never a container's.

py-spy (or pystack) parses hostile memory, so it runs in a child that: has its own process group
(killed whole at the deadline), keeps only the image and its output pipes, has CPU,
address-space, file-size and process limits and no core, has no network (a new network
namespace where the collector may make one; the service unit already has PrivateNetwork=), and
runs as a uid no other process uses, so that nothing else can read the core through its /proc
entry (the reader opens the image as /proc/self/fd/3, which needs the process dumpable). The
output becomes the DRKONQI_LITE_PYTHON_STACK JSON (schema.Field.PYTHON_STACK), crashing thread
first.
"""

from __future__ import annotations

import os
import resource
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

#: Keep the whole core of a Python process in the tap up to this much (beyond it the entry
#: simply has no Python stack: the collector's memory stays bounded).
KEEP_MAX = 256 * 1024 * 1024
#: Bytes of py-spy output accepted (64 threads x 256 frames of long names fit).
OUTPUT_MAX = 8 * 1024 * 1024
#: py-spy maps the image and reads the interpreter's symbols: room beyond the image itself.
AS_SLACK = 1024 * 1024 * 1024
#: The sandbox's uid: base + a random offset, a uid no account or service uses.
SANDBOX_UID_BASE = 0x60000000
_CLONE_NEWNET = 0x40000000
MAX_THREADS = 64
MAX_FRAMES = 256
#: Where the reader finds the image (fd 3 of its own: see _child).
CORE_PATH = "/proc/self/fd/3"


def _python_name(name: str) -> bool:
    """python3, python3.11, libpython3.11.so.1.0 (not python3-config, not a script)."""
    name = name.removesuffix(" (deleted)")
    if name.startswith("libpython3"):
        return True
    rest = name.removeprefix("python3")
    return rest != name and (rest == "" or (rest[:1] == "." and rest[1:].rstrip("dm").isdigit()))


def is_python(exe: str | None, module_paths: Iterable[str]) -> bool:
    """Is this process a CPython interpreter (or a program embedding libpython)?"""
    names = [os.path.basename(exe or "")] + [os.path.basename(p) for p in module_paths]
    return any(_python_name(n) for n in names)


def _program(name: str) -> str | None:
    """`name` from this installation's own bin directory (root-owned), never from PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return path if st.st_uid == 0 and not st.st_mode & 0o022 else None


class Sandboxed:
    """One reader (py-spy or pystack) running confined on a complete core image."""

    def __init__(self, pid: int, out: int, err: int) -> None:
        self.pid = pid
        self._out = out
        self._err = err

    @classmethod
    def start(cls, argv: list[str], core_fd: int, core_size: int, timeout: float) -> Sandboxed:
        """Fork the confined child that execs `argv` (raises OSError when it cannot)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        er, ew = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        uid = SANDBOX_UID_BASE + int.from_bytes(os.urandom(3), "little")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only execs or exits
            try:
                _child(argv, core_fd, (w, ew), core_size, timeout, uid)
            finally:
                os._exit(127)
        os.close(w)
        os.close(ew)
        return cls(pid, r, er)

    def output(self, deadline: float) -> tuple[bytes | None, str]:
        """(stdout, "") once the reader exited, else (None, why); its first stderr line is the
        why when it printed nothing. The child's whole process group is killed and reaped."""
        import select  # noqa: PLC0415 - after the core has streamed
        import time  # noqa: PLC0415

        buf = bytearray()
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        why = ""
        while not why:
            left = deadline - time.monotonic()
            if left <= 0:
                why = "timeout"
            elif poller.poll(max(1, int(left * 1000))):
                data = os.read(self._out, 65536)
                buf += data
                why = "done" if not data else "too much output" if len(buf) > OUTPUT_MAX else ""
        try:  # what it complained about, for the log (written before it exited)
            complaint = os.read(self._err, 4096).decode("utf-8", "replace").split("\n")[0]
        except OSError:
            complaint = ""
        self.close()
        if why != "done":
            return None, why
        return (bytes(buf), "") if buf else (None, complaint or "no output")

    def close(self) -> None:
        """Kill the group (idempotent) and reap the child."""
        if self.pid > 0:
            try:
                os.killpg(self.pid, 9)
            except OSError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = -1
        for fd in (self._out, self._err):
            if fd >= 0:
                os.close(fd)
        self._out = self._err = -1


class PythonStack:
    """py-spy on the image (started early: it runs while libdw unwinds), and pystack when
    py-spy fails — py-spy guesses the version of a stripped interpreter by scanning its memory
    for a version string and now and then takes random bytes for one (benchmarks/PYTHON.md)."""

    def __init__(self, core_fd: int, core_size: int, exe: str, timeout: float) -> None:
        self._core = (core_fd, core_size, timeout)
        self._exe = exe
        self._spy: Sandboxed | None = None
        spy = _program("py-spy")
        if spy is not None:
            argv = [spy, "dump", "--core", CORE_PATH, "--json"]
            self._spy = Sandboxed.start(argv, *self._core)

    def result(self, deadline: float, crashing_tid: int | None) -> tuple[str | None, str]:
        """(the PYTHON_STACK JSON or None, what happened, for the log)."""
        import json  # noqa: PLC0415

        why = "py-spy is not installed"
        if self._spy is not None:
            out, why = self._spy.output(deadline)
            threads = from_pyspy(out, crashing_tid) if out is not None else []
            if threads:
                return json.dumps(threads, separators=(",", ":")), "ok (py-spy)"
            why = f"py-spy: {why or 'no Python threads'}"
        if _program("pystack") is None:
            return None, why
        argv = [sys.executable, "-I", "-m", "pystack", "core", "--no-color", CORE_PATH, self._exe]
        try:
            out, why2 = Sandboxed.start(argv, *self._core).output(deadline)
        except OSError as e:
            return None, f"{why}; pystack: {e}"
        threads = from_pystack(out, crashing_tid) if out is not None else []
        if threads:
            return json.dumps(threads, separators=(",", ":")), f"ok (pystack; {why})"
        return None, f"{why}; pystack: {why2 or 'no Python threads'}"

    def close(self) -> None:
        if self._spy is not None:
            self._spy.close()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _crashed_first(threads: list[dict[str, object]]) -> list[dict[str, object]]:
    threads.sort(key=lambda t: not t["crashed"])
    return threads


def from_pyspy(raw: bytes, crashing_tid: int | None) -> list[dict[str, object]]:
    """py-spy's JSON (frames innermost first) as ours (outermost first, the crashing thread
    first; when the native trace named no thread, the one holding the GIL)."""
    import json  # noqa: PLC0415

    try:
        threads = json.loads(raw)
    except ValueError:
        return []
    out: list[dict[str, object]] = []
    for t in threads[:MAX_THREADS] if isinstance(threads, list) else []:
        if not isinstance(t, dict) or not isinstance(t.get("frames"), list):
            continue
        tid = t.get("os_thread_id")
        tid = tid if isinstance(tid, int) and not isinstance(tid, bool) else -1
        crashed = tid == crashing_tid if crashing_tid is not None else t.get("owns_gil") is True
        frames = [
            {"function": _text(f.get("name")), "file": _text(f.get("filename")),
             "line": f["line"] if isinstance(f.get("line"), int) else -1}
            for f in t["frames"][:MAX_FRAMES] if isinstance(f, dict)
        ]  # fmt: skip
        out.append({"tid": tid, "name": _text(t.get("thread_name")), "crashed": crashed,
                    "frames": frames[::-1]})  # fmt: skip
    return _crashed_first(out)


_PYSTACK_THREAD = "Traceback for thread "
_PYSTACK_FRAME = '    (Python) File "'


def from_pystack(raw: bytes, crashing_tid: int | None) -> list[dict[str, object]]:
    """pystack's text (`Traceback for thread TID [...]`, then `    (Python) File "F", line N,
    in FUNC` outermost first) as ours. A name that itself contains `", line ` is cut at its
    last one: the program chose its own names, this only decides how they are split."""
    out: list[dict[str, object]] = []
    frames: list[dict[str, object]] = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line.startswith(_PYSTACK_THREAD) and len(out) < MAX_THREADS:
            word = line[len(_PYSTACK_THREAD) :].split(" ", 1)[0]
            tid = int(word) if word.isdigit() else -1
            crashed = tid == crashing_tid if crashing_tid is not None else "GIL" in line
            frames = []
            out.append({"tid": tid, "name": "", "crashed": crashed, "frames": frames})
        elif line.startswith(_PYSTACK_FRAME) and out and len(frames) < MAX_FRAMES:
            file, _sep, rest = line[len(_PYSTACK_FRAME) :].rpartition('", line ')
            number, _sep, function = rest.partition(", in ")
            frames.append({"function": function, "file": file,
                           "line": int(number) if number.isdigit() else -1})  # fmt: skip
    return _crashed_first([t for t in out if t["frames"]])


def _child(
    argv: list[str], core_fd: int, outs: tuple[int, int], core_size: int, timeout: float, uid: int
) -> None:
    """In the forked child: confine, then exec the reader on /proc/self/fd/3 (output on 1, 2)."""
    import ctypes  # noqa: PLC0415 - the child only
    import fcntl  # noqa: PLC0415

    from drkonqi_lite_collector.unwinder import sandbox  # noqa: PLC0415

    os.setsid()
    # Every source above 9 first, so that no dup2 below clobbers another's source.
    moves = [(fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 10), dst)
             for src, dst in ((core_fd, 3), (outs[0], 1), (outs[1], 2))]  # fmt: skip
    for src, dst in moves:
        os.dup2(src, dst)  # inheritable: py-spy gets exactly these
    sandbox._close_other_fds({1, 2, 3})
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare(_CLONE_NEWNET)  # no network; EPERM in the service, which has none anyway
    space = core_size + AS_SLACK
    for limit, value in ((resource.RLIMIT_AS, space), (resource.RLIMIT_CPU, int(timeout) + 1),
                         (resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NPROC, 16), (resource.RLIMIT_NOFILE, 64)):  # fmt: skip
        resource.setrlimit(limit, (value, value))
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # Changing ids made us non-dumpable; py-spy must open its own /proc/self/fd/3, and only
    # this uid (which nothing else runs as) may.
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, 1
    os.execv(argv[0], argv)  # noqa: S606 - an argv list of our own programs
