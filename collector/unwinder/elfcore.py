"""Reading the head of an ELF core file and deciding which bytes the unwinder needs.

The kernel writes a core (fs/binfmt_elf.c elf_core_dump) as: the ELF header, the program
headers, the PT_NOTE segment (NT_PRSTATUS per thread, NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE,
register sets), then each PT_LOAD segment's bytes page-aligned, in address order.  So once the
head (header, program headers, notes) has streamed past, we know every thread's stack pointer
and can pick, before the segments arrive, the few ranges an unwinder reads: the stack near each
SP, small segments (vDSO, .data/.bss with the dynamic linker's link map), and the first page of
big ones (the ELF header the kernel dumps for file-backed text mappings, with the build-id).

Everything here parses hostile bytes: the ELF structures through elf.py (bounded and
checked there), the notes' descriptors here, each length checked before it is read; nothing
here does I/O.
"""

from __future__ import annotations

import bisect
import struct

from drkonqi_lite_collector.unwinder.elf import (
    PT_LOAD,
    PT_NOTE,
    ElfFormatError,
    Header,
    Note,
    Segment,
    parse_header,
    segments,
)

ET_CORE = 4
PF_X = 1
PF_W = 2
PF_R = 4
NT_PRSTATUS = 1
NT_FILE = 0x46494C45
NT_SIGINFO = 0x53494749
EM_X86_64 = 62
EM_AARCH64 = 183

#: No kernel core has a head this big; a larger claim is garbage and ends the head parsing.
HEAD_MAX = 16 * 1024 * 1024
#: The unwinder reads this much of a thread's stack above its SP (callers' frames) ...
STACK_ABOVE_SP = 1024 * 1024
#: ... and this much below it (the x86-64 red zone is 128 bytes; leave room for a bad SP).
STACK_BELOW_SP = 16 * 1024
#: The top of the main thread's stack is kept even when no SP points into it: a signal
#: handler running on an alternate stack leaves the interrupted frames there.
MAIN_STACK_TOP = 256 * 1024
#: ... and so is the top of every other thread stack (a writable mapping right above a
#: PROT_NONE guard page, as pthread_create makes them) that no SP points into: a worker
#: thread's handler on its own alternate stack leaves the interrupted frames there.
THREAD_STACK_TOP = 128 * 1024
#: Segments up to this size are kept whole (vDSO, .data/.bss, the link map, small heaps).
SMALL_SEGMENT = 256 * 1024
PAGE = 4096
#: Notes beyond this size are cut (64 threads of x86-64 register sets take ~200 KiB).
NOTES_MAX = 8 * 1024 * 1024
#: Total bytes kept besides the head, whatever the core's size (the collector's RSS bound).
KEEP_BUDGET = 32 * 1024 * 1024


class CoreFormatError(ElfFormatError):
    """The bytes are an ELF file, but not a core."""


class CoreHead:
    """What the head of a core says: its segments and how far the head reaches
    (`head_end`: the file offset where the last PT_NOTE ends; the head is [0, head_end))."""

    __slots__ = ("head_end", "machine", "segments")

    def __init__(self, machine: int, segments: tuple[Segment, ...], head_end: int) -> None:
        self.machine = machine
        self.segments = segments
        self.head_end = head_end


def core_header(buf: bytes | bytearray) -> Header:
    """The ELF header of a core (its program headers within HEAD_MAX); ElfFormatError else."""
    header = parse_header(buf, HEAD_MAX)
    if header.type != ET_CORE:
        raise CoreFormatError("not a core file")
    return header


def parse_head(buf: bytes | bytearray) -> CoreHead:
    """Parse the ELF header and program headers; `buf` must hold them."""
    header = core_header(buf)
    segs = segments(buf, header)
    head_end = header.ph_end
    for seg in segs:
        if seg.type == PT_NOTE and seg.end <= HEAD_MAX:
            head_end = max(head_end, seg.end)
    return CoreHead(header.machine, segs, head_end)


def thread_sps(machine: int, notes: list[Note]) -> list[int]:
    """The stack pointer of every thread, from its NT_PRSTATUS (struct elf_prstatus)."""
    # pr_reg starts at byte 112 of elf_prstatus on 64-bit Linux. x86-64 user_regs_struct has
    # rsp at index 19; aarch64 user_pt_regs has sp at index 31.
    index = {EM_X86_64: 19, EM_AARCH64: 31}.get(machine)
    if index is None:
        return []
    sps = []
    for name, ntype, desc in notes:
        if name == b"CORE" and ntype == NT_PRSTATUS and len(desc) >= 112 + (index + 1) * 8:
            (sp,) = struct.unpack_from("<Q", desc, 112 + index * 8)
            sps.append(sp)
    return sps


def siginfo(notes: list[Note]) -> tuple[int, int] | None:
    """(si_signo, si_code) of the fatal signal from the one NT_SIGINFO note, the dumping
    thread's siginfo_t (fs/binfmt_elf.c fill_siginfo_note: si_signo, si_errno, si_code)."""
    for name, ntype, desc in notes:
        if name == b"CORE" and ntype == NT_SIGINFO and len(desc) >= 12:
            signo, _errno, code = struct.unpack_from("<iii", desc, 0)
            return signo, code
    return None


def file_ranges(notes: list[Note]) -> list[tuple[int, int]]:
    """[start, end) of every file-backed mapping listed in the NT_FILE note."""
    for name, ntype, desc in notes:
        if name == b"CORE" and ntype == NT_FILE and len(desc) >= 16:
            count, _ = struct.unpack_from("<QQ", desc, 0)
            count = min(count, (len(desc) - 16) // 24)
            return [
                (start, end)
                for start, end, _ in struct.iter_unpack("<QQQ", desc[16 : 16 + count * 24])
            ]
    return []


def _clip(seg: Segment, lo_va: int, hi_va: int) -> tuple[int, int] | None:
    """The file range of the segment's bytes between two addresses, or None when empty."""
    lo = max(lo_va, seg.vaddr) - seg.vaddr
    hi = min(hi_va, seg.vaddr + seg.filesz) - seg.vaddr
    if hi <= lo:
        return None
    return seg.offset + lo, seg.offset + hi


def keep_plan(
    head: CoreHead,
    sps: list[int],
    files: list[tuple[int, int]] | None = None,
    budget: int = KEEP_BUDGET,
) -> list[tuple[int, int]]:
    """Sorted, merged file ranges [start, end) to keep after the head, within `budget` bytes.

    Priorities: notes that lie outside the head (gdb's gcore writes them last), the stack
    windows around every SP and the top of the main stack, then the first page of every
    segment, then whole small segments, until the budget is spent.  Without SPs (notes not
    seen yet), the top of every big writable segment stands in for the stack windows: stacks
    grow down, so the live frames of a thread are near the top of its stack mapping.
    """
    loads = [s for s in head.segments if s.type == PT_LOAD and s.filesz > 0]
    wanted = [
        (s.offset, s.offset + min(s.filesz, NOTES_MAX))
        for s in head.segments
        if s.type == PT_NOTE and s.offset >= head.head_end
    ]
    wanted += _stack_windows(head, loads, sps)
    wanted.extend((s.offset, s.offset + min(s.filesz, PAGE)) for s in loads)
    # Small segments whole, except read-only file-backed ones (text): libdwfl would take a
    # complete in-core image of a module over the real file, and lose its symbol table.  Without
    # NT_FILE (notes not seen yet), only writable segments count as safe.
    mapped = {start for start, _ in files or []}
    wanted.extend(
        (s.offset, s.offset + s.filesz)
        for s in loads
        if s.filesz <= SMALL_SEGMENT
        and (s.flags & PF_W or (files is not None and s.vaddr not in mapped))
    )
    return _within_budget(wanted, head.head_end, budget)


def _stack_windows(head: CoreHead, loads: list[Segment], sps: list[int]) -> list[tuple[int, int]]:
    """The windows around every SP, the top of the main stack (or, without SPs, of every big
    writable segment), and the top of each thread stack no SP points into."""
    wanted: list[tuple[int, int]] = []
    # By address, searched per SP: a user chooses ~65,000 mappings and thousands of threads,
    # and SPs x segments comparisons would hold the crashed process for seconds.
    ordered = sorted(loads, key=lambda s: s.vaddr)
    starts = [s.vaddr for s in ordered]
    for sp in sps:
        seg = _containing(ordered, starts, sp)
        if seg is not None:
            r = _clip(seg, sp - STACK_BELOW_SP, sp + STACK_ABOVE_SP)
            if r:
                wanted.append(r)
    writable = [s for s in loads if s.flags & PF_W and s.vaddr < 1 << 47]
    tops = writable if not sps else [max(writable, key=lambda s: s.vaddr)] if writable else []
    for seg in tops:
        r = _clip(
            seg,
            seg.vaddr + seg.filesz - (STACK_ABOVE_SP if not sps else MAIN_STACK_TOP),
            seg.vaddr + seg.filesz,
        )
        if r:
            wanted.append(r)
    for seg in _unclaimed_thread_stacks(head, sps):
        top = seg.vaddr + seg.filesz
        r = _clip(seg, top - THREAD_STACK_TOP, top)
        if r:
            wanted.append(r)
    return wanted


def _containing(ordered: list[Segment], starts: list[int], address: int) -> Segment | None:
    """The segment whose memory holds `address`, of segments sorted by address (a kernel
    core's are disjoint: the last one starting at or below the address is the only candidate)."""
    i = bisect.bisect_right(starts, address) - 1
    if i >= 0 and address < ordered[i].vaddr + ordered[i].memsz:
        return ordered[i]
    return None


def _within_budget(
    wanted: list[tuple[int, int]], head_end: int, budget: int
) -> list[tuple[int, int]]:
    """The wanted ranges past the head, in priority order, while they fit in `budget`."""
    kept: list[tuple[int, int]] = []
    spent = 0
    for want_start, end in wanted:
        start = max(want_start, head_end)
        if end <= start:
            continue
        size = end - start
        if spent + size > budget:
            continue
        kept.append((start, end))
        spent += size
    return merge(kept)


def load_ranges(head: CoreHead, limit: int) -> list[tuple[int, int]] | None:
    """Every segment's file range — the whole core: an interpreter's state is on its heap and in
    its data, and pointers to it in read-only RELRO pages — or None beyond `limit` bytes."""
    ranges = [
        (max(s.offset, head.head_end), s.offset + s.filesz)
        for s in head.segments
        if s.type == PT_LOAD and s.filesz > 0
    ]
    if sum(end - start for start, end in ranges) > limit:
        return None
    return [(start, end) for start, end in ranges if end > start]


def _unclaimed_thread_stacks(head: CoreHead, sps: list[int]) -> list[Segment]:
    """Writable segments right above a guard page (no access at all) holding no thread's SP:
    the stacks of threads now running a signal handler elsewhere (or of exited threads that
    glibc keeps for reuse). Without SPs there is nothing to tell them apart from."""
    if not sps:
        return []
    ordered = sorted((s for s in head.segments if s.type == PT_LOAD), key=lambda s: s.vaddr)
    pairs = [(ordered[i - 1], ordered[i]) for i in range(1, len(ordered))]
    sorted_sps = sorted(sps)
    return [
        seg
        for below, seg in pairs
        if seg.flags & PF_W
        and seg.filesz > 0
        and below.flags & (PF_R | PF_W | PF_X) == 0
        and below.vaddr + below.memsz == seg.vaddr
        and not _any_within(sorted_sps, seg.vaddr, seg.vaddr + seg.memsz)
    ]


def _any_within(sorted_values: list[int], lo: int, hi: int) -> bool:
    """Whether a value of the sorted list lies in [lo, hi)."""
    i = bisect.bisect_left(sorted_values, lo)
    return i < len(sorted_values) and sorted_values[i] < hi


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching ranges."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out
