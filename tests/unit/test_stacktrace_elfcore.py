"""CoreTap and the core-head parser on small cores built byte by byte (milliseconds, no tools).

The synthetic core has the kernel's layout: ELF header, program headers, a PT_NOTE with one
NT_PRSTATUS (whose SP points into a big stack segment) and an NT_FILE, then the segments.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal.schema import format_frame
from drkonqi_lite_collector.unwinder import elfcore
from drkonqi_lite_collector.unwinder.coretap import CoreTap
from drkonqi_lite_collector.unwinder.package import _find_note, dpkg_owner
from drkonqi_lite_collector.unwinder.sandbox import encode_json

STACK_VA = 0x7FFF_0000_0000
STACK_SIZE = 8 * 1024 * 1024
TEXT_VA = 0x5555_0000_0000


def pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def build_core(sp: int) -> tuple[bytes, int]:
    """A core with a text segment (64 KiB, file-backed) and an 8 MiB stack; returns (core, off)."""
    prstatus = bytearray(112 + 27 * 8 + 8)
    struct.pack_into("<Q", prstatus, 112 + 19 * 8, sp)
    nt_file = struct.pack("<QQ", 1, 4096) + struct.pack("<QQQ", TEXT_VA, TEXT_VA + 65536, 0)
    notes = note(b"CORE", 1, bytes(prstatus)) + note(b"CORE", elfcore.NT_FILE, nt_file + b"/x\0")
    phnum = 3
    notes_off = 64 + phnum * 56
    text_off = (notes_off + len(notes) + 4095) & ~4095
    stack_off = text_off + 65536
    ehdr = bytearray(64)
    ehdr[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHI", ehdr, 16, elfcore.ET_CORE, elfcore.EM_X86_64, 1)
    struct.pack_into("<Q", ehdr, 32, 64)
    struct.pack_into("<HHHH", ehdr, 52, 64, 56, phnum, 64)
    phdrs = struct.pack("<IIQQQQQQ", elfcore.PT_NOTE, 4, notes_off, 0, 0, len(notes), 0, 1)
    phdrs += struct.pack("<IIQQQQQQ", elfcore.PT_LOAD, 5, text_off, TEXT_VA, 0, 65536, 65536, 4096)
    phdrs += struct.pack(
        "<IIQQQQQQ", elfcore.PT_LOAD, 6, stack_off, STACK_VA, 0, STACK_SIZE, STACK_SIZE, 4096
    )
    body = bytearray(stack_off + STACK_SIZE)
    body[: 64 + len(phdrs)] = ehdr + phdrs
    body[notes_off : notes_off + len(notes)] = notes
    # Recognisable content: every 8-byte word holds its own file offset.
    for off in range(text_off, len(body), 4096):
        body[off : off + 8] = struct.pack("<Q", off)
    return bytes(body), stack_off


def image(tap: CoreTap) -> bytes:
    tap.finish()
    return os.pread(tap.fd, tap.size, 0)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536, 1 << 20, 1 << 30])
def test_tap_keeps_the_stack_window_whatever_the_chunking(chunk: int) -> None:
    sp = STACK_VA + STACK_SIZE - 200 * 1024
    core, stack_off = build_core(sp)
    data = core
    with CoreTap() as tap:
        step = chunk if chunk > 64 else 1 << 16  # tiny chunks only through the head
        pos = 0
        while pos < len(data):
            n = chunk if pos < 8192 else step
            tap.feed(memoryview(data)[pos : pos + n])
            pos += n
        img = image(tap)
        assert len(img) == len(core)
        assert tap.error is None
        assert not tap.truncated
        sp_off = stack_off + (sp - STACK_VA)
        # The stack near SP and everything above it (the callers' frames) is there...
        window = slice(sp_off - 4096, stack_off + STACK_SIZE)
        assert img[window] == core[window]
        # ... the far bottom of the 8 MiB stack is not: bounded memory whatever the core.
        assert img[stack_off + 4096 : stack_off + 8192] == bytes(4096)
        assert tap.kept < 2 * 1024 * 1024


def test_text_segment_keeps_only_its_first_page() -> None:
    core, stack_off = build_core(STACK_VA + STACK_SIZE - 4096)
    text_off = stack_off - 65536
    with CoreTap() as tap:
        tap.feed(core)
        img = image(tap)
    assert img[text_off : text_off + 4096] == core[text_off : text_off + 4096]
    assert img[text_off + 4096 : stack_off] == bytes(65536 - 4096)


def test_truncated_core_is_marked() -> None:
    core, stack_off = build_core(STACK_VA + STACK_SIZE - 4096)
    with CoreTap() as tap:
        tap.feed(core[: stack_off + 100])
        tap.finish()
        assert tap.truncated
    with CoreTap() as tap:
        tap.feed(core[:100])  # cut inside the program headers
        tap.finish()
        assert tap.truncated


@pytest.mark.parametrize("garbage", [b"", b"\x7fELF", b"MZ" + bytes(100), os.urandom(4096)])
def test_not_a_core(garbage: bytes) -> None:
    with CoreTap() as tap:
        tap.feed(garbage)
        tap.finish()
        assert tap.error is not None or tap.truncated


def test_plan_budget_is_bounded_for_many_threads() -> None:
    segs = tuple(
        elfcore.Segment(
            elfcore.PT_LOAD, 6, 4096 * (1 + i * 2048), 0x1000_0000 * i, 8 << 20, 8 << 20
        )
        for i in range(1, 200)
    )
    head = elfcore.CoreHead(elfcore.EM_X86_64, segs, 4096)
    sps = [s.vaddr + (4 << 20) for s in segs]
    plan = elfcore.keep_plan(head, sps)
    assert sum(e - s for s, e in plan) <= elfcore.KEEP_BUDGET


def test_hostile_program_header_count_is_rejected() -> None:
    hdr = bytearray(64)
    hdr[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HH", hdr, 16, elfcore.ET_CORE, elfcore.EM_X86_64)
    struct.pack_into("<Q", hdr, 32, 1 << 40)
    struct.pack_into("<HH", hdr, 54, 56, 65535)
    with pytest.raises(elfcore.CoreFormatError):
        elfcore.parse_ehdr(hdr)


def test_package_note_parsing() -> None:
    meta = {"type": "deb", "name": "demo", "version": "1.0-1"}
    data = note(b"FDO", 0xCAFE1A7E, json.dumps(meta).encode() + b"\0")
    assert _find_note(note(b"GNU", 3, bytes(20)) + data) == meta
    assert _find_note(note(b"FDO", 0xCAFE1A7E, b"[1, 2]")) is None
    assert _find_note(note(b"FDO", 0xCAFE1A7E, b"\xff{")) is None
    assert _find_note(data[:-8]) is None


def test_dpkg_owner_reads_the_database(tmp_path: Path) -> None:
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "other.list").write_text("/.\n/usr\n/usr/bin/other\n")
    (tmp_path / "info" / "coreutils.list").write_text("/.\n/bin\n/bin/sleep\n/bin/true\n")
    (tmp_path / "status").write_text(
        "Package: other\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n"
        "Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 9.1-1\nDescription: x\n multi-line\n"
    )
    # usr-merge: the process maps /usr/bin/sleep, dpkg knows /bin/sleep.
    assert dpkg_owner("/usr/bin/sleep", str(tmp_path)) == {
        "type": "deb",
        "name": "coreutils",
        "version": "9.1-1",
        "architecture": "amd64",
    }
    assert dpkg_owner("/usr/bin/nothing", str(tmp_path)) is None
    assert dpkg_owner("/usr/bin/sleep", str(tmp_path / "missing")) is None


def test_frame_format_is_systemds() -> None:
    # elf-util.c: "#%-2u 0x%016" PRIx64 " %s (%s + 0x%" PRIx64 ")\n", strna() for NULL.
    assert format_frame(0, 0x7F00, "raise", "libc.so.6", 0x3E8EC) == (
        "#0  0x0000000000007f00 raise (libc.so.6 + 0x3e8ec)"
    )
    assert format_frame(12, 0x10, None, None, None) == "#12 0x0000000000000010 n/a (n/a + 0x0)"


def test_child_report_encoding_round_trips_hostile_text() -> None:
    """The unwinder child's reports: the real json module must read back exactly what was
    meant, whatever symbol names a hostile ELF file holds."""
    nasty = 'a"b\\c\nd\x00e\u202ef\udcff</script>{"fatal":1}'
    event = {"thread": 7, "frames": [[1, nasty, None, 0], (2, "ok", "libc.so.6", 16)],
             "packages": {"/bin/x": {"name": nasty}}, "done": True, "cut": False}
    line = encode_json(event)
    assert "\n" not in line
    decoded = json.loads(line)
    assert decoded["frames"][0][1] == nasty
    assert decoded["frames"][1] == [2, "ok", "libc.so.6", 16]
    assert decoded["packages"]["/bin/x"]["name"] == nasty
    assert decoded["done"] is True
    assert decoded["cut"] is False
