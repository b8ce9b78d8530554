"""Reading a stored core for gdb, and deleting the user's own (SECURITY.md 3, 6).

The path comes from a journal entry (hostile): only a name directly inside a known storage
directory is opened, through a dir fd with O_NOFOLLOW|O_NONBLOCK, and it must be a regular file.
The core is decompressed into a private directory (mkdtemp: mode 0700, owned by the user) that
the caller removes afterwards. Decompression is a blocking call: run it off the GUI thread.
"""

from __future__ import annotations

import contextlib
import errno
import lzma
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from drkonqi_lite.adapters.core_file import open_storage_dir
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite_collector.journal.schema import (
    CORES_SOCKET,
    DELETE_ERROR,
    DELETE_OK,
    DELETE_REQUEST,
    parse_core_filename,
)

CHUNK = 1 << 20
#: A decompressed core larger than this is refused (a 4 GiB sparse core fits).
MAX_CORE_BYTES = 32 << 30
#: The service answers within a Python start-up; a hung one must not freeze the window long.
SERVICE_TIMEOUT_S = 5.0


class CoreUnavailableError(Exception):
    """The stored core cannot be used; the message says why, in words for the user."""


class CancelledError(Exception):
    """The user cancelled while the core was being decompressed."""


@contextlib.contextmanager
def open_core(policy: TrustPolicy, filename: str) -> Iterator[BinaryIO]:
    """The stored core opened read-only, only if it is a regular file inside a storage dir."""
    location = policy.core_location(filename)
    if location is None:
        raise CoreUnavailableError("the entry names a core outside the crash storage")
    directory, name = location
    try:
        dir_fd = open_storage_dir(directory)
    except OSError as exc:
        raise CoreUnavailableError(f"the crash storage cannot be opened: {exc.strerror}") from None
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in {errno.EACCES, errno.EPERM}:
                raise CoreUnavailableError("you may not read this core") from None
            if exc.errno == errno.ENOENT:
                raise CoreUnavailableError("the core has been removed") from None
            raise CoreUnavailableError("the core is not a regular file") from None
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CoreUnavailableError("the core is not a regular file")
    with os.fdopen(fd, "rb") as file:
        yield file


def private_dir() -> Path:
    """A new directory for a decompressed core: mkdtemp makes it 0700, owned by the user."""
    return Path(tempfile.mkdtemp(prefix="drkonqi-lite-core-"))


def decompress_core(
    policy: TrustPolicy,
    filename: str,
    directory: Path,
    cancelled: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the uncompressed core into `directory` (private); its path.

    Supports systemd's .zst and .xz and uncompressed cores. Checks `cancelled` between chunks.
    """
    target = directory / "core"
    with open_core(policy, filename) as raw, target.open("xb") as out:
        os.fchmod(out.fileno(), 0o600)
        if filename.endswith(".zst"):
            reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(raw)
        elif filename.endswith(".xz"):
            reader = lzma.LZMAFile(raw)  # type: ignore[assignment]  # noqa: SIM115 (closed with raw)
        elif filename.endswith(".lz4"):
            raise CoreUnavailableError("lz4-compressed cores are not supported")
        else:
            reader = raw
        written = 0
        try:
            while chunk := reader.read(CHUNK):
                if cancelled is not None and cancelled.is_set():
                    raise CancelledError
                written += len(chunk)
                if written > MAX_CORE_BYTES:
                    raise CoreUnavailableError("the core is too large to analyse")
                out.write(chunk)
                if progress is not None:
                    progress(written)
        except (zstandard.ZstdError, lzma.LZMAError, EOFError) as exc:
            raise CoreUnavailableError(f"the core is damaged: {exc}") from None
    return target


def remove_private_dir(directory: Path) -> None:
    """Remove a directory made by private_dir (and the core in it)."""
    shutil.rmtree(directory, ignore_errors=True)


def deletable(policy: TrustPolicy, filename: str, cores_socket: str = CORES_SOCKET) -> str:
    """Why the user may not delete this core ("" when they may), for a disabled button.

    The user may unlink a core they own (root owns them all); any other core in our storage
    (the first storage directory) is deleted by drkonqi-lite-cores@.service, which grants it
    only for a core whose ACL lets this user read it: the same rule, checked again as root.
    """
    location = policy.core_location(filename)
    if location is None:
        return "No stored core file."
    directory, name = location
    try:
        st = os.lstat(Path(directory) / name)
    except OSError:
        return "The core file is already gone."
    if st.st_uid == os.getuid() and os.access(directory, os.W_OK):
        return ""
    if directory != policy.storage_dirs[0]:
        return (
            "The core was stored by systemd-coredump, which removes old cores by itself; "
            "only the administrator can delete it sooner."
        )
    owner = parse_core_filename(name)
    if owner is None or owner[0] != policy.own_uid:
        return "The core belongs to another user."
    if not os.access(Path(directory) / name, os.R_OK):
        return (
            "The core is restricted (the program ran set-uid or changed its credentials), so it "
            "may hold someone else's secrets; only the administrator can delete it."
        )
    try:
        is_socket = stat.S_ISSOCK(os.stat(cores_socket).st_mode)
    except OSError:
        is_socket = False
    if not is_socket:
        return (
            "Deleting needs the drkonqi-lite-cores service (drkonqi-lite-cores.socket, started "
            "by systemd), which is not running."
        )
    return ""


def delete_core(policy: TrustPolicy, filename: str, cores_socket: str = CORES_SOCKET) -> None:
    """Remove the user's core: directly when they own it, else through the cores service."""
    reason = deletable(policy, filename, cores_socket)
    if reason:
        raise CoreUnavailableError(reason)
    location = policy.core_location(filename)
    if location is None:  # pragma: no cover - deletable() said it was inside
        raise CoreUnavailableError("No stored core file.")
    directory, name = location
    dir_fd = open_storage_dir(directory)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise CoreUnavailableError("the core is not a regular file")
        if st.st_uid == os.getuid():
            os.unlink(name, dir_fd=dir_fd)
            return
    finally:
        os.close(dir_fd)
    _ask_cores_service(cores_socket, name)


def _ask_cores_service(cores_socket: str, name: str) -> None:
    """One request to drkonqi-lite-cores@.service (collector/admin/cores.py); its refusal raised."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(SERVICE_TIMEOUT_S)
        try:
            sock.connect(cores_socket)
            sock.send(DELETE_REQUEST + os.fsencode(name))
            reply = sock.recv(4096)
        except TimeoutError:
            raise CoreUnavailableError("the deletion service did not answer in time") from None
        except OSError as exc:
            raise CoreUnavailableError(
                f"the deletion service cannot be reached: {exc.strerror}"
            ) from None
    if reply == DELETE_OK:
        return
    status, _, why = reply.partition(b"\0")
    if status == DELETE_ERROR and why:
        raise CoreUnavailableError(why.decode("utf-8", "replace"))
    raise CoreUnavailableError("the deletion service gave no answer")
