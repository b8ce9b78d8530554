"""What the crashing user may learn of a crash the kernel keeps from them (SECURITY.md 13).

For a process the kernel marks non-dumpable (set-uid, set-gid, file capabilities, changed
credentials, an execute-only binary: dump mode != 1) or whose ids say it held more than the
user, /proc shows the user only what it shows any other user: comm, cmdline, status, limits,
cgroup and mountinfo (0444, no ptrace check). exe, cwd, root, environ, fd/fdinfo, maps and auxv
need PTRACE_MODE_READ, which the user does not have; the stack, the modules' build-ids and the
package of the executable come from the core and the executable, which the user may not read.

So such a crash gets two entries: the user's own, with only what the user could have seen and
the names of the withheld fields in DRKONQI_LITE_WITHHELD; and the full one, sent as the
collector's system user (or root) so that journald files it in the system journal, which only
root and the admin groups read (`coredumpctl` as root shows it). systemd-coredump sends the
full entry, core included for Storage=journal, to the user's journal.
"""

from __future__ import annotations

from drkonqi_lite_collector.journal.schema import Field

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from drkonqi_lite_collector.journal.entry import Fields
    from drkonqi_lite_collector.journal.native import FieldValue
    from drkonqi_lite_collector.stage.argv import KernelArgs
    from drkonqi_lite_collector.worker.procinfo import ProcInfo

#: Fields the user's entry of a restricted crash never carries: behind a ptrace check in /proc
#: (EXE, CWD, ROOT, ENVIRON, OPEN_FDS, PROC_MAPS, PROC_AUXV) or read from the core and the
#: module files as root (MODULES, PACKAGE_*, the core itself). MESSAGE loses its stack trace.
WITHHELD = (
    Field.EXE,
    Field.CWD,
    Field.ROOT,
    Field.ENVIRON,
    Field.OPEN_FDS,
    Field.PROC_MAPS,
    Field.PROC_AUXV,
    Field.MODULES,
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
