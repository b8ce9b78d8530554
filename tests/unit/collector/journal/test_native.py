"""The native journal protocol: fields as journald reads them, big entries in a sealed memfd,
and the wake-up poke, sent by root into a user's runtime directory: only to the user's own
socket, reached without following links."""

from __future__ import annotations

import os
import socket
import struct
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


def test_native_protocol_round_trips_binary_fields() -> None:
    fields: list[tuple[str, journal.FieldValue]] = [
        ("MESSAGE", "line1\nline2"),
        ("COREDUMP_COMM", b"a\x00b\xff"),
        ("X", 42),
    ]
    payload = journal.serialize(fields)
    assert payload.startswith(b"MESSAGE\n" + struct.pack("<Q", 11) + b"line1\nline2\n")
    assert journal.entry_fields(payload) == {
        "MESSAGE": b"line1\nline2",
        "COREDUMP_COMM": b"a\x00b\xff",
        "X": b"42",
    }


def test_big_payload_goes_to_a_sealed_memfd(tmp_path: Path) -> None:
    blob_file = tmp_path / "core"
    blob_file.write_bytes(os.urandom(300_000))
    fd = os.open(blob_file, os.O_RDONLY)
    try:
        payload = journal.build_payload([("MESSAGE", "x"), ("COREDUMP", journal.Blob(fd, 300_000))])
    finally:
        os.close(fd)
    assert isinstance(payload, int)
    try:
        data = journal.payload_bytes(payload)
        assert journal.entry_fields(data)["COREDUMP"] == blob_file.read_bytes()
        with pytest.raises(PermissionError):
            os.write(payload, b"x")  # sealed: journald requires it
    finally:
        os.close(payload)
