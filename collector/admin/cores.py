"""Deleting a stored core on its user's request: drkonqi-lite-cores@.service.

Cores are root-owned in a root-owned directory (DESIGN.md §2.2), so a user can read their own
core (through the ACL) but cannot remove it. This service does it for them: systemd listens on
/run/drkonqi-lite/cores.socket (SOCK_SEQPACKET, any user may connect) and starts one instance
per connection (Accept=yes) with the connection as fd 3. It trusts only what the kernel says
about the peer (SO_PEERCRED) and what the file system says about the core:

- the request names a file directly inside the storage directory, opened through a dir fd with
  O_NOFOLLOW; it must be a regular root-owned file with one link, named like our cores;
- root may delete any such core; any other user only a core whose name carries their uid AND
  whose ACL grants them read access, i.e. one the collector judged theirs by systemd's rule.
  A restricted core (a set-uid program, AT_SECURE, changed credentials) stays: it may hold
  another user's secrets, and it is the administrator's evidence.

Protocol: one datagram `delete\\0NAME` in, one datagram `ok` or `error\\0WHY` out.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct

from drkonqi_lite_collector import config, storage
from drkonqi_lite_collector.journal import schema
from drkonqi_lite_collector.log import log

MAX_REQUEST = 512
#: A client that connects and says nothing does not hold an instance for long.
RECEIVE_TIMEOUT_S = 5


class RefusedError(Exception):
    """The request is not granted; the message is for the requesting user."""


def peer_uid(sock: socket.socket) -> int:
    """The connecting process's uid, as the kernel recorded it at connect()."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def parse_request(data: bytes) -> str:
    """The core's base name from a request datagram, or RefusedError."""
    if not data.startswith(schema.DELETE_REQUEST):
        raise RefusedError("not a delete request")
    raw = data[len(schema.DELETE_REQUEST) :]
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RefusedError("the core name is not ASCII") from None
    if "/" in name or "\0" in name or name.startswith(".") or len(name) > 255:
        raise RefusedError("not a core file name")
    if schema.parse_core_filename(name) is None:
        raise RefusedError("not a core file name")
    return name


def delete(storage_fd: int, name: str, requester: int) -> None:
    """Remove core `name` from the storage directory if `requester` may; else RefusedError."""
    owner = schema.parse_core_filename(name)
    if owner is None:
        raise RefusedError("not a core file name")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=storage_fd)
    except FileNotFoundError:
        raise RefusedError("the core has already been removed") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RefusedError("the core is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_nlink != 1:
            raise RefusedError("the core is not a file the collector stored")
        if requester != 0:
            if owner[0] != requester:
                raise RefusedError("the core belongs to another user")
            if not storage.acl_grants_read(fd, requester):
                raise RefusedError(
                    "the core is restricted (the program changed credentials or ran set-uid); "
                    "only the administrator can delete it"
                )
        # Only root writes this directory, so the name still points at what was checked.
        now = os.stat(name, dir_fd=storage_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise RefusedError("the core changed while it was being checked")
        os.unlink(name, dir_fd=storage_fd)
    finally:
        os.close(fd)


def serve(conn: socket.socket, paths: config.Paths) -> int:
    """Answer one connection; 0 when the core was deleted."""
    conn.settimeout(RECEIVE_TIMEOUT_S)
    try:
        requester = peer_uid(conn)
        data = conn.recv(MAX_REQUEST)
    except OSError as e:
        log(f"cores: no request: {e}")
        return 2
    try:
        name = parse_request(data)
        storage_fd = storage.open_dir(paths.storage_dir)
        try:
            delete(storage_fd, name, requester)
        finally:
            os.close(storage_fd)
    except RefusedError as e:
        log(f"cores: uid {requester} may not delete {data[len(schema.DELETE_REQUEST) :]!r}: {e}")
        _reply(conn, schema.DELETE_ERROR + b"\0" + str(e).encode())
        return 1
    except OSError as e:
        log(f"cores: deleting for uid {requester} failed: {e}")
        why = f"the core could not be deleted: {e.strerror}"
        _reply(conn, schema.DELETE_ERROR + b"\0" + why.encode())
        return 1
    log(f"cores: deleted {name} at the request of uid {requester}")
    _reply(conn, schema.DELETE_OK)
    return 0


def _reply(conn: socket.socket, message: bytes) -> None:
    try:
        conn.send(message)
    except OSError as e:
        log(f"cores: the client left before the answer: {e}")
