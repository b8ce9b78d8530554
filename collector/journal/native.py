"""Sending one journal entry over journald's native protocol, as a given user, or spooling it.

We speak the native protocol (systemd.journal-fields(7), "Native Journal Protocol") ourselves
rather than through sd_journal_sendv() so that: a large entry (Storage=journal carries the whole
core) is built in a sealed memfd and never held in memory; failures are precise errno values we
can act on; and an entry that journald cannot take is serialised byte-for-byte into the spool.

journald files an entry under the SENDER's credentials, the SCM_CREDENTIALS it receives
(journald-native.c, journald-server.c: the user journal is chosen by ucred->uid), so the entry
goes to user-UID.journal only when it carries that uid. Root may put any uid/gid in
SCM_CREDENTIALS itself (the kernel's scm_check_creds() accepts them with CAP_SETUID and
CAP_SETGID; the pid must stay our own), so `send_as` sends from this process with the crashing
user's ids attached. No process of that user ever exists on our side: nothing the user may
signal (SIGSTOP, ptrace) holds the core pipe, the spool's replay lock or a core_pipe_limit slot
(SECURITY.md 11).
"""

from __future__ import annotations

import _socket  # the C module: `socket` imports enum and selectors (see handler.py)
import errno
import fcntl
import os
import struct

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: Datagrams up to this size go inline; larger entries go as a sealed memfd (journald accepts
#: those from anyone; see journal-send.c). Well below the default SO_SNDBUF/wmem_max.
INLINE_MAX = 128 * 1024
#: errno values that mean "journald cannot take it now" and make us spool.
UNREACHABLE = frozenset(
    {
        errno.ENOENT,
        errno.ECONNREFUSED,
        errno.ENOTCONN,
        errno.EAGAIN,
        errno.ENOBUFS,
        errno.EPIPE,
        errno.ECONNRESET,
        errno.ETIMEDOUT,
    }
)
SEND_TIMEOUT = 5.0

MiB = 1024 * 1024
#: journald's limits for one native-protocol entry (journal-def.h, journald-native.c; systemd
#: 252-258): DATA_SIZE_MAX (768 MiB) per field, ENTRY_SIZE_MAX (770 MiB) per entry, but
#: ENTRY_SIZE_UNPRIV_MAX when the sender's uid is not 0 (systemd >= 257) — ours carry the
#: user's — and ENTRY_FIELD_COUNT_MAX fields. Over them journald drops the entry, telling the
#: sender nothing: so we never come near them.
JOURNALD_ENTRY_UNPRIV_MAX = 32 * MiB
JOURNALD_FIELD_COUNT_MAX = 1024
#: Our own bounds, well inside: one field (a /proc file, the stack trace), all fields but the
#: core together, and the core carried in the entry (Storage=journal), with room for headers.
FIELD_MAX = 1 * MiB
FIELDS_MAX = 16 * MiB
CORE_IN_ENTRY_MAX = JOURNALD_ENTRY_UNPRIV_MAX - FIELDS_MAX - MiB

FieldValue = bytes | str | int


class Blob:
    """A field value that lives in a file (the core, for Storage=journal): copied, not loaded."""

    __slots__ = ("fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size


def _b(value: FieldValue) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def serialize(fields: Iterable[tuple[str, FieldValue]]) -> bytes:
    """Native protocol: `NAME=value\\n`, or `NAME\\n<le64 size>value\\n` when value has a newline
    (or any byte that would break the simple form)."""
    out = bytearray()
    for name, value in fields:
        data = _b(value)
        key = name.encode("ascii")
        if b"\n" in data:
            out += key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key + b"=" + data + b"\n"
    return bytes(out)


def build_payload(fields: Iterable[tuple[str, FieldValue | Blob]]) -> int | bytes:
    """The serialised entry: bytes when small, else a sealed memfd (caller closes it)."""
    plain: list[tuple[str, FieldValue]] = []
    blobs: list[tuple[str, Blob]] = []
    for name, value in fields:
        if isinstance(value, Blob):
            blobs.append((name, value))
        else:
            plain.append((name, value))
    head = serialize(plain)
    if not blobs and len(head) <= INLINE_MAX:
        return head
    fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        write_all(fd, head)
        for name, blob in blobs:
            write_all(fd, name.encode("ascii") + b"\n" + struct.pack("<Q", blob.size))
            _copy(blob.fd, fd, blob.size)
            write_all(fd, b"\n")
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy(src: int, dst: int, size: int) -> None:
    """Copy `size` bytes from the start of `src` to `dst`'s position, in the kernel."""
    copied = 0
    while copied < size:
        try:
            n = os.copy_file_range(src, dst, size - copied, copied)
        except OSError as e:
            # Across file systems (a core file into a memfd) since Linux 5.19: use sendfile.
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            n = os.sendfile(dst, src, copied, size - copied)
        if n == 0:
            raise OSError(errno.EIO, "core shrank while copying into the entry")
        copied += n


def payload_bytes(payload: int | bytes) -> bytes:
    """The whole serialised entry as bytes (for the spool)."""
    if isinstance(payload, bytes):
        return payload
    size = os.fstat(payload).st_size
    return os.pread(payload, size, 0)


def send_payload(
    payload: int | bytes, socket_path: str = JOURNAL_SOCKET, creds: Credentials | None = None
) -> None:
    """Send one entry to journald, as `creds` (default: our own ids); raises OSError (errno in
    UNREACHABLE when we should spool)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    anc = _ucred(creds)
    try:
        sock.settimeout(SEND_TIMEOUT)
        if not isinstance(payload, bytes):
            _send_fd(sock, payload, socket_path, anc)
            return
        if len(payload) <= INLINE_MAX:
            try:
                sock.sendmsg([payload], anc, 0, socket_path)
                return
            except OSError as e:
                if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
        fd = _to_memfd(payload)
        try:
            _send_fd(sock, fd, socket_path, anc)
        finally:
            os.close(fd)
    finally:
        sock.close()


Ancillary = list[tuple[int, int, bytes]]


def _ucred(creds: Credentials | None) -> Ancillary:
    """SCM_CREDENTIALS saying `creds` (struct ucred: pid_t pid, uid_t uid, gid_t gid)."""
    if creds is None:
        return []
    data = struct.pack("iII", os.getpid(), creds.uid, creds.gid)
    return [(_socket.SOL_SOCKET, _socket.SCM_CREDENTIALS, data)]


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _to_memfd(data: bytes) -> int:
    fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    write_all(fd, data)
    fcntl.fcntl(
        fd,
        fcntl.F_ADD_SEALS,
        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL,
    )
    return fd


def _send_fd(sock: _socket.socket, fd: int, socket_path: str, anc: Ancillary) -> None:
    rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))
    sock.sendmsg([], [rights, *anc], 0, socket_path)


class Credentials:
    """Who an entry is sent as: journald files it by these (kernel-checked) ids."""

    __slots__ = ("gid", "uid")

    def __init__(self, uid: int, gid: int) -> None:
        self.uid = uid
        self.gid = gid

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and (self.uid, self.gid) == (other.uid, other.gid)

    def __hash__(self) -> int:
        return hash((self.uid, self.gid))

    def __repr__(self) -> str:
        return f"Credentials(uid={self.uid}, gid={self.gid})"


def send_as(
    payload: int | bytes,
    creds: Credentials,
    socket_path: str = JOURNAL_SOCKET,
    wakeup: str | None = None,
) -> int:
    """Send as `creds`; return 0 or the errno of the failure. Never forks, never waits on
    anything but journald's socket (SEND_TIMEOUT).

    `wakeup`: after a successful send, poke the user's running app through this datagram
    socket (see `poke`). The datagram carries nothing the app trusts.
    """
    try:
        send_payload(payload, socket_path, creds)
    except OSError as e:
        return e.errno or errno.EIO
    if wakeup is not None:
        poke(wakeup, creds)
    return 0


def poke(path: str, creds: Credentials) -> None:
    """One non-blocking datagram to a user's wake-up socket; silently nothing if absent.

    We are root and the path lies in the user's runtime directory, so it is reached without
    following any symlink and used only if it is a socket owned by `creds.uid`: a planted link
    cannot make root send to another program's socket.
    """
    fd = _open_socket_node(path, creds.uid)
    if fd is None:
        return
    flags = _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
    sock = _socket.socket(_socket.AF_UNIX, flags)
    try:
        # connect() through the O_PATH fd's /proc magic link reaches exactly that inode.
        sock.sendmsg([b"crash"], _ucred(creds), 0, f"/proc/self/fd/{fd}")
    except OSError:
        pass
    finally:
        sock.close()
        os.close(fd)


def _open_socket_node(path: str, uid: int) -> int | None:
    """An O_PATH fd of the socket at `path`, walked component by component with O_NOFOLLOW;
    None unless it is a socket owned by `uid`."""
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open("/", flags | os.O_DIRECTORY)
    except OSError:
        return None
    parts = [p for p in path.split("/") if p]
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nfd = os.open(part, flags if last else flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if (st.st_mode & 0o170000) != 0o140000 or st.st_uid != uid:  # S_IFSOCK, the user's own
        os.close(fd)
        return None
    return fd


def entry_fields(payload: bytes) -> Mapping[str, bytes]:
    """Parse a serialised entry back (for the spool and for tests)."""
    fields: dict[str, bytes] = {}
    i = 0
    while i < len(payload):
        nl = payload.index(b"\n", i)
        line = payload[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            fields[k.decode("ascii")] = v
            i = nl + 1
        else:
            (size,) = struct.unpack_from("<Q", payload, nl + 1)
            start = nl + 9
            fields[line.decode("ascii")] = payload[start : start + size]
            i = start + size + 1
    return fields
