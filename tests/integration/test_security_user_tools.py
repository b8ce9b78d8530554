"""SECURITY.md 15: the user's own tools on a crashed program's data.

What the crashed program (or any other uid) wrote must not make the user's gdb run anything,
the app spend the user's memory, or the app write through the user's files: a library dlopen()ed
by a name that walks out of gdb's auto-load directory with `..`, carrying an inline
.debug_gdb_scripts script and objfile scripts beside it, crashes through the real collector and
the app's full backtrace runs as the user; an untrusted entry is judged by its sender before
its 100 MiB field is read; settings.ini is replaced through an unpredictable temporary name that
no planted symlink redirects. (py-bt still working: tests/integration/test_gdb_full_backtrace.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from drkonqi_lite.adapters.state_store import StateStore
from tests.conftest import which
from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, send_entry_as
from tests.integration.harness import Harness
from tests.integration.journal_read import wait_entry_since
from tests.integration.processes import crash_self

app_desktop = dk.app_desktop

USER = 4244
SYSTEM_UID = 990
BIG = 100 << 20

#: Reads this test's entries with the app's JournalSource, as root for USER's policy, and says
#: how much the resident peak grew and what it saw.
READER = """
import json, sys, tracemalloc
from drkonqi_lite.adapters.journal import JournalSource
from drkonqi_lite.domain.trust import TrustPolicy
since, user = int(sys.argv[1]), int(sys.argv[2])
source = JournalSource(TrustPolicy.for_user(user, frozenset()), probe=lambda p, f: None)
source.seek_realtime(since)
# What the reader copies into the app's memory (sd-journal's own maps of a big shared journal
# are not the question): the peak of Python's allocations while the entries are read.
tracemalloc.start()
sizes = {}
for entry in source.raw_entries():
    sender = entry.get("_UID")
    # Nothing but _UID is read of the untrusted one (so it cannot carry our tag).
    mine = sender == "990" or entry.get("DKL_TEST") == "user-tools"
    if int(entry["__REALTIME_TIMESTAMP"]) >= since and mine:
        sizes[sender] = len(entry.get("BIG", ""))
grown = tracemalloc.get_traced_memory()[1] // 1024
print(json.dumps({"grown_kib": grown, "sizes": sizes}))
"""


def test_an_untrusted_entry_is_judged_before_its_big_field_is_read(journald: None) -> None:
    since = time.time_ns() // 1000
    # A system uid files into the system journal, which admins' apps read: not a trusted sender.
    send_entry_as(SYSTEM_UID, live_entry(USER, BIG="A" * BIG, DKL_TEST="user-tools"))
    # The same from root, a trusted sender: its 2 MiB field is read in full.
    send_entry_as(0, live_entry(USER, BIG="B" * (2 << 20), DKL_TEST="user-tools"))
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


#: A library whose .debug_gdb_scripts section holds an inline Python script (gdb's format:
#: byte 4, a name line, the script, NUL) that would write MARKER.
EVIL_LIB_C = r"""
asm(".pushsection \".debug_gdb_scripts\", \"MS\",@progbits,1\n"
    ".byte 4\n"
    ".ascii \"gdb.inlined-script\\n\"\n"
    ".ascii \"open('" MARKER "', 'w').write('inline script ran')\\n\"\n"
    ".byte 0\n"
    ".popsection\n");
int evil_function(void) { return 42; }
"""
#: dlopen()s the library by a name inside gdb's auto-load directory that walks out of it.
LOADER_C = r"""
#include <dlfcn.h>
int main(void) {
    if (!dlopen("/usr/share/gdb/auto-load/../../../.." LIBRARY, RTLD_NOW)) return 3;
    *(volatile int *)0 = 0;
    return 1;
}
"""
#: The full backtrace, run by the app's own code as the user, of crash PID.
BACKTRACE = """
import os, sys
from drkonqi_lite.adapters.gdb import FullBacktraceJob, GdbOptions
from drkonqi_lite.adapters.journal import JournalSource, trust_policy_for
from drkonqi_lite.domain.trust import TrustPolicy
storage, since, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
trusted = trust_policy_for(os.getuid()).trusted_senders
policy = TrustPolicy(own_uid=os.getuid(), trusted_senders=trusted, storage_dirs=(storage,))
source = JournalSource(policy)
source.seek_realtime(since)
crash = next(c for c in source.read() if c.pid == pid)
result = FullBacktraceJob(crash, policy, GdbOptions()).run()
print(result.outcome)
print(result.text)
"""


def test_a_library_named_through_dotdot_runs_nothing_in_the_users_gdb(
    harness: Harness, core_pattern: None, app_desktop: Desktop
) -> None:
    which("gcc")
    which("gdb")
    user = app_desktop.user(with_display=False)
    lib = harness.prefix / "lib"
    lib.mkdir(mode=0o755)
    marker = Path(f"/tmp/dkl-gdb-marker-{os.getpid()}")
    markers = [marker, marker.with_suffix(".py"), marker.with_suffix(".gdb")]
    evil = lib / "evil.so"
    (lib / "evil.c").write_text(EVIL_LIB_C)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(evil),
                    str(lib / "evil.c")], check=True)  # fmt: skip
    # gdb's per-objfile scripts next to the library, and a gdbinit in its directory.
    (lib / "evil.so-gdb.py").write_text(f"open('{markers[1]}', 'w').write('ran')\n")
    (lib / "evil.so-gdb.gdb").write_text(f"shell touch {markers[2]}\n")
    (lib / ".gdbinit").write_text(f"shell touch {markers[2]}\n")
    (lib / "loader.c").write_text(LOADER_C)
    loader = lib / "loader"
    subprocess.run(["gcc", f'-DLIBRARY="{evil}"', "-o", str(loader), str(lib / "loader.c")],
                   check=True)  # fmt: skip
    harness.install()
    since = time.time_ns() // 1000
    try:
        pid = crash_self([str(loader)], user.uid, user.uid)
        wait_entry_since(since / 1e6, COREDUMP_PID=pid)
        out = user.run([sys.executable, "-c", BACKTRACE, str(harness.storage), str(since),
                        str(pid)], timeout=180)  # fmt: skip
        assert out.returncode == 0, out.stderr
        outcome, _, text = out.stdout.partition("\n")
        assert outcome == "done", out.stdout
        assert "in main ()" in text, text  # the backtrace itself still works
        assert [m for m in markers if m.exists()] == [], "gdb ran what the crashed program named"
    finally:
        for m in markers:
            m.unlink(missing_ok=True)
