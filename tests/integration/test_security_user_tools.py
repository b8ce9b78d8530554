"""SECURITY.md 15: the user's own tools on a crashed program's data.

What the crashed program (or any other uid) wrote must not make the app spend the user's memory
or write through the user's files: an untrusted entry is judged on a few bytes per field before
anything large is read, and settings.ini is replaced through an unpredictable temporary name
that no planted symlink redirects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from drkonqi_lite.adapters.state_store import StateStore
from tests.integration.desktop import coredump_fields, send_entry_as

USER = 4244
SYSTEM_UID = 990
BIG = 100 << 20

#: Reads this test's entries with the app's JournalSource, as root for USER's policy, and says
#: how much the resident peak grew and what it saw.
READER = """
import json, resource, sys
from drkonqi_lite.adapters.journal import JournalSource
from drkonqi_lite.domain.trust import TrustPolicy
since, user = int(sys.argv[1]), int(sys.argv[2])
source = JournalSource(TrustPolicy.for_user(user, frozenset()), probe=lambda p, f: None)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
source.seek_realtime(since)
sizes = {}
for entry in source.raw_entries():
    sender = entry.get("_UID")
    # Nothing but _UID is read of the untrusted one (so it cannot carry our tag).
    mine = sender == "990" or entry.get("DKL_TEST") == "user-tools"
    if int(entry["__REALTIME_TIMESTAMP"]) >= since and mine:
        sizes[sender] = len(entry.get("BIG", ""))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_kib": grown, "sizes": sizes}))
"""


def test_an_untrusted_entry_is_judged_before_its_big_field_is_read(journald: None) -> None:
    since = time.time_ns() // 1000
    # A system uid files into the system journal, which admins' apps read: not a trusted sender.
    send_entry_as(SYSTEM_UID, coredump_fields(USER, BIG="A" * BIG, DKL_TEST="user-tools"))
    # The same from root, a trusted sender: its 2 MiB field is read in full.
    send_entry_as(0, coredump_fields(USER, BIG="B" * (2 << 20), DKL_TEST="user-tools"))
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run(
            [sys.executable, "-c", READER, str(since), str(USER)],
            capture_output=True,
            text=True,
            check=True,
        )
        seen = json.loads(out.stdout)
        if len(seen["sizes"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen["sizes"] == {str(SYSTEM_UID): 0, "0": 2 << 20}, seen
    # The 100 MiB value was never decompressed into the reader's memory.
    assert seen["grown_kib"] < 32 * 1024, seen


def test_settings_are_not_written_through_a_planted_symlink(tmp_path: Path) -> None:
    config, state = tmp_path / "config", tmp_path / "state"
    config.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    # The temporary name an attacker could predict (it was .settings.ini.PID) points at it.
    (config / f".settings.ini.{os.getpid()}").symlink_to(victim)
    store = StateStore(state, config)
    store.save_setting("debuginfod", "yes")
    assert victim.read_text() == "precious\n"
    assert "debuginfod = yes" in (config / "settings.ini").read_text()
    assert store.settings().debuginfod is True
