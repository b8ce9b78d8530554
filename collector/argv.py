"""The kernel's argv for a core_pattern pipe handler, parsed strictly.

core_pattern (core(5)): `|COLLECTOR [--prefix DIR] %P %u %g %s %t %c %h %d [%F]`.
%P is the PID in the initial namespace, %t seconds since the epoch, %c the soft RLIMIT_CORE,
%h the hostname, %d the dump mode (0/1/2, see PR_SET_DUMPABLE) and %F (Linux >= 6.16) the number
of an fd the kernel installed in our table that is a pidfd of the crashed process.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

#: core_pattern is truncated by the kernel at CORENAME_MAX_SIZE (128) bytes.
CORENAME_MAX_SIZE = 128
SPECIFIERS = "%P %u %g %s %t %c %h %d"
SPECIFIERS_PIDFD = SPECIFIERS + " %F"


class ArgvError(ValueError):
    """The kernel (or a caller pretending to be it) gave us arguments we cannot trust."""


@dataclasses.dataclass(frozen=True, slots=True)
class KernelArgs:
    pid: int
    uid: int
    gid: int
    signal: int
    #: %t is in seconds; systemd-coredump records COREDUMP_TIMESTAMP in microseconds.
    timestamp_us: int
    rlimit: int
    hostname: str
    dumpable: int
    pidfd: int | None
    prefix: Path

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"SIG{self.signal}"


def _number(name: str, text: str, lo: int, hi: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise ArgvError(f"{name} is not a number: {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ArgvError(f"{name} out of range: {value}")
    return value


def parse(argv: list[str]) -> KernelArgs:
    """Parse the handler's arguments (without argv[0]); raise ArgvError when malformed."""
    args = list(argv)
    prefix = Path("/")
    if args and args[0].startswith("--prefix="):
        prefix = Path(args.pop(0).removeprefix("--prefix="))
    elif args and args[0] == "--prefix" and len(args) > 1:
        args.pop(0)
        prefix = Path(args.pop(0))
    if not prefix.is_absolute():
        raise ArgvError(f"--prefix must be absolute: {prefix}")
    if len(args) not in (8, 9):
        raise ArgvError(f"expected 8 or 9 arguments ({SPECIFIERS_PIDFD}), got {len(args)}")
    u32 = 2**32 - 2  # (uid_t) -1 is "invalid" and never a real owner
    pid = _number("PID", args[0], 1, 2**22)
    uid = _number("UID", args[1], 0, u32)
    gid = _number("GID", args[2], 0, u32)
    sig = _number("signal", args[3], 1, 64)
    seconds = _number("timestamp", args[4], 0, 2**40)
    # %c prints the soft limit as an unsigned long: RLIM_INFINITY is 2**64-1 (and systemd's
    # anchor passes 2**63 as a stand-in); keep it as given.
    rlimit = _number("rlimit", args[5], 0, 2**64 - 1)
    hostname = args[6]
    if not hostname or len(hostname) > 64 or any(c in hostname for c in "/\0\n"):
        raise ArgvError(f"bad hostname: {hostname!r}")
    dumpable = _number("dump mode", args[7], 0, 2)
    pidfd = _number("pidfd", args[8], 3, 1023) if len(args) == 9 else None
    return KernelArgs(
        pid, uid, gid, sig, seconds * 1_000_000, rlimit, hostname, dumpable, pidfd, prefix
    )
