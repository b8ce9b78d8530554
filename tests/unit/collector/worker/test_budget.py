"""The storage budget of one core, enforced while it streams (collector/worker/budget.py)."""

from __future__ import annotations

import io
import os

import pytest
import zstandard

from drkonqi_lite_collector.worker import budget, zstd

MiB = 1024**2


@pytest.mark.parametrize("data", [os.urandom(8 * MiB), bytes(64 * MiB)], ids=["random", "zeros"])
def test_compressed_core_stays_within_its_budget_and_stays_a_valid_frame(data: bytes) -> None:
    out = io.BytesIO()
    params = zstd.ZstdCompressionParameters.from_level(3, threads=1, job_size=2 * MiB)
    writer = zstd.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False)
    sink = budget.BudgetedSink(writer.write, out.tell, MiB, lambda: writer.flush(zstd.FLUSH_BLOCK))
    fed = 0
    view = memoryview(data)
    for off in range(0, len(data), MiB):
        chunk = view[off : off + MiB]
        if sink(chunk) is False:
            break
        fed += len(chunk)
    writer.flush(zstd.FLUSH_FRAME)
    assert out.tell() <= MiB
    restored = zstandard.ZstdDecompressor().decompressobj().decompress(out.getvalue())
    assert data.startswith(restored)
    if data[0] == 0:
        assert len(restored) == len(data), "what compresses well is not cut"
    else:
        assert len(restored) > MiB // 2, "cut near the budget, not long before it"


def test_uncompressed_core_is_cut_at_the_budget() -> None:
    out = io.BytesIO()
    sink = budget.BudgetedSink(out.write, out.tell, 300_000)
    assert sink(memoryview(bytes(200_000)))
    assert sink(memoryview(bytes(200_000))) is False
    assert out.tell() == 300_000
