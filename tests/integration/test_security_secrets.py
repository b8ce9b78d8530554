"""SECURITY.md 9: another user cannot list your crashes.

Core names carry the program, uid, pid and time (DESIGN.md §2.2), so the storage directory is
searchable but not listable (0711): real crashes through core_pattern, then the kernel is asked,
as other users and as the crashing user, what they may do with the directory and the core. The
crashing user still opens their own core by the name in COREDUMP_FILENAME, and the app's own
probe, run as that user, still finds it.
"""

from __future__ import annotations

import stat
from pathlib import Path

from drkonqi_lite.adapters.core_file import probe_core
from drkonqi_lite.domain.trust import CoreProbe, TrustPolicy
from tests.integration.access import allowed_as, listable_as, readable_as
from tests.integration.harness import Harness
from tests.integration.journal_read import field, wait_entry_since
from tests.integration.processes import crash_self

USER = 1000
OTHER = 4243


def test_other_users_cannot_list_the_stored_crashes(
    t0: float, installed: Harness, crashme: Path
) -> None:
    # A directory left listable (an older version, or made by hand) is tightened by the
    # collector itself: the promise does not hang on tmpfiles.d having run.
    installed.storage.mkdir(parents=True)
    installed.storage.chmod(0o755)
    pid = crash_self([str(crashme)], USER, USER)
    core = Path(field(wait_entry_since(t0, COREDUMP_PID=pid), "COREDUMP_FILENAME").decode())
    assert core.parent == installed.storage
    assert stat.S_IMODE(installed.storage.stat().st_mode) == 0o711
    assert not listable_as(installed.storage, OTHER, OTHER), "another user lists the crashes"
    assert not listable_as(installed.storage, USER, USER)
    assert not readable_as(core, OTHER, OTHER)
    assert readable_as(core, USER, USER), "the user cannot open their own core by its name"

    policy = TrustPolicy(
        own_uid=USER, trusted_senders=frozenset({0}), storage_dirs=(str(core.parent),)
    )

    def app_finds_the_core() -> None:
        if probe_core(policy, str(core)) is not CoreProbe.READABLE:
            raise PermissionError("the app's probe did not find the core readable")

    assert allowed_as(USER, USER, app_finds_the_core, "probing the core")


def test_a_new_storage_directory_is_not_listable(
    t0: float, installed: Harness, crashme: Path
) -> None:
    pid = crash_self([str(crashme)], USER, USER)
    wait_entry_since(t0, COREDUMP_PID=pid)
    assert stat.S_IMODE(installed.storage.stat().st_mode) == 0o711
    assert not listable_as(installed.storage, OTHER, OTHER)
