"""CoreTap: keeps the parts of a streaming core that the unwinder needs, in a sparse memfd.

The collector streams the core once, from the kernel's pipe to the compressed file.  The tap
sees each chunk in order and copies only the planned ranges (elfcore.keep_plan) into a memfd at
their original offsets.  The memfd is then a sparse, same-layout image of the core: libelf and
libdw open it exactly as they would open the full core, while holes read as zeros and cost no
memory.  It must stay cheap on a 500 MiB core: per chunk it does a few comparisons and copies
nothing it does not keep.  It never raises for bad input: a core it cannot read is simply
`usable == False` with a reason.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # no typing/dataclasses/pathlib at run time: see handler.py
if TYPE_CHECKING:
    from types import TracebackType

    from drkonqi_lite_collector.unwinder.elf import Note


class CoreTap:
    """Sees the core bytes as they stream from the kernel pipe to storage, in order, once."""

    def __init__(self, keep_all: int = 0) -> None:
        """`keep_all` > 0: keep the whole core when its segments add up to at most that many
        bytes (a Python process: python_core.py reads its heap)."""
        self._fd = os.memfd_create("drkonqi-lite-core", os.MFD_CLOEXEC)
        self._keep_all = keep_all
        #: Every byte of the core is in the image (only when `keep_all` asked for it).
        self.complete = False
        self._head = bytearray()
        #: How many head bytes we need before the plan can be made (grows as we learn more).
        self._need = 64
        self._plan: list[tuple[int, int]] | None = None
        self._next_range = 0
        #: Bytes fed so far: the size of the core as the collector saw it.
        self.size = 0
        #: Why the core cannot be analysed, or None.
        self.error: str | None = None
        self.kept = 0
        #: Where the last segment ends according to the program headers (0 until known).
        self.expected_size = 0
        #: (si_signo, si_code) from the core's NT_SIGINFO note, once the head was read.
        self.siginfo: tuple[int, int] | None = None

    @property
    def fd(self) -> int:
        """The sparse core image (read it only after the last feed)."""
        return self._fd

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Take the next chunk of the core."""
        mv = memoryview(chunk).cast("B")
        pos = self.size
        self.size += len(mv)
        if self.error is not None or not mv:
            return
        if self._plan is None:
            used = self._feed_head(mv)
            if not self._planned():
                return
            mv = mv[used:]
            pos += used
        self._feed_body(mv, pos)

    def _planned(self) -> bool:
        """The head has streamed past and the plan is made (a method: _feed_head sets it)."""
        return self._plan is not None and self.error is None

    def _feed_head(self, mv: memoryview) -> int:
        """Accumulate the head; make the plan once it is complete. Returns bytes consumed."""
        used = 0
        while self._plan is None and self.error is None and used < len(mv):
            take = min(len(mv) - used, self._need - len(self._head))
            self._head += mv[used : used + take]
            used += take
            if len(self._head) < self._need:
                break
            self._advance_head()
        return used

    def _advance_head(self) -> None:
        # The ELF readers load once the core streams, after the unwinder's fork: the tap is
        # made before it, while the crashed process waits (start-up time, see handler.py).
        from drkonqi_lite_collector.unwinder import elf, elfcore  # noqa: PLC0415

        try:
            if self._need == 64:
                self._need = max(64, elfcore.core_header(self._head).ph_end)
                if self._need > 64:
                    return
            head = elfcore.parse_head(self._head)
            if head.head_end > len(self._head):
                self._need = head.head_end
                return
        except elf.ElfFormatError as e:
            self.error = str(e)
            return
        notes: list[Note] = []
        for seg in head.segments:
            if seg.type == elf.PT_NOTE and seg.end <= len(self._head):
                room = elf.NOTES_COUNT_MAX - len(notes)  # over all PT_NOTE segments
                notes += elf.iter_notes(self._head[seg.offset : seg.end], room)
        self.expected_size = max((s.offset + s.filesz for s in head.segments), default=0)
        sps = elfcore.thread_sps(head.machine, notes)
        self.siginfo = elfcore.siginfo(notes)
        files = elfcore.file_ranges(notes) if sps else None
        del notes  # release the memoryviews into self._head before writing it out
        self._plan = elfcore.keep_plan(head, sps, files)
        if self._keep_all:
            extra = elfcore.load_ranges(head, self._keep_all)
            if extra is not None:
                self._plan = elfcore.merge(self._plan + extra)
                self.complete = True
        os.pwrite(self._fd, self._head, 0)
        self.kept = len(self._head)
        self._head = bytearray()

    def _feed_body(self, mv: memoryview, pos: int) -> None:
        plan = self._plan
        if plan is None:
            return
        end = pos + len(mv)
        i = self._next_range
        while i < len(plan) and plan[i][0] < end:
            start, stop = plan[i]
            lo, hi = max(start, pos), min(stop, end)
            if hi > lo:
                os.pwrite(self._fd, mv[lo - pos : hi - pos], lo)
                self.kept += hi - lo
            if stop > end:
                break
            i += 1
        self._next_range = i

    @property
    def truncated(self) -> bool:
        """The stream ended before the end its program headers promise (ProcessSizeMax)."""
        return self.size < self.expected_size or (self._plan is None and self.error is None)

    def finish(self) -> None:
        """Give the image the core's full length (holes where nothing was kept)."""
        if self._plan is None and self._head and self.error is None:
            # The core ended inside its head (truncated): keep what came.
            os.pwrite(self._fd, self._head, 0)
            self._head = bytearray()
        os.ftruncate(self._fd, self.size)

    def close(self) -> None:
        """Release the memfd."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> CoreTap:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
