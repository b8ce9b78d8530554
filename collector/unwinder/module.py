"""Descriptors of the crashed process's mapped ELF files, opened through /proc/PID/map_files.

/proc/PID/map_files/START-END opens the exact inode mapped at that range (Linux >= 3.3, needs
CAP_SYS_ADMIN): right even when the file on disk was replaced or deleted after the program
started, and never a path resolved in the crashed process's root or mount namespace.  This
runs as root while the crashed process still exists (before its core is drained), opens only
regular files that start with an ELF magic, read-only, and never fails the collector: on any
error it returns what it has.
"""

from __future__ import annotations

import os
import stat

from drkonqi_lite_collector.unwinder import mounts

TYPE_CHECKING = False  # no typing/dataclasses/pathlib at run time: see handler.py
if TYPE_CHECKING:
    from types import TracebackType

#: At most this many distinct mapped files get a descriptor (a big desktop app maps ~300).
MODULES_MAX = 512
#: At most this many map_files entries are looked at (a process may have 65530 mappings).
MAPPINGS_MAX = 8192


class ModuleFiles:
    """Open read-only descriptors of mapped ELF files, keyed by their lowest mapped address.

    `by_start`: lowest mapped address of the file -> fd; `paths`: the same -> the path the
    kernel shows for it (display only); `exe`: /proc/PID/exe as the kernel shows it, if
    readable (display, package lookup); `same_root`: the process's root is the collector's
    (the host package database applies).
    """

    __slots__ = ("by_start", "exe", "paths", "same_root")

    def __init__(self) -> None:
        self.by_start: dict[int, int] = {}
        self.paths: dict[int, str] = {}
        self.exe: str | None = None
        self.same_root = False

    def close(self) -> None:
        """Close every descriptor (idempotent)."""
        for fd in self.by_start.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.by_start.clear()

    def __enter__(self) -> ModuleFiles:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _is_elf(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 4, 0) == b"\x7fELF"
    except OSError:
        return False


def open_module_files(proc_dir_fd: int) -> ModuleFiles:
    """Open the mapped ELF objects of the process whose /proc/PID directory is `proc_dir_fd`."""
    mods = ModuleFiles()
    # Only files on file systems no user can stall are stat()ed or opened (mounts.py).
    survey = mounts.Survey.of(proc_dir_fd)
    try:
        if survey.root_ok:
            root = os.stat("root", dir_fd=proc_dir_fd)
            mine = os.stat("/")
            mods.same_root = (root.st_dev, root.st_ino) == (mine.st_dev, mine.st_ino)
    except OSError:
        pass
    try:
        mods.exe = os.readlink("exe", dir_fd=proc_dir_fd)
    except OSError:
        pass
    try:
        map_dir = os.open(
            "map_files", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc_dir_fd
        )
    except OSError:
        return mods
    try:
        _collect(mods, map_dir, survey.touchable_starts())
    finally:
        os.close(map_dir)
    return mods


def _collect(mods: ModuleFiles, map_dir: int, touchable: set[int]) -> None:
    try:
        names = os.listdir(map_dir)
    except OSError:
        return
    ranges: list[tuple[int, str]] = []
    for name in names:
        low, _, _ = name.partition("-")
        try:
            start = int(low, 16)
        except ValueError:
            continue
        if start in touchable:
            ranges.append((start, name))
    ranges.sort()
    seen: set[tuple[int, int]] = set()
    for start, name in ranges[:MAPPINGS_MAX]:
        if len(mods.by_start) >= MODULES_MAX:
            return
        # stat() follows the map_files link to the mapped inode without opening it: opening a
        # mapped device node (a GPU render node, say) as root could have side effects.
        try:
            st = os.stat(name, dir_fd=map_dir)
        except OSError:
            continue
        # One descriptor per inode: the first (lowest) mapping of a file is where its ELF
        # header is, and where libdwfl's module starts.
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK, dir_fd=map_dir
            )
        except OSError:
            continue
        if not _is_elf(fd):
            os.close(fd)
            continue
        mods.by_start[start] = fd
        try:
            mods.paths[start] = os.readlink(name, dir_fd=map_dir)
        except OSError:
            mods.paths[start] = ""
