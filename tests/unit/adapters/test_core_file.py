"""The core probe: only regular files inside the storage are readable cores (SECURITY.md 3)."""

from __future__ import annotations

import os
from pathlib import Path

from drkonqi_lite.adapters.core_file import probe_core
from drkonqi_lite.domain.trust import CoreProbe, TrustPolicy


def test_core_probe_inside_storage_only(tmp_path: Path) -> None:
    storage = tmp_path / "coredump"
    storage.mkdir()
    policy = TrustPolicy(own_uid=1000, trusted_senders=frozenset({0}), storage_dirs=(str(storage),))
    (storage / "core.ok").write_bytes(b"x")
    (storage / "core.link").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("secret")
    os.mkfifo(storage / "core.fifo")
    assert probe_core(policy, f"{storage}/core.ok") is CoreProbe.READABLE
    assert probe_core(policy, f"{storage}/core.link") is CoreProbe.NOT_A_FILE
    assert probe_core(policy, f"{storage}/core.fifo") is CoreProbe.NOT_A_FILE
    assert probe_core(policy, f"{storage}/core.gone") is CoreProbe.ABSENT
    assert probe_core(policy, str(tmp_path / "secret")) is CoreProbe.OUTSIDE_STORAGE
    assert probe_core(policy, f"{storage}/../secret") is CoreProbe.OUTSIDE_STORAGE
