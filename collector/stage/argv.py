"""The kernel's argv for a core_pattern pipe handler, parsed strictly.

core_pattern (core(5)): `|COLLECTOR [--prefix DIR] %P %u %g %s %t %c %h %d [%F] --tid=%I`.
%P is the PID in the initial namespace, %t seconds since the epoch, %c the soft RLIMIT_CORE,
%h the hostname, %d the dump mode (0/1/2, see PR_SET_DUMPABLE) and %F (Linux >= 6.16) the number
of an fd the kernel installed in our table that is a pidfd of the crashed process. %I is the
crashing thread's TID in the initial PID namespace (Linux >= 3.18); it sits in a tagged word
because the kernel drops a specifier it does not know ("%<OTHER> both are dropped",
Documentation/admin-guide/sysctl/kernel.rst): a bare word would shift the positions, while
`--tid=` is simply empty. systemd records the same TID as COREDUMP_TID (#41082).
"""

from __future__ import annotations

import os.path

TYPE_CHECKING = False
if TYPE_CHECKING:  # typeshed describes the C module's contents as `signal`
    import signal as _signal
else:
    import _signal  # the C module: `signal` imports enum (~5 ms at start, see handler.py)

#: core_pattern is truncated by the kernel at CORENAME_MAX_SIZE (128) bytes.
CORENAME_MAX_SIZE = 128
SPECIFIERS = "%P %u %g %s %t %c %h %d"
SPECIFIERS_PIDFD = SPECIFIERS + " %F"
#: The last word of every pattern we install (see the module docstring).
TID_WORD = "--tid=%I"


def _signal_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for name, value in vars(_signal).items():
        if (
            name.startswith("SIG")
            and not name.startswith(("SIG_", "SIGRT"))
            and isinstance(value, int)
        ):
            names.setdefault(value, name)
    # Canonical names where Linux has aliases (SIGIOT, SIGPOLL, SIGCLD), as systemd prints.
    names.update({_signal.SIGABRT: "SIGABRT", _signal.SIGIO: "SIGIO", _signal.SIGCHLD: "SIGCHLD"})
    return names


_SIGNAL_NAMES = _signal_names()


def signal_name(number: int) -> str:
    """`SIGSEGV` for 11; `SIGRTMIN+3` for real-time signals, like systemd's signal_to_string."""
    if number in _SIGNAL_NAMES:
        return _SIGNAL_NAMES[number]
    if _signal.SIGRTMIN <= number <= _signal.SIGRTMAX:
        return f"SIGRTMIN+{number - _signal.SIGRTMIN}"
    return f"SIG{number}"


class ArgvError(ValueError):
    """The kernel (or a caller pretending to be it) gave us arguments we cannot trust."""


class KernelArgs:
    """The crash as the kernel described it. %t is in seconds; like systemd-coredump we keep
    COREDUMP_TIMESTAMP in microseconds. (A plain slotted class: the collector avoids `typing`
    and `dataclasses` at run time, see handler.py.)"""

    __slots__ = (
        "dumpable",
        "gid",
        "hostname",
        "pid",
        "pidfd",
        "prefix",
        "rlimit",
        "signal",
        "tid",
        "timestamp_us",
        "uid",
    )

    def __init__(
        self,
        pid: int,
        uid: int,
        gid: int,
        signal: int,
        timestamp_us: int,
        rlimit: int,
        hostname: str,
        dumpable: int,
        pidfd: int | None,
        prefix: str,
        tid: int | None = None,
    ) -> None:
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.signal = signal
        self.timestamp_us = timestamp_us
        self.rlimit = rlimit
        self.hostname = hostname
        self.dumpable = dumpable
        self.pidfd = pidfd
        self.prefix = prefix
        #: The crashing thread (%I), None when the pattern or the kernel did not give it.
        self.tid = tid

    @property
    def signal_name(self) -> str:
        return signal_name(self.signal)


def _number(name: str, text: str, lo: int, hi: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise ArgvError(f"{name} is not a number: {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ArgvError(f"{name} out of range: {value}")
    return value


#: __NEW_UTS_LEN: the kernel never gives a longer %h; a caller pretending to be it might.
HOSTNAME_MAX = 64


def escape_hostname(raw: str) -> str:
    """%h as one inert line. Any user may set any bytes as the hostname of their own UTS
    namespace (`unshare -Ur --uts`): newlines, control bytes and invalid UTF-8 (surrogates
    here) become C escapes (`\\n`, `\\x1b`), a backslash `\\\\`; `/` and spaces stay (the
    hostname names no file). Nothing in it is ever a reason to drop the crash (SECURITY.md 11).
    """
    out = []
    for c in raw[:HOSTNAME_MAX]:
        code = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(c)
    return "".join(out)


def parse(argv: list[str]) -> KernelArgs:
    """Parse the handler's arguments (without argv[0]); raise ArgvError when malformed."""
    args = list(argv)
    prefix = "/"
    if args and args[0].startswith("--prefix="):
        prefix = args.pop(0).removeprefix("--prefix=")
    elif args and args[0] == "--prefix" and len(args) > 1:
        args.pop(0)
        prefix = args.pop(0)
    if not os.path.isabs(prefix):
        raise ArgvError(f"--prefix must be absolute: {prefix}")
    tid = None
    if args and args[-1].startswith("--tid="):
        text = args.pop().removeprefix("--tid=")
        tid = _number("TID", text, 1, 2**22) if text else None
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
    hostname = escape_hostname(args[6])
    dumpable = _number("dump mode", args[7], 0, 2)
    pidfd = _number("pidfd", args[8], 3, 1023) if len(args) == 9 else None
    return KernelArgs(
        pid, uid, gid, sig, seconds * 1_000_000, rlimit, hostname, dumpable, pidfd, prefix, tid
    )
