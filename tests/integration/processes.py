"""The processes the collector's tests crash: started as a user (dumpable, unlimited core
limit), killed once they really run, or built from C to fault by themselves; and their children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


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


def children(pid: int) -> list[int]:
    """Direct children of `pid` (its threads' /proc children lists)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


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

