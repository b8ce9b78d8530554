"""Users that exist only for a session: nss-systemd drop-in records in /run/userdb.

dbus-daemon refuses to start for a uid without a passwd entry ("Could not get password database
information"); nss-systemd (nsswitch `passwd: files systemd`) reads JSON user records from
/run/userdb without any daemon, so nothing in /etc is touched.
"""

from __future__ import annotations

import json
import pwd
from pathlib import Path

USERDB = Path("/run/userdb")


def register(uid: int, name: str, home: Path) -> list[Path]:
    """Make `uid` (and a group of the same id) resolvable as `name`; the files written, to
    remove again. Raises LookupError when nss-systemd does not read them (not installed)."""
    USERDB.mkdir(exist_ok=True)
    user = {"userName": name, "uid": uid, "gid": uid, "disposition": "regular",
            "homeDirectory": str(home), "shell": "/bin/sh"}  # fmt: skip
    paths = []
    for kind, record in (("user", user), ("group", {"groupName": name, "gid": uid})):
        path = USERDB / f"{name}.{kind}"
        path.write_text(json.dumps(record))
        link = USERDB / f"{uid}.{kind}"
        link.unlink(missing_ok=True)
        link.symlink_to(path.name)
        paths += [link, path]
    try:
        pwd.getpwuid(uid)
    except KeyError:
        remove(paths)
        raise LookupError(
            "uid not resolvable through /run/userdb: install libnss-systemd "
            "(nsswitch.conf: 'passwd: files systemd')"
        ) from None
    return paths


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
