"""Diagnostics of the collector: the kernel log (always there), and stderr when it is open.

The kernel starts core_pattern helpers without stdout/stderr; /dev/kmsg is what dmesg and
journald (as kernel messages) show. Messages are single lines, prefixed like syslog.
"""

from __future__ import annotations

import os
import sys

_TAG = "drkonqi-lite-collector"


def log(message: str, level: int = 3) -> None:
    line = f"<{level}>{_TAG}[{os.getpid()}]: {message}".replace("\n", " ")[:1000] + "\n"
    try:
        fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except OSError:
        pass
    # Whoever ran us by hand sees it; under the kernel fd 2 is /dev/null (main.py fills it).
    if sys.stderr is not None:
        try:
            print(f"{_TAG}: {message}", file=sys.stderr)
        except (OSError, ValueError):
            pass
