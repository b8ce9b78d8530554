"""The contract's formats: core file names, stack frames, the escaping of printed fields."""

from __future__ import annotations

from drkonqi_lite_collector.journal.schema import (
    core_filename,
    escape_comm,
    escape_name,
    escape_printable,
    format_frame,
    parse_core_filename,
    unescape,
)


def test_escape_name_keeps_files_inside_the_storage_dir() -> None:
    name = core_filename(b"../../etc/passwd \n\x1b[31m\xe2\x80\xae", 1000, "0" * 32, 7, 9)
    assert "/" not in name
    assert ".." not in name.split(".", 1)[1].split(".0")[0]
    assert name.isascii()
    assert name.isprintable()
    assert parse_core_filename(name) == (1000, 7, 9)
    assert escape_name(b"a.b c") == "a\\x2eb\\x20c"


def test_frame_format_matches_systemd() -> None:
    # elf-util.c: "#%-2u 0x%016" PRIx64 " %s (%s + 0x%" PRIx64 ")\n", strna() for NULL.
    assert format_frame(0, 0x7F00DEADBEEF, "raise", "libc.so.6", 0x3C41B) == (
        "#0  0x00007f00deadbeef raise (libc.so.6 + 0x3c41b)"
    )
    assert format_frame(12, 0x1000, None, None, None) == "#12 0x0000000000001000 n/a (n/a + 0x0)"


def test_printed_fields_escape_reversibly() -> None:
    """SECURITY.md 14: what coredumpctl prints is printable UTF-8, and the bytes come back."""

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
