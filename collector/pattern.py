"""Installing the collector as the kernel's crash handler, and giving the old one back.

`install` saves the current kernel.core_pattern and kernel.core_pipe_limit, then points
core_pattern at us. It never silently takes over from another pipe handler (systemd-coredump,
Apport, ABRT): that needs --force, and `uninstall` restores exactly what was there.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path

from drkonqi_lite_collector import argv, config, spool, storage

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
CORE_PIPE_LIMIT = Path("/proc/sys/kernel/core_pipe_limit")
#: Like systemd's sysctl.d/50-coredump.conf: let up to 16 crashes be handled at once while the
#: kernel keeps each crashed process (and so /proc/PID) around until its handler is done.
PIPE_LIMIT = 16
#: A short, root-owned path for the kernel to execute (core_pattern is cut at 128 bytes).
LINK = Path("/run/drkonqi-lite/collector")
PACKAGED = Path("/usr/libexec/drkonqi-lite-collector")


class PatternError(Exception):
    """A clear, expected failure of install/uninstall/status."""


def supports_pidfd() -> bool:
    """%F exists since Linux 6.16."""
    parts = platform.release().split(".")
    try:
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (6, 16)
    except (IndexError, ValueError):
        return False


def handler_kind(pat: str) -> str:
    """Who handles crashes according to a core_pattern value."""
    if not pat.startswith("|"):
        return f"the kernel writes core files ({pat!r})"
    prog = pat[1:].split(maxsplit=1)[0] if pat[1:].split() else ""
    name = Path(prog).name
    if "drkonqi-lite" in name or Path(prog) == LINK:
        return "drkonqi-lite-collector"
    for known in ("systemd-coredump", "apport", "abrt-hook-ccpp"):
        if known in name:
            return known
    return prog


def _own_program() -> Path:
    if PACKAGED.exists():
        return PACKAGED
    exe = shutil.which("drkonqi-lite-collector") or sys.argv[0]
    return Path(exe).resolve()


def make_pattern(handler: Path, prefix: Path) -> str:
    specs = argv.SPECIFIERS_PIDFD if supports_pidfd() else argv.SPECIFIERS
    pfx = f" --prefix={prefix}" if prefix != Path("/") else ""
    pat = f"|{handler}{pfx} {specs}"
    if len(pat.encode()) >= argv.CORENAME_MAX_SIZE:
        raise PatternError(f"core_pattern would exceed {argv.CORENAME_MAX_SIZE - 1} bytes: {pat}")
    return pat


def install(paths: config.Paths, *, force: bool = False, handler: Path | None = None) -> int:
    current = CORE_PATTERN.read_text().rstrip("\n")
    kind = handler_kind(current)
    if kind != "drkonqi-lite-collector" and current.startswith("|") and not force:
        raise PatternError(
            f"crashes are handled by {kind}; not taking over without --force "
            f"(our tray shows its crashes anyway: same journal schema)"
        )
    if handler is None:
        LINK.parent.mkdir(mode=0o755, exist_ok=True)
        tmp = LINK.with_name(f".collector.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(_own_program())
        tmp.replace(LINK)
        handler = LINK
    state_fd = storage.open_dir(paths.state_dir, create=True)
    os.close(state_fd)
    if kind != "drkonqi-lite-collector":
        saved = {"core_pattern": current, "core_pipe_limit": CORE_PIPE_LIMIT.read_text().strip()}
        tmpfile = paths.saved_pattern_file.with_suffix(".tmp")
        tmpfile.write_text(json.dumps(saved))
        tmpfile.replace(paths.saved_pattern_file)
    pat = make_pattern(handler, paths.prefix)
    CORE_PIPE_LIMIT.write_text(f"{PIPE_LIMIT}\n")
    CORE_PATTERN.write_text(pat + "\n")
    print(f"core_pattern = {pat}")
    return 0


def uninstall(paths: config.Paths) -> int:
    current = CORE_PATTERN.read_text().rstrip("\n")
    try:
        saved = json.loads(paths.saved_pattern_file.read_text())
    except FileNotFoundError:
        saved = {"core_pattern": "core", "core_pipe_limit": "0"}
    except (OSError, ValueError) as e:
        raise PatternError(f"{paths.saved_pattern_file}: {e}") from e
    if handler_kind(current) != "drkonqi-lite-collector":
        print(f"drkonqi-lite-collector is not installed (crashes go to {handler_kind(current)})")
        return 0
    CORE_PATTERN.write_text(saved["core_pattern"] + "\n")
    CORE_PIPE_LIMIT.write_text(saved["core_pipe_limit"] + "\n")
    paths.saved_pattern_file.unlink(missing_ok=True)
    print(f"core_pattern restored to {saved['core_pattern']}")
    return 0


def status(paths: config.Paths) -> int:
    current = CORE_PATTERN.read_text().rstrip("\n")
    kind = handler_kind(current)
    print(f"core_pattern:    {current}")
    print(f"core_pipe_limit: {CORE_PIPE_LIMIT.read_text().strip()}")
    print(f"crash handler:   {kind}")
    if kind in ("drkonqi-lite-collector", "systemd-coredump"):
        print("tray app:        sees these crashes (systemd-coredump journal schema)")
    else:
        print("tray app:        will NOT see crashes (no journal entries are written)")
    cores = usage = 0
    pending = 0
    try:
        state_fd = storage.open_dir(paths.state_dir)
    except OSError:
        state_fd = -1
    if state_fd >= 0:
        try:
            try:
                core_fd = storage.open_subdir(state_fd, "coredump", create=False)
                cores_list = list(storage.stored_cores(core_fd))
                os.close(core_fd)
                cores, usage = len(cores_list), sum(c.blocks for c in cores_list)
            except OSError:
                pass
            try:
                spool_fd = storage.open_subdir(state_fd, "spool", create=False)
                pending = len(spool.pending(spool_fd))
                os.close(spool_fd)
            except OSError:
                pass
        finally:
            os.close(state_fd)
    print(f"stored cores:    {cores} in {paths.storage_dir} ({usage / 1024**2:.1f} MiB)")
    print(f"spooled entries: {pending}")
    return 0
