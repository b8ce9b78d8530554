"""The wake-up poke is sent by root into a user's runtime directory: only to the user's own
socket, reached without following links (collector/journal/native.py poke)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal import native as journal


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "wakeup"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    sock.bind(str(path))
    try:
        yield path, sock
    finally:
        sock.close()


def _received(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(64)
    except BlockingIOError:
        return None


def me() -> journal.Credentials:
    return journal.Credentials(os.getuid(), os.getgid())


def test_poke_reaches_the_owners_socket(listener: tuple[Path, socket.socket]) -> None:
    path, sock = listener
    journal.poke(str(path), me())
    assert _received(sock) == b"crash"


def test_poke_follows_no_symlink(tmp_path: Path, listener: tuple[Path, socket.socket]) -> None:
    path, sock = listener
    link = tmp_path / "planted"
    link.symlink_to(path)
    journal.poke(str(link), me())
    (tmp_path / "dir").symlink_to(tmp_path)
    journal.poke(str(tmp_path / "dir" / "wakeup"), me())
    assert _received(sock) is None


def test_poke_skips_a_socket_of_someone_else(listener: tuple[Path, socket.socket]) -> None:
    path, sock = listener
    journal.poke(str(path), journal.Credentials(os.getuid() + 1, os.getgid()))
    assert _received(sock) is None
