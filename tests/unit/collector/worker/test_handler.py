"""handle(), one crash start to finish, with its I/O injected: the kernel's pipe is a real pipe,
the prefix a scratch directory, the process, the tracer and journald are fakes that record.

What a user would notice: the entry journald gets (as whom), the core file on disk and who may
read it, the spool when journald is away, and the rate limit in a crash loop.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import zstandard

from drkonqi_lite_collector import storage
from drkonqi_lite_collector.journal import entry
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.proc import ProcInfo
from drkonqi_lite_collector.journal.schema import CoreMissing, Field
from drkonqi_lite_collector.stage import argv
from drkonqi_lite_collector.worker import handler
from drkonqi_lite_collector.worker.procinfo import Identity, Process
from tests.conftest import need

if TYPE_CHECKING:
    from collections.abc import Callable

    from drkonqi_lite_collector.worker.corestream import Tap

CORE = b"\x7fELF" + os.urandom(200_000)
AUXV = struct.pack("<4Q", 23, 0, 0, 0)  # AT_SECURE 0, AT_NULL: not set-uid
STATUS = b"Name:\tcrasher\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n"


class FakeProcess(Process):
    """The crashed process as /proc showed it, proven (or not) to be the kernel's."""

    def __init__(self, verified: bool = True, comm: bytes = b"crasher") -> None:
        self.pid, self.pidfd, self.dirfd, self.from_kernel = 1234, None, None, True
        self._own_pidfd, self.problem = False, ""
        self.verified = verified
        self.comm = comm

    def exe_link(self) -> bytes | None:
        return b"/usr/bin/crasher"

    def capture(self, tid: int | None = None, *, light: bool = False) -> ProcInfo:
        return ProcInfo(
            comm=self.comm, exe=b"/usr/bin/crasher", status=STATUS, auxv=AUXV, environ=b"A=1\0"
        )

    def verify(self, info: ProcInfo, uid: int, gid: int) -> Identity:
        return Identity(self.verified, "pidfd" if self.verified else "pidfd refers to PID 1")

    def pidfd_id(self) -> int | None:
        return 42


class FakeTap:
    def __init__(self) -> None:
        self.fed = 0
        self.siginfo: tuple[int, int] | None = (11, 1)

    def feed(self, chunk: bytes | memoryview) -> None:
        self.fed += len(chunk)


TRACE = entry.Trace(
    "ok",
    "Stack trace of thread 1234:\n#0  0x0000000000401000 main (crasher)",
    "/usr/bin/crasher 0123abcd",
    "crasher",
    "1.0",
)
#: A module mapped from a file the user cannot read: their own trace leaves it out.
HIDDEN_MODULE_TRACE = TRACE.replace(
    text=TRACE.text + "\n#1  0x00007f0000001000 secret (/opt/private/libsecret.so)",
    modules=TRACE.modules + "\n/opt/private/libsecret.so 4567ef",
    for_user=TRACE,
)


class FakeTracer:
    def __init__(self, trace: entry.Trace = TRACE, journald: Journald | None = None) -> None:
        self.taps: list[FakeTap] = []
        self.trace = trace
        self.journald = journald
        #: For each after_delivery() call, how many entries `journald` had by then.
        self.after: list[int] = []

    def start(self, proc_dir_fd: int | None) -> FakeTap:
        self.taps.append(FakeTap())
        return self.taps[-1]

    def finish(
        self, tap: Tap, timeout: float, hide: Callable[[int, str, bool], bool] | None = None
    ) -> entry.Trace:
        assert isinstance(tap, FakeTap)
        assert tap.fed == len(CORE), "the tracer saw the whole core before finishing"
        assert hide is not None, "the engine is told which modules the user may not read"
        return self.trace

    def after_delivery(self) -> None:
        self.after.append(len(self.journald.entries) if self.journald else -1)


class Journald:
    """Records what would reach journald, by sender; `down` makes every send fail."""

    def __init__(self) -> None:
        self.entries: list[tuple[dict[str, bytes], journal.Credentials]] = []
        self.down = False

    def __call__(self, payload: bytes | int, creds: journal.Credentials, wakeup: str | None) -> int:
        if self.down:
            return errno.ECONNREFUSED
        self.entries.append((dict(journal.entry_fields(journal.payload_bytes(payload))), creds))
        return 0


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    need(os.geteuid() == 0, "the state directory must be root's (storage.open_dir)")
    tmp_path.chmod(0o755)
    return tmp_path


def _crash(
    prefix: Path,
    send: Journald,
    *,
    process: Process | None = None,
    tracer: FakeTracer | None = None,
    dumpable: int = 1,
    config: str = "",
) -> tuple[int, int]:
    """Run handle() on CORE through a real pipe; returns (exit status, notify_sent calls)."""
    if config:
        conf = prefix / "etc/drkonqi-lite/collector.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"[Coredump]\n{config}\n")
    args = argv.parse(
        [f"--prefix={prefix}", "1234", "1000", "1000", "11", "1795675000", "0", "host",
         str(dumpable)]
    )  # fmt: skip
    r, w = os.pipe()

    def write() -> None:
        os.write(w, CORE)
        os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    sent: list[int] = []
    try:
        status = handler.handle(
            args, r, tracer, lambda: sent.append(1), process or FakeProcess(), send=send
        )
    finally:
        writer.join()
        os.close(r)
    return status, len(sent)


def _readable_by(path: Path, uid: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return storage.acl_grants_read(fd, uid)
    finally:
        os.close(fd)


def test_a_crash_becomes_one_entry_in_the_users_journal_and_a_core_they_can_read(
    prefix: Path,
) -> None:
    send = Journald()
    tracer = FakeTracer(journald=send)
    assert _crash(prefix, send, tracer=tracer) == (0, 1)
    assert tracer.after == [1], "the tracer's deferred work (the dpkg index) after the send"
    ((fields, creds),) = send.entries
    assert (creds.uid, creds.gid) == (1000, 1000), "sent as the crashing user: their journal"
    assert fields[Field.COMM] == b"crasher"
    assert fields[Field.IDENTITY] == b"verified"
    assert fields[Field.PIDFDID] == b"42"
    assert fields[Field.CODE] == b"1"
    assert fields[Field.STACKTRACE] == b"ok"
    assert fields[Field.PACKAGE_NAME] == b"crasher"
    assert Field.PACKAGE_JSON not in fields
    assert fields[Field.CORE_SIZE] == str(len(CORE)).encode()
    assert fields[Field.MESSAGE].startswith(b"Process 1234 (crasher) of user 1000 dumped core.")
    assert b"#0  0x0000000000401000 main" in fields[Field.MESSAGE]
    assert Field.CORE_MISSING not in fields
    assert Field.RESTRICTED not in fields
    core = Path(fields[Field.FILENAME].decode())
    assert core.parent == prefix / "var/lib/drkonqi-lite/coredump"
    assert zstandard.ZstdDecompressor().stream_reader(core.open("rb")).read() == CORE
    assert _readable_by(core, 1000), "the user's read ACL"


def test_an_unproven_identity_records_kernel_facts_only(prefix: Path) -> None:
    send = Journald()
    assert _crash(prefix, send, process=FakeProcess(verified=False, comm=b"other")) == (0, 1)
    ((fields, _),) = send.entries
    assert fields[Field.IDENTITY] == b"unverified"
    assert Field.COMM not in fields
    assert Field.EXE not in fields
    assert Field.ENVIRON not in fields
    assert Field.PIDFDID not in fields
    assert b"(n/a)" in fields[Field.MESSAGE], "never named after whoever now holds the PID"
    assert fields[Field.RESTRICTED] == b"1"
    assert b".n/a." not in fields[Field.FILENAME]
    assert b"other" not in fields[Field.FILENAME]


def test_journald_away_spools_the_entry_and_the_next_crash_sends_it_first(prefix: Path) -> None:
    send = Journald()
    send.down = True
    assert _crash(prefix, send) == (0, 1), "spooled counts as recorded"
    spool = prefix / "var/lib/drkonqi-lite/spool"
    assert len([p for p in spool.iterdir() if p.name.endswith(".entry")]) == 1
    send.down = False
    assert _crash(prefix, send) == (0, 1)
    (replayed, _), (new, _) = send.entries
    assert Field.SPOOLED_AT in replayed, "the spooled entry first: order is kept"
    assert Field.SPOOLED_AT not in new
    assert not [p for p in spool.iterdir() if p.name.endswith(".entry")]


def test_a_crash_loop_keeps_counting_but_stores_no_more_cores(prefix: Path) -> None:
    send = Journald()
    for _ in range(2):
        _crash(prefix, send, tracer=FakeTracer(), config="RateLimitBurst=1")
    first, second = (fields for fields, _ in send.entries)
    assert (first[Field.CRASH_COUNT], second[Field.CRASH_COUNT]) == (b"1", b"2")
    assert Field.FILENAME in first
    assert Field.FILENAME not in second
    assert second[Field.CORE_MISSING] == CoreMissing.RATE_LIMITED.encode()
    assert second[Field.STACKTRACE] == b"none: rate limited"


@pytest.mark.parametrize(
    ("storage", "missing"), [("none", CoreMissing.STORAGE_NONE), ("journal", None)]
)
def test_storage_none_says_so_and_storage_journal_carries_the_core(
    prefix: Path, storage: str, missing: str | None
) -> None:
    send = Journald()
    _crash(prefix, send, config=f"Storage={storage}")
    ((fields, _),) = send.entries
    assert Field.FILENAME not in fields
    assert fields.get(Field.CORE_MISSING) == (missing.encode() if missing else None)
    assert fields.get(Field.COREDUMP) == (None if missing else CORE)


def test_a_restricted_crash_gives_the_user_only_what_proc_shows_them(prefix: Path) -> None:
    send = Journald()
    assert _crash(prefix, send, tracer=FakeTracer(), dumpable=2) == (0, 1)
    (full, admin), (mine, user) = send.entries
    assert (user.uid, admin.uid) == (1000, handler.sender_credentials(0, 0).uid)
    assert full[Field.EXE] == b"/usr/bin/crasher"
    assert Field.EXE not in mine
    assert b"#0" in full[Field.MESSAGE]
    assert b"#0" not in mine[Field.MESSAGE]
    assert full[Field.RESTRICTED] == mine[Field.RESTRICTED] == b"1"
    core = Path(full[Field.FILENAME].decode())
    assert not _readable_by(core, 1000), "a restricted core is root's alone"


def test_a_module_the_user_cannot_read_stays_out_of_their_entry(prefix: Path) -> None:
    send = Journald()
    assert _crash(prefix, send, tracer=FakeTracer(HIDDEN_MODULE_TRACE)) == (0, 1)
    (full, admin), (mine, user) = send.entries
    assert (user.uid, admin.uid) == (1000, handler.sender_credentials(0, 0).uid)
    assert b"libsecret" in full[Field.MESSAGE]
    assert b"libsecret" in full[Field.MODULES]
    assert b"libsecret" not in mine[Field.MESSAGE]
    assert b"libsecret" not in mine[Field.MODULES]
    assert Field.MODULES.encode() in mine[Field.WITHHELD].split()
    assert mine[Field.EXE] == b"/usr/bin/crasher", "the rest of the user's entry is whole"
