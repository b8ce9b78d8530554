"""What the crashing user may learn of a crash the kernel keeps from them (SECURITY.md 13).

For a process the kernel marks non-dumpable (set-uid, set-gid, file capabilities, changed
credentials, an execute-only binary: dump mode != 1) or whose ids say it held more than the
user, /proc shows the user only what it shows any other user: comm, cmdline, status, limits,
cgroup and mountinfo (0444, no ptrace check). exe, cwd, root, environ, fd/fdinfo, maps and auxv
need PTRACE_MODE_READ, which the user does not have; the stack, the modules' build-ids and the
package of the executable come from the core and the executable, which the user may not read.

A crash the kernel lets its user see may still run code from files the user cannot read (a
daemon started by root from a root-only directory that dropped to the user): symbol names and
build-ids of those modules come only from reading them as root, so the user's entry goes without
them (unreadable_by) and the full entry is kept for root the same way.

So such a crash gets two entries: the user's own, with only what the user could have seen and
the names of the withheld fields in DRKONQI_LITE_WITHHELD; and the full one, sent as the
collector's system user (or root) so that journald files it in the system journal, which only
root and the admin groups read (`coredumpctl` as root shows it). systemd-coredump sends the
full entry, core included for Storage=journal, to the user's journal.
"""

from __future__ import annotations

import os
import stat

from drkonqi_lite_collector.journal.schema import Field

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Callable

    from drkonqi_lite_collector.journal.entry import Fields
    from drkonqi_lite_collector.journal.native import FieldValue
    from drkonqi_lite_collector.journal.proc import ProcInfo
    from drkonqi_lite_collector.stage.argv import KernelArgs

#: Fields the user's entry of a restricted crash never carries: behind a ptrace check in /proc
#: (EXE, CWD, ROOT, ENVIRON, OPEN_FDS, PROC_MAPS, PROC_AUXV) or read from the core and the
#: module files as root (MODULES, PYTHON_STACK, PACKAGE_*, the core itself). MESSAGE loses its
#: stack trace.
WITHHELD = (
    Field.EXE,
    Field.CWD,
    Field.ROOT,
    Field.ENVIRON,
    Field.OPEN_FDS,
    Field.PROC_MAPS,
    Field.PROC_AUXV,
    Field.MODULES,
    Field.PYTHON_STACK,
    Field.PACKAGE_NAME,
    Field.PACKAGE_VERSION,
    Field.PACKAGE_JSON,
    Field.COREDUMP,
)
#: DRKONQI_LITE_STACKTRACE of the user's entry when its stack trace was withheld.
TRACE_WITHHELD = "none: withheld (restricted crash; the full entry is in the system journal)"


def kernel_hides(args: KernelArgs, info: ProcInfo, verified: bool) -> bool:
    """True when the kernel keeps this process's memory and private /proc files from its user.

    Dump mode != 1 says so whatever /proc said. With dump mode 1, AT_SECURE or differing
    real/effective ids (proven through the pidfd) say so too. An unproven identity alone does
    not: /proc was then not recorded at all, and dump mode 1 means the core is the user's own.
    """
    if args.dumpable != 1:
        return True
    if not verified:
        return False
    uids, gids = info.status_ids(b"Uid"), info.status_ids(b"Gid")
    ids_differ = len(uids) < 2 or len(gids) < 2 or uids[0] != uids[1] or gids[0] != gids[1]
    return ids_differ or info.at_secure() != 0


def user_view(fields: Fields, headline: str, core_in_entry: bool) -> Fields:
    """The user's entry of a restricted crash: `fields` without WITHHELD, MESSAGE reduced to its
    `headline` (no stack trace), and the names of what was withheld (COREDUMP too when the full
    entry carries the core, Storage=journal)."""
    withheld = sorted(
        {name for name, _ in fields if name in WITHHELD}
        | ({Field.COREDUMP} if core_in_entry else set())
    )
    replaced: dict[str, FieldValue] = {Field.MESSAGE: headline, Field.STACKTRACE: TRACE_WITHHELD}
    out: Fields = [
        (name, replaced.get(name, value)) for name, value in fields if name not in WITHHELD
    ]
    if withheld:
        out.append((Field.WITHHELD, " ".join(withheld)))
    return out


#: The fields a stack trace contributes (handler.py), which `with_user_trace` replaces.
TRACE_FIELDS = (
    Field.MESSAGE,
    Field.STACKTRACE,
    Field.MODULES,
    Field.PACKAGE_NAME,
    Field.PACKAGE_VERSION,
    Field.PACKAGE_JSON,
)


def with_user_trace(fields: Fields, trace_fields: Fields) -> Fields:
    """The user's entry when only the stack trace differs: `fields` with the trace's fields
    (MESSAGE included) taken from `trace_fields`, and those that changed named in WITHHELD."""
    full = dict(fields)
    mine = dict(trace_fields)
    changed = sorted(n for n in TRACE_FIELDS if n in full and full.get(n) != mine.get(n))
    out: Fields = [(n, v) for n, v in fields if n not in TRACE_FIELDS]
    out += [(n, v) for n, v in trace_fields if n in TRACE_FIELDS]
    if changed:
        out.append((Field.WITHHELD, " ".join(changed)))
    return out


def _permits(st: os.stat_result, uid: int, gids: frozenset[int], want: int, acl: bool) -> bool:
    """Whether mode bits give uid/gids `want` (4 read, 1 search). A POSIX ACL on a file the
    user does not own may grant or deny more than the bits say: judged as no access."""
    if st.st_uid == uid:
        return bool(st.st_mode >> 6 & want)
    if acl:
        return False
    if st.st_gid in gids:
        return bool(st.st_mode >> 3 & want)
    return bool(st.st_mode & want)


def _has_acl(target: int | str) -> bool:
    try:
        if isinstance(target, int):
            os.getxattr(target, "system.posix_acl_access")
        else:
            os.getxattr(target, "system.posix_acl_access", follow_symlinks=False)
    except OSError:
        return False
    return True


def unreadable_by(uid: int, gids: frozenset[int]) -> Callable[[int, str, bool], bool]:
    """`hide(fd, path, same_root)` for the stack-trace engine: True when uid (with gids) could
    not read the mapped file `fd` (opened as root through map_files) at `path`: its own mode,
    and, when the path is in our root and still names that file, every directory above it."""

    def hide(fd: int, path: str, same_root: bool) -> bool:
        try:
            return _hidden(fd, path, same_root)
        except (OSError, ValueError):
            return True  # cannot tell: the user does not get what reading it would show

    def _hidden(fd: int, path: str, same_root: bool) -> bool:
        if uid == 0:
            return False
        try:
            st = os.fstat(fd)
        except OSError:
            return True
        if not _permits(st, uid, gids, 4, _has_acl(fd)):
            return True
        if not same_root or not path.startswith("/"):
            return False
        try:
            there = os.stat(path, follow_symlinks=False)
        except OSError:
            return False  # deleted or replaced since: the file's own mode decided
        if (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino):
            return False
        return not _searchable(os.path.dirname(path), uid, gids)

    return hide


def _searchable(directory: str, uid: int, gids: frozenset[int]) -> bool:
    """Whether uid (with gids) may search `directory` and every directory above it."""
    while True:
        try:
            d = os.stat(directory, follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISDIR(d.st_mode) or not _permits(d, uid, gids, 1, _has_acl(directory)):
            return False
        if directory == "/":
            return True
        directory = os.path.dirname(directory)
