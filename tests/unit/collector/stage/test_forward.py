"""The crashed process's handles, opened in one place for the stage and the worker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from drkonqi_lite_collector.stage.forward import open_process_fds


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def test_a_live_process_gets_a_pidfd_and_its_proc_directory(
    child: subprocess.Popen[bytes],
) -> None:
    pidfd, dirfd, problem = open_process_fds(child.pid)
    try:
        assert problem == ""
        assert pidfd is not None
        assert dirfd is not None
        with open(f"/proc/self/fdinfo/{pidfd}", "rb") as f:
            assert f"Pid:\t{child.pid}\n".encode() in f.read()
        status = os.open("status", os.O_RDONLY, dir_fd=dirfd)
        try:
            assert f"\nPid:\t{child.pid}\n".encode() in os.read(status, 4096)
        finally:
            os.close(status)
    finally:
        _close(pidfd, dirfd)


def test_a_gone_process_gets_no_handles_and_a_reason() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfd, dirfd, problem = open_process_fds(gone.pid)
    _close(pidfd, dirfd)
    assert (pidfd, dirfd) == (None, None)
    assert problem.startswith(f"pidfd_open({gone.pid}): ")


def test_handles_already_open_are_kept_not_opened_again(child: subprocess.Popen[bytes]) -> None:
    """The service adopts what the stage opened: it must not swap in a later /proc/PID."""
    given_pidfd = os.pidfd_open(child.pid)
    given_dirfd = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert open_process_fds(child.pid, given_pidfd, given_dirfd) == (
            given_pidfd,
            given_dirfd,
            "",
        )
    finally:
        _close(given_pidfd, given_dirfd)
