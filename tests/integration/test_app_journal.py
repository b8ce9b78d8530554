"""JournalSource on a journal file built with systemd-journal-remote (no journald needed):
trust filtering, malformed entries skipped, and the catch-up split at the saved cursor."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from drkonqi_lite.adapters.journal import JournalSource
from drkonqi_lite.domain.crash import REALTIME, TRUSTED_UID
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite_collector.journal.schema import Field
from tests.conftest import need
from tests.entries import BOOT, entry

REMOTE = Path("/lib/systemd/systemd-journal-remote")
UID = 4321


def _export(entries: list[dict[str, str]]) -> bytes:
    out = []
    for n, fields in enumerate(entries):
        lines = [f"__MONOTONIC_TIMESTAMP={n + 1}", f"_BOOT_ID={BOOT}"]
        lines += [f"{k}={v}" for k, v in fields.items()]
        out.append("\n".join(lines) + "\n\n")
    return "".join(out).encode()


#: The fields of a crash kept here: journal export format has no multi-line values.
_KEPT = (REALTIME, TRUSTED_UID, Field.MESSAGE_ID, Field.MESSAGE, Field.PID, Field.UID,
         Field.SIGNAL, Field.COMM, Field.TIMESTAMP)  # fmt: skip


def _crash(n: int, ts: int, *, sender: int = UID, uid: int = UID) -> dict[str, str]:
    full = entry(n, uid, sender, ts, comm=f"p{n}")
    full[Field.MESSAGE] = f"Process {n} (p{n}) of user {uid} dumped core."
    full[REALTIME] = str(ts)
    return {k: str(full[k]) for k in _KEPT}


def _build(tmp_path: Path, entries: list[dict[str, str]]) -> Path:
    need(REMOTE.exists(), "systemd-journal-remote missing (apt-get install systemd-journal-remote)")
    out = tmp_path / "j"
    out.mkdir()
    subprocess.run([str(REMOTE), "-o", str(out / "test.journal"), "-"], input=_export(entries),
                   check=True, capture_output=True)  # fmt: skip
    return out


def test_trust_malformed_and_cursor_split(tmp_path: Path) -> None:
    now = int(time.time() * 1e6)
    entries = [_crash(n, now - 10_000_000 + n * 1000) for n in range(1, 6)]
    entries.insert(2, _crash(90, now - 9_000_000, sender=999))  # forged by another uid
    entries.insert(3, _crash(91, now - 8_999_000, uid=999, sender=0))  # another user's crash
    bad = _crash(92, now - 8_998_000)
    bad["COREDUMP_PID"] = "not-a-pid"
    entries.insert(4, bad)
    entries.insert(0, {"__REALTIME_TIMESTAMP": str(now - 11_000_000), "_UID": str(UID),
                       "MESSAGE": "noise"})  # fmt: skip
    directory = _build(tmp_path, entries)
    policy = TrustPolicy.for_user(UID, frozenset())

    source = JournalSource(policy, path=str(directory))
    handled, new = source.history(0, "", 0)
    assert handled == []
    assert [c.pid for c in new] == [1, 2, 3, 4, 5]
    assert source.skipped == 3
    third_cursor, third_us = new[2].cursor, new[2].timestamp_us
    source.close()

    source = JournalSource(policy, path=str(directory))
    handled, new = source.history(0, third_cursor, third_us)
    assert [c.pid for c in handled] == [1, 2, 3]
    assert [c.pid for c in new] == [4, 5]
    source.close()

    # The cursor's entry is gone (vacuumed): its realtime decides.
    source = JournalSource(policy, path=str(directory))
    handled, new = source.history(0, "s=gone;i=1", third_us)
    assert [c.pid for c in new] == [4, 5]
    source.close()

    # Bounded: only the last `since` matter.
    source = JournalSource(policy, path=str(directory))
    handled, new = source.history(now - 10_000_000 + 3500, "", 0)
    assert [c.pid for c in handled + new] == [4, 5]
    source.close()
