"""Driving the real collector the way the kernel does, and reading what it wrote.

Two ways in: `Harness.run` executes the collector with the kernel's argv and a core on stdin
(for crafted cores, bad input and identity games), and `crash` kills a real process while
core_pattern points at the collector (for the whole path). Entries are read back from the real
journald with systemd-python, as raw bytes.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from systemd import journal

from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import pattern
from drkonqi_lite_collector.journal.schema import MESSAGE_ID

COLLECTOR = Path(sys.executable).with_name("drkonqi-lite-collector")
Entry = Mapping[str, bytes]


class RawReader(journal.Reader):  # type: ignore[misc]
    """A journal reader that leaves every field as the bytes journald stored."""

    def _convert_field(self, key: str, value: bytes) -> bytes:
        return value


#: Entries written before this moment (µs since the epoch) belong to earlier tests: the
#: journal is persistent and PIDs get reused, so `COREDUMP_PID=` alone is ambiguous.
#: make_prefix() moves it to the start of each test.
_not_before_us = [0]


def entries(
    since: float | None = None, message_id: str = MESSAGE_ID, **match: str | int
) -> list[Entry]:
    """Crash entries matching `match` (field=value), oldest first, written since the test began
    (and since `since`, a time.time() value, when given); `message_id` picks native crashes
    (the default) or self-reported ones (schema.BACKTRACE_MESSAGE_ID)."""
    floor = _not_before_us[0] if since is None else max(_not_before_us[0], int(since * 1e6))
    reader = RawReader()
    try:
        reader.add_match(MESSAGE_ID=message_id)
        for key, value in match.items():
            reader.add_match(**{key: str(value)})
        reader.seek_realtime(floor / 1e6)
        # RawReader leaves __REALTIME_TIMESTAMP as systemd-python's int (microseconds).
        return [dict(e) for e in reader if int(e["__REALTIME_TIMESTAMP"]) >= floor]
    finally:
        reader.close()


def wait_entry(
    timeout: float = 15.0,
    since: float | None = None,
    message_id: str = MESSAGE_ID,
    **match: str | int,
) -> Entry:
    """The one entry matching `match` (see entries), waiting for journald to write it."""
    deadline = time.monotonic() + timeout
    while True:
        found = entries(since, message_id, **match)
        if found:
            assert len(found) == 1, f"{len(found)} entries for {match}: one crash, one entry"
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no crash entry for {match} within {timeout}s")
        time.sleep(0.05)


@dataclasses.dataclass
class Harness:
    prefix: Path

    @property
    def state(self) -> Path:
        return self.prefix / "var/lib/drkonqi-lite"

    @property
    def storage(self) -> Path:
        return self.state / "coredump"

    @property
    def spool(self) -> Path:
        return self.state / "spool"

    def configure(self, text: str) -> None:
        conf = self.prefix / "etc/drkonqi-lite/collector.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("[Coredump]\n" + text)

    def cores(self) -> list[Path]:
        return sorted(self.storage.glob("core.*")) if self.storage.exists() else []

    def install(self) -> str:
        """Point core_pattern at the collector (caller holds the `core_pattern` fixture)."""
        paths = config.Paths(str(self.prefix))
        pat = pattern.make_pattern(pattern.write_launcher(paths), paths.prefix)
        Path("/proc/sys/kernel/core_pipe_limit").write_text(f"{pattern.PIPE_LIMIT}\n")
        Path("/proc/sys/kernel/core_pattern").write_text(pat + "\n")
        return pat

    def argv(
        self,
        pid: int,
        uid: int,
        gid: int,
        sig: int = signal.SIGSEGV,
        *,
        dumpable: int = 1,
        timestamp: int | None = None,
        pidfd: int | None = None,
        hostname: str = "testhost",
    ) -> list[str]:
        ts = int(time.time()) if timestamp is None else timestamp
        args = [
            str(COLLECTOR),
            f"--prefix={self.prefix}",
            str(pid),
            str(uid),
            str(gid),
            str(int(sig)),
            str(ts),
            "18446744073709551615",
            hostname,
            str(dumpable),
        ]
        if pidfd is not None:
            args.append(str(pidfd))
        return args

    def run(
        self,
        argv: list[str],
        core: bytes | Path,
        *,
        pass_fds: tuple[int, ...] = (),
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the collector as the kernel would: the core on stdin, argv from the pattern."""
        if isinstance(core, Path):
            with core.open("rb") as f:
                return subprocess.run(
                    argv,
                    stdin=f,
                    capture_output=True,
                    timeout=timeout,
                    pass_fds=pass_fds,
                    check=False,
                )
        return subprocess.run(
            argv, input=core, capture_output=True, timeout=timeout, pass_fds=pass_fds, check=False
        )


def make_prefix() -> Iterator[Harness]:
    """A short, root-owned prefix (core_pattern is cut at 128 bytes, so no pytest tmp paths)."""
    _not_before_us[0] = time.time_ns() // 1000
    d = Path(tempfile.mkdtemp(prefix="dkl-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield Harness(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def spawn_as(cmd: list[str], uid: int, gid: int, **kw: object) -> subprocess.Popen[bytes]:
    """Start `cmd` as uid/gid (no groups), dumpable, with an unlimited core limit."""

    def become() -> None:
        import resource  # noqa: PLC0415

        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    return subprocess.Popen(cmd, preexec_fn=become, cwd="/", **kw)  # type: ignore[call-overload,no-any-return] # noqa: PLW1509


def wait_running(proc: subprocess.Popen[bytes], exe: str, timeout: float = 5.0) -> None:
    """Wait until `proc` has exec'd `exe` (so a signal kills it, not the forked Python)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/exe").endswith(exe):
                # and it is past the dynamic loader: it is sleeping in its main loop
                stat = Path(f"/proc/{proc.pid}/stat").read_text()
                if stat[stat.rfind(")") + 2] in "SR":
                    time.sleep(0.05)
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{exe} did not start")


def crash(
    cmd: list[str], uid: int, gid: int, sig: int = signal.SIGSEGV, exe: str | None = None
) -> int:
    """Run `cmd` as uid/gid, kill it with `sig` once it runs, return its PID."""
    proc = spawn_as(cmd, uid, gid)
    wait_running(proc, exe or Path(cmd[0]).name)
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    assert proc.returncode == -sig, f"{cmd} ended with {proc.returncode}, not -{sig}"
    return proc.pid


def journald_socket_alive() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect("/run/systemd/journal/socket")
        except OSError:
            return False
    return True


def field(entry: Entry, name: str) -> bytes:
    value = entry.get(name)
    assert value is not None, f"{name} missing from the entry"
    return value


# --- Helpers for the security and bad-input suites (SECURITY.md) ------------------------------

#: A crash target whose behaviour is chosen by environment variables, so that its argv stays free
#: for the command-line tests: DKL_COMM (prctl PR_SET_NAME), DKL_CWD (chdir), DKL_SETUID (a root
#: process drops to this uid: the kernel then sets dump mode to fs.suid_dumpable), DKL_NODUMP
#: (PR_SET_DUMPABLE 0), DKL_MAP (bytes of untouched anonymous memory), DKL_TOUCH (bytes of
#: incompressible memory), DKL_WAIT (print "ready" and wait for a signal instead of faulting).
#: It faults with a real NULL write: raise() would be ignored by a PID namespace's init.
CRASHME_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

int main(void) {
    const char *v;
    if ((v = getenv("DKL_SETUID")) && setresuid(atoi(v), atoi(v), atoi(v)) != 0) return 3;
    if (getenv("DKL_NODUMP")) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if ((v = getenv("DKL_COMM"))) prctl(PR_SET_NAME, v, 0, 0, 0);
    if ((v = getenv("DKL_CWD")) && chdir(v) != 0) return 4;
    if ((v = getenv("DKL_MAP"))) {
        void *p = mmap(NULL, strtoull(v, NULL, 0), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return 5;
        *(volatile char *)p = 1;  /* without one written page the kernel dumps none of it */
    }
    if ((v = getenv("DKL_TOUCH"))) {
        size_t n = strtoull(v, NULL, 0) / 8;
        unsigned long long *p = malloc(n * 8), x = 88172645463325252ULL;
        if (!p) return 6;
        for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; p[i] = x; }
    }
    if (getenv("DKL_WAIT")) {
        fputs("ready\n", stdout);
        fflush(stdout);
        for (;;) pause();
    }
    *(volatile int *)0 = 0;
    return 1;
}
"""


def build_c(source: str, name: str, flags: tuple[str, ...] = ()) -> Path:
    """Compile a C crash target once per machine (cached by content and flags) into a
    root-owned directory other users may exec from (pytest's tmp dirs are root-only)."""
    import hashlib  # noqa: PLC0415

    tag = hashlib.sha256("\0".join([source, *flags]).encode()).hexdigest()[:12]
    out = Path(f"/var/tmp/dkl-{name}-{tag}/{name}")
    if out.exists():
        return out
    out.parent.mkdir(mode=0o755, exist_ok=True)
    src = out.with_name(f"{name}.{os.getpid()}.c")
    src.write_text(source)
    tmp = out.with_name(f"{name}.{os.getpid()}")
    cmd = ["gcc", "-O0", "-o", str(tmp), str(src), *flags]
    subprocess.run(cmd, check=True, capture_output=True)
    src.unlink()
    tmp.chmod(0o755)
    tmp.replace(out)
    return out


def build_crashme(*, static: bool = False) -> Path:
    """CRASHME_C, the security suites' crash target."""
    return build_c(CRASHME_C, "crashme", ("-static",) if static else ())


#: An environment for a crash target: str or bytes throughout (Popen takes either).
Env = Mapping[str, str] | Mapping[bytes, bytes]


def crash_self(
    cmd: list[str] | list[bytes], uid: int, gid: int, env: Env | None = None, **kw: object
) -> int:
    """Run a crashme-like `cmd` as uid/gid that faults by itself; return its PID."""
    # spawn_as passes the argv to Popen, which takes bytes as well as str.
    proc = spawn_as(cmd, uid, gid, env=dict(env or {}), **kw)  # type: ignore[arg-type]
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGSEGV, f"{cmd!r} ended with {proc.returncode}"
    return proc.pid


def start_waiting(
    cmd: list[str] | list[bytes], uid: int, gid: int, env: Env | None = None, **kw: object
) -> subprocess.Popen[bytes]:
    """Start crashme with DKL_WAIT as uid/gid; return once it said "ready" (it is pausing)."""
    full: dict[str | bytes, str | bytes] = {"DKL_WAIT": "1"}
    for key, value in (env or {}).items():
        full[key] = value
    proc = spawn_as(cmd, uid, gid, env=full, stdout=subprocess.PIPE, **kw)  # type: ignore[arg-type]
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == b"ready\n", f"{cmd!r} did not start: {line!r}"
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill and reap a process started by a test (never anything else)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def posix_acl(path: Path) -> bytes | None:
    """The raw system.posix_acl_access xattr of `path`, None when the file has no ACL."""
    try:
        return os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError as e:
        if e.errno == 61:  # ENODATA: no ACL at all
            return None
        raise


def allowed_as(uid: int, gid: int, action: Callable[[], object], what: str) -> bool:
    """Whether uid/gid (no groups) may do `action`: asked of the kernel, in a child. True when
    it ran, False on EACCES/EPERM; anything else fails the test."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            action()
            code = 0
        except PermissionError:
            code = 13
        except BaseException:  # the child must reach _exit
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 13), f"{what} as uid {uid} failed oddly ({code})"
    return code == 0


def readable_as(path: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid (no groups) can open `path` for reading."""

    def read() -> None:
        with path.open("rb") as f:
            f.read(1)

    return allowed_as(uid, gid, read, f"reading {path}")


def listable_as(path: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid (no groups) can list the directory `path`."""
    return allowed_as(uid, gid, lambda: os.listdir(path), f"listing {path}")


def run_measured(
    argv: list[str], core: Path, *, pass_fds: tuple[int, ...] = (), timeout: float = 300.0
) -> tuple[int, int]:
    """Like Harness.run with a file on stdin; returns (exit status, peak RSS in KiB of the
    collector and the worker it waited for).

    Measured by GNU time, not by our own wait4: Linux keeps a process's pre-exec high-water
    RSS across exec (signal->maxrss, fs/exec.c), so a child forked from this large pytest
    process would report pytest's peak. time's child starts from time's small image.
    """
    time_bin = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out, core.open("rb") as f:
        proc = subprocess.run(
            [time_bin, "-f", "%x %M", "-o", out.name, *argv],
            stdin=f,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=pass_fds,
            timeout=timeout,
            check=False,
        )
        words = out.read().split()
    assert len(words) >= 2, f"GNU time printed {words} (exit {proc.returncode})"
    return int(words[-2]), int(words[-1])


def children(pid: int) -> list[int]:
    """Direct children of `pid` (its threads' /proc children lists)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def install_without_pidfd(h: Harness) -> str:
    """core_pattern without %F: the collector must prove identity with pidfd_open + PF_DUMPCORE
    (kernels before 6.16). Caller holds the `core_pattern` fixture."""
    from drkonqi_lite_collector.stage import argv as kargv  # noqa: PLC0415

    pat = f"|{COLLECTOR} --prefix={h.prefix} {kargv.SPECIFIERS}"
    Path("/proc/sys/kernel/core_pipe_limit").write_text("16\n")
    Path("/proc/sys/kernel/core_pattern").write_text(pat + "\n")
    return pat


def tree(root: Path) -> dict[str, str]:
    """Every path below `root` (relative) with its kind, never following links."""
    import stat as st_mod  # noqa: PLC0415

    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = (
                "dir"
                if st_mod.S_ISDIR(st.st_mode)
                else "link"
                if st_mod.S_ISLNK(st.st_mode)
                else "fifo"
                if st_mod.S_ISFIFO(st.st_mode)
                else "file"
            )
            out[str(p.relative_to(root))] = kind
    return out


def entries_since(since: float, **match: str | int) -> list[Entry]:
    """`entries` received at or after `since`: PIDs recycle within minutes on a busy machine and
    the journal keeps every earlier crash, so a test matching on COREDUMP_PID looks only at its
    own time window."""
    return entries(since, MESSAGE_ID, **match)


def wait_entry_since(since: float, timeout: float = 15.0, **match: str | int) -> Entry:
    """`wait_entry` among the entries received at or after `since`."""
    return wait_entry(timeout, since, MESSAGE_ID, **match)


def group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def admin_uid() -> int:
    """The uid the full entry of a restricted crash is sent as
    (collector/journal/restriction.py): the collector's system user where it exists, else root."""
    try:
        return pwd.getpwnam("drkonqi-lite").pw_uid
    except KeyError:
        return 0


def restricted_entries(since: float, pid: int, uid: int) -> tuple[Entry, Entry]:
    """(the user's own entry, the full one in the system journal) of a restricted crash."""
    own = wait_entry_since(since, COREDUMP_PID=pid, _UID=uid)
    full = wait_entry_since(since, COREDUMP_PID=pid, _UID=admin_uid())
    return own, full


def copy_program(h: Harness, program: Path, directory: bytes, name: bytes) -> bytes:
    """`program` copied to PREFIX/`directory`/`name` (hostile bytes welcome), runnable by all."""
    d = os.path.join(bytes(h.prefix), directory)
    os.mkdir(d, 0o755)
    exe = os.path.join(d, name)
    with open(program, "rb") as src, open(exe, "wb") as dst:
        dst.write(src.read())
    os.chmod(exe, 0o755)  # noqa: S103 - the user must be able to run it
    return exe
