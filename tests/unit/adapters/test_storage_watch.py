"""The storage watch: woken only by this user's new cores."""

from __future__ import annotations

from pathlib import Path


def test_storage_watch_reacts_only_to_this_users_cores(tmp_path: Path) -> None:
    from drkonqi_lite.adapters.storage_watch import StorageWatch  # noqa: PLC0415

    boot = "0123456789abcdef0123456789abcdef"
    watch = StorageWatch(1000)
    watch.watch([str(tmp_path), str(tmp_path / "missing")])
    try:
        assert watch.watched == [str(tmp_path)]
        assert not watch.drain()
        (tmp_path / f"core.kate.1001.{boot}.42.1700000000000000.zst").touch()
        (tmp_path / "unrelated").touch()
        assert not watch.drain()  # another user's core, and a name that is not a core
        (tmp_path / f"core.kate.1000.{boot}.43.1700000000000000.zst").touch()
        assert watch.drain()
        assert not watch.drain()
    finally:
        watch.close()
