"""The rate limit: every crash counted, cores limited after the burst, per program and per user."""

from __future__ import annotations

import os
import time
from pathlib import Path

from drkonqi_lite_collector.worker import ratelimit
from tests.unit.collector.scratch import dir_fd


def test_rate_limit_counts_every_crash_and_limits_after_the_burst(tmp_path: Path) -> None:
    fd = dir_fd(tmp_path / "rl")
    try:
        verdicts = [
            ratelimit.check(fd, 1000, b"/usr/bin/loop", 60, 3, now=100.0 + i) for i in range(5)
        ]
        assert [v.crashes for v in verdicts] == [1, 2, 3, 4, 5]
        assert [v.limited for v in verdicts] == [False, False, False, True, True]
        other = ratelimit.check(fd, 1000, b"/usr/bin/other", 60, 3, now=104.0)
        assert other.crashes == 1, "programs are counted separately"
        later = ratelimit.check(fd, 1000, b"/usr/bin/loop", 60, 3, now=200.0)
        assert (later.crashes, later.limited) == (1, False), "a new window starts"
    finally:
        os.close(fd)


def test_rate_limit_per_user_is_not_dodged_by_renamed_copies(tmp_path: Path) -> None:
    fd = dir_fd(tmp_path / "rl")
    try:
        verdicts = [
            ratelimit.check(fd, 1000, f"/tmp/copy{i}".encode(), 60, 3, 100.0 + i, user_burst=6)
            for i in range(10)
        ]
        assert [v.crashes for v in verdicts] == [1] * 10, "each copy is a new program"
        assert [v.limited for v in verdicts] == [False] * 6 + [True] * 4
        assert all(v.by_user for v in verdicts[6:])
        other = ratelimit.check(fd, 1001, b"/tmp/copy0", 60, 3, 110.0, user_burst=6)
        assert not other.limited, "another user's crashes are their own"
    finally:
        os.close(fd)


def test_rate_limit_one_root_daemons_loop_leaves_the_other_daemons_their_cores(
    tmp_path: Path,
) -> None:
    fd = dir_fd(tmp_path / "rl")
    try:
        for i in range(10):
            ratelimit.check(fd, 0, b"/usr/sbin/looping", 60, 3, 100.0 + i, user_burst=6)
        daemons = [
            ratelimit.check(fd, 0, f"/usr/sbin/daemon{i}".encode(), 60, 3, 111.0, user_burst=6)
            for i in range(8)
        ]
        assert [v.limited for v in daemons] == [False] * 8, "root's daemons share no budget"
        assert ratelimit.check(fd, 0, b"/usr/sbin/looping", 60, 3, 112.0, user_burst=6).limited
    finally:
        os.close(fd)


def test_rate_limit_state_of_quiet_programs_is_removed(tmp_path: Path) -> None:
    """One state file per (user, program) must not pile up for years of crashes."""
    fd = dir_fd(tmp_path / "rl")
    try:
        ratelimit.check(fd, 1000, b"/usr/bin/old", 60, 3)
        ratelimit.check(fd, 1000, b"/usr/bin/recent", 60, 3)
        (old,) = [p for p in (tmp_path / "rl").iterdir() if ".old." in p.name]
        hour_ago = time.time() - 3600
        os.utime(old, (hour_ago, hour_ago))  # its last crash was an hour ago: 60 windows
        ratelimit.check(fd, 1000, b"/usr/bin/new", 60, 3)  # a new key: housekeeping runs
        files = [p.name for p in (tmp_path / "rl").iterdir()]
        assert sorted(n.split(".")[1] for n in files if "." in n) == ["new", "recent"]
        assert "1000" in files, "the user's own count, updated by every crash, stays"
    finally:
        os.close(fd)
