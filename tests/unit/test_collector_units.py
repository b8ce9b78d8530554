"""Fast tests of the collector's pure parts: argv, configuration, field formats, the native
journal protocol, the spool's ordering, the rate limiter and vacuuming (on a scratch dir)."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from drkonqi_lite_collector import config, storage
from drkonqi_lite_collector.journal import entry, spool
from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal.schema import (
    core_filename,
    escape_name,
    format_frame,
    parse_core_filename,
)
from drkonqi_lite_collector.stage import argv
from drkonqi_lite_collector.worker import ratelimit

KERNEL = ["1234", "1000", "1000", "11", "1795675000", "18446744073709551615", "host", "1"]


def test_argv_parses_the_kernel_specifiers() -> None:
    args = argv.parse([*KERNEL, "3"])
    assert (args.pid, args.uid, args.gid, args.signal) == (1234, 1000, 1000, 11)
    assert args.timestamp_us == 1795675000 * 1_000_000
    assert args.rlimit == 2**64 - 1
    assert (args.hostname, args.dumpable, args.pidfd, args.prefix) == ("host", 1, 3, "/")
    assert args.signal_name == "SIGSEGV"
    assert argv.parse(["--prefix=/tmp/x", *KERNEL]).prefix == "/tmp/x"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (KERNEL[:7], "expected 8 or 9"),
        (["x1", *KERNEL[1:]], "PID is not a number"),
        (["0", *KERNEL[1:]], "PID out of range"),
        ([*KERNEL[:3], "99", *KERNEL[4:]], "signal out of range"),
        ([*KERNEL[:7], "3"], "dump mode out of range"),
        ([*KERNEL, "0"], "pidfd out of range"),
        (["--prefix=relative", *KERNEL], "must be absolute"),
        (["١٢٣", *KERNEL[1:]], "not a number"),  # Arabic-Indic digits pass str.isdigit()
    ],
)
def test_argv_rejects_malformed_input_with_a_clear_reason(bad: list[str], words: str) -> None:
    with pytest.raises(argv.ArgvError, match=words):
        argv.parse(bad)


@pytest.mark.parametrize(
    ("hostname", "recorded"),
    [
        ("a/b", "a/b"),
        ("evil\nhost", "evil\\nhost"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("back\\slash", "back\\\\slash"),
        ("bad\udcffutf8", "bad\\xffutf8"),
        ("", ""),
    ],
)
def test_any_hostname_is_kept_escaped(hostname: str, recorded: str) -> None:
    """Any user sets any hostname in their own UTS namespace: never a reason to drop a crash."""
    assert argv.parse([*KERNEL[:6], hostname, *KERNEL[7:]]).hostname == recorded


def test_signal_names_like_systemd() -> None:
    assert argv.signal_name(6) == "SIGABRT"
    assert argv.signal_name(29) == "SIGIO"
    assert argv.signal_name(35) == "SIGRTMIN+1"


def test_config_files_and_drop_ins(tmp_path: Path) -> None:
    paths = config.Paths(str(tmp_path))
    Path(paths.config_dir).mkdir(parents=True)
    Path(paths.config_file).write_text(
        "[Coredump]\nStorage=journal\nCompress=no\nProcessSizeMax=1G\nMaxUse=100M\n"
    )
    Path(paths.config_dir, "10-a.conf").write_text(
        "[Coredump]\nCompressLevel=7\nMaxUse=5M\nCompressThreads=0\n"
    )
    Path(paths.config_dir, "20-b.conf").write_text("[Coredump]\nKeepFree=bogus\nWhat=1\n")
    Path(paths.config_dir, "ignored.txt").write_text("[Coredump]\nStorage=none\n")
    cfg = config.load(paths)
    assert cfg.storage == config.Storage.JOURNAL
    assert cfg.compress is False
    assert cfg.compress_level == 7
    assert cfg.compress_threads == 0
    assert cfg.process_size_max == 1024**3
    assert cfg.max_use == 5 * 1024**2, "later drop-ins win"
    assert cfg.keep_free is None
    assert any("KeepFree=bogus" in w for w in cfg.warnings)
    assert any("unknown key What=" in w for w in cfg.warnings)


def test_config_defaults_without_files(tmp_path: Path) -> None:
    cfg = config.load(config.Paths(str(tmp_path)))
    assert (cfg.storage, cfg.compress, cfg.compress_level) == ("external", True, 3)
    assert cfg.warnings == ()


def test_escape_name_keeps_files_inside_the_storage_dir() -> None:
    name = core_filename(b"../../etc/passwd \n\x1b[31m\xe2\x80\xae", 1000, "0" * 32, 7, 9)
    assert "/" not in name
    assert ".." not in name.split(".", 1)[1].split(".0")[0]
    assert name.isascii()
    assert name.isprintable()
    assert parse_core_filename(name) == (1000, 7, 9)
    assert escape_name(b"a.b c") == "a\\x2eb\\x20c"


def test_frame_format_matches_systemd() -> None:
    assert format_frame(0, 0x7F00DEADBEEF, "raise", "libc.so.6", 0x3C41B) == (
        "#0  0x00007f00deadbeef raise (libc.so.6 + 0x3c41b)"
    )
    assert format_frame(12, 0x1000, None, None, None) == "#12 0x0000000000001000 n/a (n/a + 0x0)"


def test_cgroup_units_like_systemd() -> None:
    units = entry.cgroup_units(
        b"/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.kde.kate-1234.scope"
    )
    assert units == {
        "COREDUMP_SLICE": b"user-1000.slice",
        "COREDUMP_UNIT": b"user@1000.service",
        "COREDUMP_OWNER_UID": b"1000",
        "COREDUMP_USER_UNIT": b"app-org.kde.kate-1234.scope",
    }
    session = entry.cgroup_units(b"/user.slice/user-1000.slice/session-3.scope")
    assert session["COREDUMP_SESSION"] == b"3"
    assert session["COREDUMP_OWNER_UID"] == b"1000"
    system = entry.cgroup_units(b"/system.slice/cups.service")
    assert system == {"COREDUMP_SLICE": b"system.slice", "COREDUMP_UNIT": b"cups.service"}


def test_cmdline_and_environ_keep_bytes() -> None:
    assert entry.cmdline_text(b"a\0b c\0\xff\0") == b"a b c \xff"
    assert entry.environ_text(b"A=1\0B=x\ny\0") == b"A=1\nB=x\ny"


def test_native_protocol_round_trips_binary_fields() -> None:
    fields: list[tuple[str, journal.FieldValue]] = [
        ("MESSAGE", "line1\nline2"),
        ("COREDUMP_COMM", b"a\x00b\xff"),
        ("X", 42),
    ]
    payload = journal.serialize(fields)
    assert payload.startswith(b"MESSAGE\n" + struct.pack("<Q", 11) + b"line1\nline2\n")
    assert journal.entry_fields(payload) == {
        "MESSAGE": b"line1\nline2",
        "COREDUMP_COMM": b"a\x00b\xff",
        "X": b"42",
    }


def test_big_payload_goes_to_a_sealed_memfd(tmp_path: Path) -> None:
    blob_file = tmp_path / "core"
    blob_file.write_bytes(os.urandom(300_000))
    fd = os.open(blob_file, os.O_RDONLY)
    try:
        payload = journal.build_payload([("MESSAGE", "x"), ("COREDUMP", journal.Blob(fd, 300_000))])
    finally:
        os.close(fd)
    assert isinstance(payload, int)
    try:
        data = journal.payload_bytes(payload)
        assert journal.entry_fields(data)["COREDUMP"] == blob_file.read_bytes()
        with pytest.raises(PermissionError):
            os.write(payload, b"x")  # sealed: journald requires it
    finally:
        os.close(payload)


def _dir_fd(path: Path) -> int:
    path.mkdir(exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_spool_replays_in_order_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    fd = _dir_fd(tmp_path / "spool")
    try:
        creds = journal.Credentials(os.getuid(), os.getgid())
        for i in range(3):
            spool.spool(fd, journal.serialize([("MESSAGE", f"entry {i}")]), creds)
        sent: list[bytes] = []

        def flaky(payload: bytes, who: journal.Credentials) -> int:
            assert who == creds
            if len(sent) == 2:
                return 111  # ECONNREFUSED: journald went away again
            sent.append(journal.entry_fields(payload)["MESSAGE"])
            return 0

        assert spool.replay(fd, flaky) == (2, 1)
        assert sent == [b"entry 0", b"entry 1"]

        def working(payload: bytes, who: journal.Credentials) -> int:
            sent.append(journal.entry_fields(payload)["MESSAGE"])
            return 0

        assert spool.replay(fd, working) == (1, 0)
        assert sent[-1] == b"entry 2"
        assert spool.pending(fd) == []
        assert "DRKONQI_LITE_SPOOLED_AT" in journal.entry_fields(
            journal.serialize([]) + b"DRKONQI_LITE_SPOOLED_AT=1\n"
        )
    finally:
        os.close(fd)


def test_rate_limit_counts_every_crash_and_limits_after_the_burst(tmp_path: Path) -> None:
    fd = _dir_fd(tmp_path / "rl")
    try:
        verdicts = [
            ratelimit.check(fd, 1000, b"/usr/bin/loop", 60, 3, now=100.0 + i) for i in range(5)
        ]
        assert [v.crashes for v in verdicts] == [1, 2, 3, 4, 5]
        assert [v.limited for v in verdicts] == [False, False, False, True, True]
        other = ratelimit.check(fd, 1000, b"/usr/bin/other", 60, 3, now=104.0)
        assert other.crashes == 1, "programs are counted separately"
        later = ratelimit.check(fd, 1000, b"/usr/bin/loop", 60, 3, now=200.0)
        assert (later.crashes, later.limited) == (1, False), "a new window starts"
    finally:
        os.close(fd)


def test_rate_limit_per_user_is_not_dodged_by_renamed_copies(tmp_path: Path) -> None:
    fd = _dir_fd(tmp_path / "rl")
    try:
        verdicts = [
            ratelimit.check(fd, 1000, f"/tmp/copy{i}".encode(), 60, 3, 100.0 + i, user_burst=6)
            for i in range(10)
        ]
        assert [v.crashes for v in verdicts] == [1] * 10, "each copy is a new program"
        assert [v.limited for v in verdicts] == [False] * 6 + [True] * 4
        assert all(v.by_user for v in verdicts[6:])
        other = ratelimit.check(fd, 1001, b"/tmp/copy0", 60, 3, 110.0, user_burst=6)
        assert not other.limited, "another user's crashes are their own"
    finally:
        os.close(fd)


def test_rate_limit_one_root_daemons_loop_leaves_the_other_daemons_their_cores(
    tmp_path: Path,
) -> None:
    fd = _dir_fd(tmp_path / "rl")
    try:
        for i in range(10):
            ratelimit.check(fd, 0, b"/usr/sbin/looping", 60, 3, 100.0 + i, user_burst=6)
        daemons = [
            ratelimit.check(fd, 0, f"/usr/sbin/daemon{i}".encode(), 60, 3, 111.0, user_burst=6)
            for i in range(8)
        ]
        assert [v.limited for v in daemons] == [False] * 8, "root's daemons share no budget"
        assert ratelimit.check(fd, 0, b"/usr/sbin/looping", 60, 3, 112.0, user_burst=6).limited
    finally:
        os.close(fd)


def test_vacuum_deletes_oldest_of_the_heaviest_user_and_keeps_the_new_core(tmp_path: Path) -> None:
    fd = _dir_fd(tmp_path / "cores")
    try:
        boot = "a" * 32
        names = []
        for uid, ts in [(1000, 1), (1000, 2), (1000, 3), (2000, 4)]:
            name = core_filename(b"x", uid, boot, ts, ts)
            (tmp_path / "cores" / name).write_bytes(os.urandom(64 * 1024))
            names.append(name)
        cfg = config.Config(max_use=200 * 1024, keep_free=0)  # 256 KiB used: one must go
        deleted = storage.vacuum(fd, cfg, keep=frozenset({names[0]}))
        assert deleted == [names[1]], "uid 1000 uses most; its oldest not-kept core goes"
        assert sorted(p.name for p in (tmp_path / "cores").iterdir()) == sorted(
            [names[0], names[2], names[3]]
        )
    finally:
        os.close(fd)


def test_tempfile_is_invisible_until_committed(tmp_path: Path) -> None:
    fd = _dir_fd(tmp_path / "d")
    try:
        with storage.TempFile(fd) as tmp:
            os.write(tmp.fd, b"core")
            assert list((tmp_path / "d").iterdir()) == []
            tmp.commit("final")
        assert (tmp_path / "d" / "final").read_bytes() == b"core"
        with storage.TempFile(fd) as tmp, pytest.raises(FileExistsError):
            tmp.commit("final")  # never replaces an existing file
    finally:
        os.close(fd)


def test_rate_limit_state_of_quiet_programs_is_removed(tmp_path: Path) -> None:
    """One state file per (user, program) must not pile up for years of crashes."""
    fd = _dir_fd(tmp_path / "rl")
    try:
        ratelimit.check(fd, 1000, b"/usr/bin/old", 60, 3)
        ratelimit.check(fd, 1000, b"/usr/bin/recent", 60, 3)
        (old,) = [p for p in (tmp_path / "rl").iterdir() if ".old." in p.name]
        hour_ago = time.time() - 3600
        os.utime(old, (hour_ago, hour_ago))  # its last crash was an hour ago: 60 windows
        ratelimit.check(fd, 1000, b"/usr/bin/new", 60, 3)  # a new key: housekeeping runs
        files = [p.name for p in (tmp_path / "rl").iterdir()]
        assert sorted(n.split(".")[1] for n in files if "." in n) == ["new", "recent"]
        assert "1000" in files, "the user's own count, updated by every crash, stays"
    finally:
        os.close(fd)


def test_bounded_entry_cuts_and_names_what_it_cut() -> None:
    fields: list[tuple[str, journal.FieldValue | journal.Blob]] = [
        ("A", b"x" * 100),
        ("B", "y" * 10),
        ("C", 5),
        ("D", b"z" * 40),
    ]
    out = entry.bounded(fields, field_max=50, total_max=1000)
    assert dict(out)["A"] == b"x" * 50
    assert dict(out)["DRKONQI_LITE_TRUNCATED_FIELDS"] == "A"
    assert ("C", 5) in out
    assert entry.bounded(fields, field_max=1000, total_max=1000) == fields


def test_bounded_entry_keeps_the_whole_under_its_limit() -> None:
    fields: list[tuple[str, journal.FieldValue | journal.Blob]] = [
        (f"F{i}", bytes(64 * 1024)) for i in range(40)
    ]
    out = entry.bounded(fields, field_max=64 * 1024, total_max=1024 * 1024)
    assert sum(len(v) for _, v in out if isinstance(v, bytes)) <= 1024 * 1024
    assert len(str(dict(out)["DRKONQI_LITE_TRUNCATED_FIELDS"]).split()) == 40


def test_printed_fields_escape_reversibly() -> None:
    """SECURITY.md 14: what coredumpctl prints is printable UTF-8, and the bytes come back."""
    from drkonqi_lite_collector.journal.schema import escape_comm, escape_printable, unescape  # noqa: PLC0415

    hostile = [
        b"a/../)\n\x1b\xff )x",
        b"caf\xc3\xa9 \\x41 \\",
        b"\xc2\x9b[2J\x7f\xe2\x80\xae",
        b"a123",
    ]
    for raw in hostile:
        for escaped in (escape_comm(raw), escape_printable(raw)):
            assert escaped.isprintable(), escaped
            assert unescape(escaped) == raw
    assert escape_comm(b"caf\xc3\xa9\x1b") == "caf\\303\\251\\033"  # systemd's cellescape
    assert escape_printable(b"/home/jos\xc3\xa9/app") == "/home/jos\u00e9/app"  # stays usable
    assert escape_printable(b"a\nb", keep="\n") == "a\nb"
