"""Core files on disk: safe directory handles, atomic creation, ACLs and vacuuming.

Every path is reached through a directory fd opened with O_NOFOLLOW from a root-owned,
not group/world-writable tree (SECURITY.md 3). A core is written to an O_TMPFILE inode
(invisible, discarded by the kernel if we die) and only linked under its final name once complete,
so no partial core ever exists under a final name (SECURITY.md 10).

Shared by the zones that touch the state directory: the worker stores cores, the journal's
spool writes entries the same atomic way, admin/ installs the tree and deletes cores.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

from drkonqi_lite_collector import config
from drkonqi_lite_collector.journal.schema import STORAGE_SUBDIR, parse_core_filename

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Iterator


class UnsafeDirectoryError(OSError):
    """A directory on our path is not root-owned, is writable by others, or is a symlink."""


def _check_dir(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectoryError(errno.ENOTDIR, "not a directory", path)
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise UnsafeDirectoryError(errno.EPERM, "not root-owned or writable by others", path)


def open_dir(path: str, *, create: bool = False, mode: int = 0o755) -> int:
    """Open an absolute directory path component by component with O_NOFOLLOW.

    The components we may create (below a root-owned parent) are created with `mode`. Every
    directory from the first one we create or own must be root-owned and not writable by
    group or others; an attacker-writable ancestor above that (like /tmp) is acceptable only
    because the sticky bit stops others from replacing our root-owned child.
    """
    if not os.path.isabs(path):
        raise ValueError(f"not absolute: {path}")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags)
    try:
        for part in (p for p in path.split("/") if p):
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        _check_dir(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_subdir(dir_fd: int, name: str, *, create: bool = True, mode: int = 0o755) -> int:
    """Open (creating if asked) a root-owned, not group/world-writable child directory."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    if create:
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
        except FileExistsError:
            pass
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        _check_dir(fd, name)
    except BaseException:
        os.close(fd)
        raise
    return fd


# POSIX ACL xattr format (linux/posix_acl_xattr.h): a u32 version (2), then entries of
# (u16 tag, u16 perm, u32 id).
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_READ, _ACL_WRITE = 4, 2
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def grant_read_acl(fd: int, uid: int) -> None:
    """Give `uid` read access to the file behind `fd`, keeping mode 0640 semantics."""
    entries = [
        (_ACL_USER_OBJ, _ACL_READ | _ACL_WRITE, _ACL_UNDEFINED_ID),
        (_ACL_USER, _ACL_READ, uid),
        (_ACL_GROUP_OBJ, _ACL_READ, _ACL_UNDEFINED_ID),
        (_ACL_MASK, _ACL_READ, _ACL_UNDEFINED_ID),
        (_ACL_OTHER, 0, _ACL_UNDEFINED_ID),
    ]
    blob = struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(fd, "system.posix_acl_access", blob)


def acl_grants_read(fd: int, uid: int) -> bool:
    """Whether the file's ACL gives `uid` a named read entry (the mask permitting it), as
    grant_read_acl writes for the crashing user. Owner and group bits do not count."""
    try:
        blob = os.getxattr(fd, "system.posix_acl_access")
    except OSError:
        return False
    if len(blob) < 4 or (len(blob) - 4) % 8 or struct.unpack_from("<I", blob)[0] != _ACL_VERSION:
        return False
    named = mask = None
    for tag, perm, ident in struct.iter_unpack("<HHI", blob[4:]):
        if tag == _ACL_USER and ident == uid:
            named = perm
        elif tag == _ACL_MASK:
            mask = perm
    if named is None:
        return False
    return bool(named & (mask if mask is not None else named) & _ACL_READ)


class TempFile:
    """A file being written in `dir_fd`, nameless until `commit` links it."""

    def __init__(self, dir_fd: int, mode: int = 0o640) -> None:
        self.dir_fd = dir_fd
        self._name: str | None = None
        try:
            self.fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            # File systems without O_TMPFILE: a hidden random name, O_EXCL|O_NOFOLLOW so no
            # planted link or FIFO is ever opened, unlinked again on failure.
            self._name = f".#tmp.{os.getpid()}.{os.urandom(8).hex()}"
            self.fd = os.open(
                self._name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=dir_fd,
            )
        os.fchown(self.fd, 0, 0)
        os.fchmod(self.fd, mode)

    def commit(self, name: str, *, sync: bool = False) -> None:
        """Give the file its final name; never replaces an existing file (EEXIST)."""
        if sync:
            os.fsync(self.fd)
        if self._name is None:
            os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=self.dir_fd, follow_symlinks=True)
        else:
            os.link(
                self._name,
                name,
                src_dir_fd=self.dir_fd,
                dst_dir_fd=self.dir_fd,
                follow_symlinks=False,
            )
            os.unlink(self._name, dir_fd=self.dir_fd)
            self._name = None
        if sync:
            os.fsync(self.dir_fd)

    def close(self) -> None:
        os.close(self.fd)
        if self._name is not None:
            try:
                os.unlink(self._name, dir_fd=self.dir_fd)
            except OSError:
                pass

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StoredCore:
    """A core file in storage; `blocks` is its size on disk in bytes (st_blocks * 512)."""

    __slots__ = ("blocks", "name", "timestamp_us", "uid")

    def __init__(self, name: str, uid: int, timestamp_us: int, blocks: int) -> None:
        self.name = name
        self.uid = uid
        self.timestamp_us = timestamp_us
        self.blocks = blocks


def stored_cores(dir_fd: int) -> Iterator[StoredCore]:
    """Our core files in the storage directory (regular files only, never following links)."""
    for entry in os.scandir(dir_fd):
        parsed = parse_core_filename(entry.name)
        if parsed is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        uid, _pid, ts = parsed
        yield StoredCore(entry.name, uid, ts, st.st_blocks * 512)


def vacuum_limits(dir_fd: int, cfg: config.Config) -> tuple[int, int]:
    """(max_use, keep_free) in bytes: configured, or 10%/15% of the file system capped at 4G."""
    vfs = os.fstatvfs(dir_fd)
    size = vfs.f_frsize * vfs.f_blocks
    max_use = (
        cfg.max_use
        if cfg.max_use is not None
        else min(int(size * config.MAX_USE_FRACTION), config.VACUUM_CAP)
    )
    keep_free = (
        cfg.keep_free
        if cfg.keep_free is not None
        else min(int(size * config.KEEP_FREE_FRACTION), config.VACUUM_CAP)
    )
    return max_use, keep_free


def vacuum(dir_fd: int, cfg: config.Config, keep: frozenset[str] = frozenset()) -> list[str]:
    """Delete cores, oldest first from the user using the most space, until within limits.

    Like systemd's coredump-vacuum: usage must stay under MaxUse and the file system must keep
    KeepFree bytes free. Files in `keep` (the core just written) are never deleted, but they
    count for their user: when that user is the heaviest, their own older cores go first, and
    once only the kept core is left, the next heaviest user's (SECURITY.md 12; the new core was
    already bounded by budget.core_budget so that this ends within the limits). Returns the
    names deleted.
    """
    max_use, keep_free = vacuum_limits(dir_fd, cfg)
    everything = list(stored_cores(dir_fd))
    cores = [c for c in everything if c.name not in keep]
    per_uid: dict[int, int] = {}
    for c in everything:
        per_uid[c.uid] = per_uid.get(c.uid, 0) + c.blocks
    usage = sum(per_uid.values())
    deleted: list[str] = []
    while cores:
        vfs = os.fstatvfs(dir_fd)
        free = vfs.f_frsize * vfs.f_bavail
        if usage <= max_use and free >= keep_free:
            break
        deletable = {c.uid for c in cores}
        heaviest = max(deletable, key=lambda u: per_uid[u])
        victim = min((c for c in cores if c.uid == heaviest), key=lambda c: c.timestamp_us)
        cores.remove(victim)
        try:
            os.unlink(victim.name, dir_fd=dir_fd)
            deleted.append(victim.name)
        except FileNotFoundError:
            pass
        usage -= victim.blocks
        per_uid[victim.uid] -= victim.blocks
    return deleted


def open_storage(state_fd: int, *, create: bool = True) -> int:
    """The core directory, made STORAGE_MODE (0711): others may open a core by its name but not
    list the names (SECURITY.md 9). A directory left listable by an older version or by hand is
    tightened here, so the promise does not depend on tmpfiles.d having run."""
    fd = open_subdir(state_fd, STORAGE_SUBDIR, create=create, mode=config.STORAGE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o066:
            os.fchmod(fd, config.STORAGE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def storage_path(paths: config.Paths, name: str) -> str:
    return os.path.join(paths.storage_dir, name)
