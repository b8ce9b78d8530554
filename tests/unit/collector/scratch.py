"""A scratch directory as the collector reaches it: a directory fd (close it after)."""

from __future__ import annotations

import os
from pathlib import Path


def dir_fd(path: Path) -> int:
    path.mkdir(exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
