"""The spool: entries journald could not take, replayed in order, on a scratch directory."""

from __future__ import annotations

import os
from pathlib import Path

from drkonqi_lite_collector.journal import native as journal
from drkonqi_lite_collector.journal import spool
from tests.unit.collector.scratch import dir_fd


def test_spool_replays_in_order_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    fd = dir_fd(tmp_path / "spool")
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
