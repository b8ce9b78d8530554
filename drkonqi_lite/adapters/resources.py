"""Where the app's own files are: its SVG icons and the D-Bus interface XML.

From a source checkout they are in resources/ beside the package. A pip install puts them in
share/drkonqi-lite under its prefix (pyproject.toml's data-files: the venv, or /usr/local);
the Debian package in /usr/share/drkonqi-lite, found through $XDG_DATA_DIRS like every
desktop file. Nothing here reads a crash entry.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parent.parent.parent / "resources"
#: A file every complete copy has: tells a real resource directory from an empty one.
MARKER = "drkonqi-lite.svg"


def resource_dir(env: Mapping[str, str] = os.environ, prefix: str = sys.prefix) -> Path:
    """The first directory holding our resources; the source tree's path if none does.

    The install prefix comes before $XDG_DATA_DIRS: a venv's files match its own code even
    where another version is installed system-wide.
    """
    if (SOURCE_TREE / MARKER).is_file():
        return SOURCE_TREE
    data_dirs = env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    for base in [str(Path(prefix) / "share"), *data_dirs.split(":")]:
        candidate = Path(base) / "drkonqi-lite"
        if base.startswith("/") and (candidate / MARKER).is_file():
            return candidate
    return SOURCE_TREE
