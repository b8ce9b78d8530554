"""The stack-trace engine on real crashes, side by side with elfutils' eu-stack.

Two ways to a real core: `gcore` of a live, stopped target (no global state touched), and a
real kernel crash through a core_pattern pipe to tests/fixtures/tap_handler.py (holding the
core_pattern lock).  Either way the core is fed to a CoreTap in chunks, exactly as the collector
does, with open_module_files on the target's /proc/PID while it still exists.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal.entry import Trace
from drkonqi_lite_collector.unwinder.stacktrace import (
    CoreTap,
    analyze,
    open_module_files,
    prepare,
)
from tests.conftest import CORE_PATTERN, CORE_PIPE_LIMIT, need, which

# /proc/PID/map_files needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE); chroot needs root.
pytestmark = pytest.mark.usefixtures("root")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FRAME = re.compile(r"^#(\d+) +0x([0-9a-f]{16}) (\S+) \((.+) \+ 0x([0-9a-f]+)\)$")
CHUNK = 1 << 16


@pytest.fixture(scope="session")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """crasher.c built -g -O0 (with frame pointers) and -O2 without frame pointers, stripped."""
    gcc = which("gcc")
    out = tmp_path_factory.mktemp("bin")
    src = str(FIXTURES / "crasher.c")
    subprocess.run([gcc, "-g", "-O0", "-pthread", "-o", out / "crash_g", src], check=True)
    subprocess.run(
        [
            gcc,
            "-O2",
            "-fomit-frame-pointer",
            "-pthread",
            "-o",
            out / "crash_o2",
            src,
            "-Xlinker",
            '--package-metadata={"type":"deb","name":"crasher",'
            '"version":"1.2-3","architecture":"amd64"}',
        ],
        check=True,
    )
    subprocess.run(["strip", out / "crash_o2"], check=True)
    return {"g": out / "crash_g", "o2": out / "crash_o2"}


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start a target and wait until it prints its first line (it is then fully set up)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc


def gcore(proc: subprocess.Popen[bytes], tmp: Path) -> Path:
    """A core of the live target, made by gdb's gcore (the target keeps running)."""
    subprocess.run([which("gcore"), "-o", str(tmp / "core"), str(proc.pid)], check=True,
                   capture_output=True)  # fmt: skip
    return tmp / f"core.{proc.pid}"


def gcore_trace(
    proc: subprocess.Popen[bytes], tmp: Path, limit: int | None = None
) -> tuple[Trace, Path]:
    """gcore the live target, stop it, and run the engine as the collector would."""
    core = gcore(proc, tmp)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        proc_fd = os.open(f"/proc/{proc.pid}", os.O_RDONLY | os.O_DIRECTORY)
        try:
            with open_module_files(proc_fd) as modules, CoreTap() as tap, core.open("rb") as f:
                data = f.read(limit) if limit is not None else f.read()
                for i in range(0, len(data), CHUNK):
                    tap.feed(data[i : i + CHUNK])
                return analyze(tap, modules), core
        finally:
            os.close(proc_fd)
    finally:
        proc.kill()
        proc.wait()


def threads(text: str) -> dict[int, list[tuple[int, str, str]]]:
    """{tid: [(pc, function, module), ...]} parsed back from the systemd-format text."""
    out: dict[int, list[tuple[int, str, str]]] = {}
    tid = -1
    for line in text.splitlines():
        if line.startswith("Stack trace of thread "):
            tid = int(line.removeprefix("Stack trace of thread ").rstrip(":"))
            out[tid] = []
        elif line:
            m = FRAME.match(line)
            assert m, f"not systemd's frame format: {line!r}"
            out[tid].append((int(m[2], 16), m[3], m[4]))
    return out


def eu_stack(core: Path, exe: Path) -> dict[int, list[tuple[int, str | None]]]:
    """eu-stack's view of the same core: {tid: [(pc, function or None)]}."""
    out = subprocess.run(
        [which("eu-stack"), "--core", str(core), "-e", str(exe)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    res: dict[int, list[tuple[int, str | None]]] = {}
    tid = -1
    for line in out.splitlines():
        if line.startswith("TID "):
            tid = int(line[4:].rstrip(":"))
            res[tid] = []
        elif m := re.match(r"^#\d+\s+0x([0-9a-f]+)\s*(\S*)", line):
            res[tid].append((int(m[1], 16), m[2] or None))
    return res


def assert_as_good_as_eu_stack(result: Trace, core: Path, exe: Path) -> None:
    """Same threads, and a name for every frame eu-stack names."""
    ours = threads(result.text)
    theirs = eu_stack(core, exe)
    assert set(ours) == set(theirs)
    for tid, frames in theirs.items():
        names = {pc: fn for pc, fn, _ in ours[tid]}
        for pc, fn in frames:
            if fn is not None:
                assert names.get(pc, "n/a") != "n/a", f"thread {tid}: no name at {pc:#x} ({fn})"


def worker_chains(result: Trace) -> list[list[str]]:
    return [[fn for _, fn, _ in frames] for frames in threads(result.text).values()][1:]


def test_eight_threads_with_debug_info(binaries: dict[str, Path], tmp_path: Path) -> None:
    result, core = gcore_trace(start([str(binaries["g"])]), tmp_path)
    assert result.status == "ok"
    ts = threads(result.text)
    assert len(ts) == 9
    main = [fn for _, fn, _ in next(iter(ts.values()))]
    assert "main" in main
    for chain in worker_chains(result):
        assert chain[-5:] == [
            "worker_leaf",
            "worker_middle",
            "worker",
            "start_thread",
            "__clone3",
        ] or chain[-4:-1] == ["worker_middle", "worker", "start_thread"]
        assert "park" in chain
    assert f"{binaries['g']} " in result.modules
    # Module labels as systemd prints them: a library by its soname, the program by its path.
    labels = {mod for frames in ts.values() for _, _, mod in frames}
    assert labels == {"libc.so.6", str(binaries["g"])}
    assert_as_good_as_eu_stack(result, core, binaries["g"])


def test_eight_threads_optimized_and_stripped(binaries: dict[str, Path], tmp_path: Path) -> None:
    result, core = gcore_trace(start([str(binaries["o2"])]), tmp_path)
    assert result.status == "ok"
    assert len(threads(result.text)) == 9
    for chain in worker_chains(result):
        # CFI carries the unwind through -O2 code without frame pointers or symbols...
        assert chain[-2:] == ["start_thread", "__clone3"]
        assert chain.count("n/a") >= 4
    # ... and a frame with no symbol still says where it is.
    assert re.search(rf"n/a \({re.escape(str(binaries['o2']))} \+ 0x[0-9a-f]+\)", result.text)
    assert result.package_name == "crasher"
    assert result.package_version == "1.2-3"
    assert result.package_json is not None
    meta = json.loads(result.package_json)[str(binaries["o2"])]
    assert meta["name"] == "crasher"
    assert len(meta["buildId"]) == 40
    assert_as_good_as_eu_stack(result, core, binaries["o2"])


def test_python_process(tmp_path: Path) -> None:
    proc = start([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(100)"])
    result, core = gcore_trace(proc, tmp_path)
    assert result.status == "ok"
    names = [fn for _, fn, _ in next(iter(threads(result.text).values()))]
    assert "main" in names or "Py_RunMain" in names or "_start" in names
    assert sum(fn != "n/a" for fn in names) >= len(names) // 2
    assert_as_good_as_eu_stack(result, core, Path(os.path.realpath(sys.executable)))


@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.5, 0.9])
def test_truncated_gcore_core(binaries: dict[str, Path], tmp_path: Path, fraction: float) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    gcore_trace(start([str(binaries["o2"])]), probe)
    full = next(probe.glob("core.*")).stat().st_size
    t0 = time.monotonic()
    result, _ = gcore_trace(start([str(binaries["o2"])]), tmp_path, limit=int(full * fraction))
    assert time.monotonic() - t0 < 10
    # gcore writes the notes last: a cut core has no threads at all.
    assert result.status.startswith(("none:", "partial:"))


def test_garbage_core_is_none_not_a_crash(tmp_path: Path) -> None:
    with CoreTap() as tap:
        tap.feed(os.urandom(100000))
        result = analyze(tap, open_module_files(os.open("/proc/self", os.O_RDONLY)))
    assert result.status.startswith("none:")
    assert result.text == ""
    hdr = bytearray(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x04\x00\x3e\x00" + bytes(44))
    hdr[32:40] = (64).to_bytes(8, "little")
    hdr[54:58] = (56).to_bytes(2, "little") + (40000).to_bytes(2, "little")
    with CoreTap() as tap:
        tap.feed(bytes(hdr) + os.urandom(40000 * 56))
        result = analyze(tap, open_module_files(os.open("/proc/self", os.O_RDONLY)))
    assert result.status.startswith(("none:", "partial:"))


# --- real kernel crashes through core_pattern --------------------------------------------------


@pytest.fixture
def kernel_crash(core_pattern: None) -> Iterator[object]:
    """crash(argv, limit=None) -> (result dict, core path): a real crash, handled by tap_handler."""
    outdirs: list[str] = []

    def crash(argv: list[str], limit: int | None = None) -> tuple[dict[str, object], Path]:
        out = tempfile.mkdtemp(prefix="dkl-")
        outdirs.append(out)
        pattern = f"|{sys.executable} {FIXTURES / 'tap_handler.py'} %P {out}"
        if limit is not None:
            pattern += f" {limit}"
        need(len(pattern) < 128, "core_pattern too long for this checkout's paths")
        CORE_PATTERN.write_text(pattern)
        CORE_PIPE_LIMIT.write_text("16")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        proc.wait(timeout=30)
        assert proc.returncode < 0, "the target did not crash"
        result = Path(out) / "result.json"
        for _ in range(300):
            if result.exists():
                return json.loads(result.read_text()), Path(out) / "core"
            time.sleep(0.05)
        pytest.fail("the handler wrote no result")

    yield crash
    for out in outdirs:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.crash
@pytest.mark.parametrize("build", ["g", "o2"])
def test_kernel_crash_eight_threads(
    kernel_crash: object, binaries: dict[str, Path], build: str
) -> None:
    doc, core = kernel_crash([str(binaries[build]), "segv"])  # type: ignore[operator]
    result = Trace(**{k: doc[k] for k in Trace.__slots__})
    assert result.status == "ok", result.status
    ts = threads(result.text)
    assert len(ts) == 9
    first = [fn for _, fn, _ in next(iter(ts.values()))]
    if build == "g":
        assert first[:2] == ["crash_main", "main"]
    assert_as_good_as_eu_stack(result, core, binaries[build])


@pytest.mark.crash
def test_kernel_crash_in_signal_handler(kernel_crash: object, binaries: dict[str, Path]) -> None:
    doc, core = kernel_crash([str(binaries["g"]), "handler"])  # type: ignore[operator]
    result = Trace(**{k: doc[k] for k in Trace.__slots__})
    first = [fn for _, fn, _ in next(iter(threads(result.text).values()))]
    # Through the signal frame on the alternate stack, back into the interrupted code.
    assert first[:2] == ["crash_main", "crash_in_handler"]
    assert "main" in first[2:]
    assert_as_good_as_eu_stack(result, core, binaries["g"])


@pytest.mark.crash
@pytest.mark.parametrize("build", ["g", "o2"])
def test_kernel_crash_in_signal_handler_of_a_worker_thread(
    kernel_crash: object, binaries: dict[str, Path], build: str
) -> None:
    """The handler runs on the worker's own alternate stack (heap); past the signal frame the
    interrupted frames are on the worker's real stack, where no SP in the notes points."""
    doc, core = kernel_crash([str(binaries[build]), "thread-handler"])  # type: ignore[operator]
    result = Trace(**{k: doc[k] for k in Trace.__slots__})
    ts = threads(result.text)
    assert len(ts) == 9
    first = [fn for _, fn, _ in next(iter(ts.values()))]
    if build == "g":
        assert first[:2] == ["crash_main", "crash_in_handler"]
        assert first[-5:] == ["worker_leaf", "worker_middle", "worker", "start_thread", "__clone3"]
    assert "__restore_rt" in first
    assert first[-2:] == ["start_thread", "__clone3"], first
    assert_as_good_as_eu_stack(result, core, binaries[build])


@pytest.mark.crash
def test_kernel_crash_smashed_stack(kernel_crash: object, binaries: dict[str, Path]) -> None:
    doc, _ = kernel_crash([str(binaries["o2"]), "smash"])  # type: ignore[operator]
    result = Trace(**{k: doc[k] for k in Trace.__slots__})
    ts = threads(result.text)
    first = next(iter(ts.values()))
    # A jump to a non-canonical address faults on the jump itself: the PC is in smash(), the
    # SP is garbage, so the unwind must stop right there (no frames made up from garbage).
    assert first[0][2] == str(binaries["o2"])
    assert len(first) <= 2
    # The other threads are intact.
    assert len(ts) == 9
    assert all(c[-1] == "__clone3" for c in worker_chains(result))


@pytest.mark.crash
def test_kernel_core_truncated_at_size_limit(
    kernel_crash: object, binaries: dict[str, Path]
) -> None:
    doc, _ = kernel_crash([str(binaries["g"]), "segv"], limit=256 * 1024)  # type: ignore[operator]
    status = str(doc["status"])
    assert status.startswith(("partial:", "none:"))
    assert "truncated" in status or status.startswith("none:")
    assert float(str(doc["analyze_ms"])) < 5000


@pytest.mark.crash
def test_kernel_crash_elf_replaced_after_start(
    kernel_crash: object, binaries: dict[str, Path], tmp_path: Path
) -> None:
    prog = tmp_path / "prog"
    shutil.copy(binaries["g"], prog)
    # The target replaces its own file on disk before crashing, as a package upgrade would
    # (a new inode renamed over the path): gdb-style cores would carry the old text, kernel
    # cores do not, so only a real kernel crash tests this.
    other = tmp_path / "other"
    shutil.copy(binaries["o2"], other)
    script = f"sleep 0.3; mv {other} {prog}"
    subprocess.Popen(["sh", "-c", script])
    doc, _ = kernel_crash([str(prog), "segv-late"])  # type: ignore[operator]
    result = Trace(**{k: doc[k] for k in Trace.__slots__})
    assert result.status == "ok", result.status
    assert f"{prog} (deleted) " in result.modules
    # The names come from the inode that was mapped (-g), not the stripped file now on disk.
    chains = worker_chains(result)
    assert chains
    assert all("worker_leaf" in c and "park" in c for c in chains)
    assert next(iter(threads(result.text).values()))[0][1] == "crash_main"


def test_four_gib_sparse_core_stays_small(binaries: dict[str, Path], tmp_path: Path) -> None:
    """A 4 GiB core (here: a real core followed by zeros, as a pipe delivers untouched memory)
    streams through the tap without growing it, and still unwinds."""
    proc = start([str(binaries["g"])])
    core = gcore(proc, tmp_path)
    os.kill(proc.pid, signal.SIGSTOP)
    zeros = bytes(1 << 20)
    try:
        proc_fd = os.open(f"/proc/{proc.pid}", os.O_RDONLY | os.O_DIRECTORY)
        with open_module_files(proc_fd) as modules, CoreTap() as tap:
            tap.feed(core.read_bytes())
            for _ in range(4096):
                tap.feed(zeros)
            assert tap.size > 4 << 30
            assert tap.kept < 64 << 20
            result = analyze(tap, modules)
        os.close(proc_fd)
    finally:
        proc.kill()
        proc.wait()
    assert len(threads(result.text)) == 9
    assert result.status == "ok"


def test_timeout_kills_the_unwinder_and_keeps_what_it_had(
    binaries: dict[str, Path], tmp_path: Path
) -> None:
    proc = start([str(binaries["g"])])
    core = gcore(proc, tmp_path)
    try:
        proc_fd = os.open(f"/proc/{proc.pid}", os.O_RDONLY | os.O_DIRECTORY)
        with open_module_files(proc_fd) as modules, CoreTap() as tap:
            tap.feed(core.read_bytes())
            t0 = time.monotonic()
            result = analyze(tap, modules, timeout=0.001)
            assert time.monotonic() - t0 < 1
        os.close(proc_fd)
    finally:
        proc.kill()
        proc.wait()
    assert result.status in ("none: timeout", "partial: timeout")


def test_prepared_unwinder(binaries: dict[str, Path], tmp_path: Path) -> None:
    """prepare() before the core streams gives the same trace; an unused one leaves nothing."""
    proc = start([str(binaries["o2"])])
    core = gcore(proc, tmp_path)
    try:
        proc_fd = os.open(f"/proc/{proc.pid}", os.O_RDONLY | os.O_DIRECTORY)
        with open_module_files(proc_fd) as modules:
            with CoreTap() as tap:
                unused = prepare(tap, modules)
                assert unused is not None
                child = unused.process.pid
                unused.close()
                with pytest.raises(ChildProcessError):
                    os.waitpid(child, os.WNOHANG)
            with CoreTap() as tap:
                prepared = prepare(tap, modules)
                data = core.read_bytes()
                for i in range(0, len(data), CHUNK):
                    tap.feed(data[i : i + CHUNK])
                result = analyze(tap, modules, prepared=prepared)
        os.close(proc_fd)
    finally:
        proc.kill()
        proc.wait()
    assert result.status == "ok"
    assert len(threads(result.text)) == 9
    assert result.package_name == "crasher"


def test_module_files_are_the_mapped_elf_objects_only(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"not an ELF file" * 1000)
    with (
        data.open("rb") as f,
        mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as _m,
        Path("/dev/zero").open("rb") as z,
        mmap.mmap(z.fileno(), 4096, prot=mmap.PROT_READ) as _z,
    ):
        proc_fd = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
        modules = open_module_files(proc_fd)
        os.close(proc_fd)
    with modules:
        paths = set(modules.paths.values())
        assert any(p.endswith("/libc.so.6") for p in paths)
        assert os.path.realpath(sys.executable) in paths
        assert str(data) not in paths
        assert "/dev/zero" not in paths
        assert modules.same_root
        fds = list(modules.by_start.values())
        assert all(os.pread(fd, 4, 0) == b"\x7fELF" for fd in fds)
    for fd in fds:
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)


@pytest.mark.crash
def test_kernel_crash_paths_in_the_core_are_never_opened(
    kernel_crash: object, binaries: dict[str, Path], tmp_path: Path
) -> None:
    """SECURITY.md §4: the core names its files by path as the crashed process saw them (its
    mount namespace); libdwfl would open() those paths, blocking, in our root.  Here the path
    is a FIFO in ours: it must neither hang the trace nor feed it.
    """
    which("unshare")
    # World-readable on purpose: running as nobody alone would not keep the unwinder away from
    # the FIFO, only the chroot does (this test hangs into the timeout without it).
    base = Path(tempfile.mkdtemp(prefix="dkl-ns-"))
    base.chmod(0o755)
    real, planted = base / "real", base / "planted"
    real.mkdir(mode=0o755)
    planted.mkdir(mode=0o755)
    shutil.copy(binaries["g"], real / "prog")
    os.mkfifo(planted / "prog", 0o666)
    (planted / "prog").chmod(0o666)
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f"mount --bind {real} {planted} && exec {planted}/prog segv",
    ]
    t0 = time.monotonic()
    try:
        doc, _ = kernel_crash(argv)  # type: ignore[operator]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert time.monotonic() - t0 < 4
    result = Trace(**{k: doc[k] for k in Trace.__slots__})
    assert result.status == "ok", result.status
    assert f"{planted}/prog " in result.modules
    assert next(iter(threads(result.text).values()))[0][1] == "crash_main"


def test_more_threads_than_a_trace_shows(binaries: dict[str, Path], tmp_path: Path) -> None:
    result, _ = gcore_trace(start([str(binaries["g"]), "many"]), tmp_path)
    assert len(threads(result.text)) == 64  # systemd-coredump's THREADS_MAX too
    assert result.status == "partial: more than 64 threads"
