"""What a user may do to the collector's files, asked of the kernel in a child that became that
user; ACLs and the kinds of files in a tree, never following links.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def posix_acl(path: Path) -> bytes | None:
    """The raw system.posix_acl_access xattr of `path`, None when the file has no ACL."""
    try:
        return os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError as e:
        if e.errno == 61:  # ENODATA: no ACL at all
            return None
        raise


def allowed_as(uid: int, gid: int, action: Callable[[], object], what: str) -> bool:
    """Whether uid/gid (no groups) may do `action`: asked of the kernel, in a child. True when
    it ran, False on EACCES/EPERM; anything else fails the test."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            action()
            code = 0
        except PermissionError:
            code = 13
        except BaseException:  # the child must reach _exit
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 13), f"{what} as uid {uid} failed oddly ({code})"
    return code == 0


def readable_as(path: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid (no groups) can open `path` for reading."""

    def read() -> None:
        with path.open("rb") as f:
            f.read(1)

    return allowed_as(uid, gid, read, f"reading {path}")


def listable_as(path: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid (no groups) can list the directory `path`."""
    return allowed_as(uid, gid, lambda: os.listdir(path), f"listing {path}")


def tree(root: Path) -> dict[str, str]:
    """Every path below `root` (relative) with its kind, never following links."""
    import stat as st_mod  # noqa: PLC0415

    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = (
                "dir"
                if st_mod.S_ISDIR(st.st_mode)
                else "link"
                if st_mod.S_ISLNK(st.st_mode)
                else "fifo"
                if st_mod.S_ISFIFO(st.st_mode)
                else "file"
            )
            out[str(p.relative_to(root))] = kind
    return out

