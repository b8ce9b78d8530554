"""KDE's DrKonqi as a neighbour: is it installed, and what does it see under each handler.

DrKonqi (5.27, Debian's `drkonqi`) gets crashes only through systemd-coredump: its
drkonqi-coredump-processor@.service is WantedBy=systemd-coredump@.service (Debian's postinst
links it into systemd-coredump@.service.wants/), and the processor reads only journal entries
with SYSLOG_IDENTIFIER=systemd-coredump and _SYSTEMD_UNIT=systemd-coredump@<instance>.service
(src/coredump/coredumpwatcher.cpp). So while any other program is the kernel's handler,
DrKonqi shows no crash dialog at all; benchmarks/README.md has the measurement. This module
only looks at files: it never runs DrKonqi.
"""

from __future__ import annotations

import os

#: The processor's unit file as packages install it (Debian: /usr/lib; merged-/usr: /lib too).
PROCESSOR_UNITS = (
    "usr/lib/systemd/system/drkonqi-coredump-processor@.service",
    "lib/systemd/system/drkonqi-coredump-processor@.service",
)
#: The link that makes systemd start the processor next to every systemd-coredump@ instance.
PROCESSOR_ENABLED = (
    "etc/systemd/system/systemd-coredump@.service.wants/drkonqi-coredump-processor@.service"
)


class DrKonqi:
    """What is installed under a root directory (`/`, or a test's prefix)."""

    __slots__ = ("enabled", "installed")

    def __init__(self, root: str) -> None:
        self.installed = any(os.path.exists(os.path.join(root, p)) for p in PROCESSOR_UNITS)
        self.enabled = self.installed and os.path.lexists(os.path.join(root, PROCESSOR_ENABLED))

    def sees(self, handler: str) -> bool:
        """Whether DrKonqi shows crash dialogs while `handler` (a handler_kind) is active."""
        return self.enabled and handler == "systemd-coredump"

    def status_line(self, handler: str) -> str:
        if not self.installed:
            return "not installed"
        if not self.enabled:
            return "installed, but its processor is not enabled for systemd-coredump@.service"
        if self.sees(handler):
            return "shows these crashes (it reads systemd-coredump's entries only)"
        if handler == "drkonqi-lite-collector":
            return (
                "installed but shows NO crash dialogs: it reads systemd-coredump's entries only "
                "(`uninstall` gives crashes back to the previous handler)"
            )
        return (
            "installed but shows NO crash dialogs: it gets crashes only through "
            "systemd-coredump, which is not the handler"
        )


REFUSAL = (
    "crashes are handled by systemd-coredump, and KDE's DrKonqi is installed: DrKonqi shows "
    "crash dialogs only for systemd-coredump's entries, so systemd-coredump stays the handler "
    "(our tray app shows its crashes anyway); --force takes over and turns DrKonqi's crash "
    "dialogs off"
)
FORCED = (
    "KDE's DrKonqi will show no crash dialogs while drkonqi-lite-collector handles crashes "
    "(it reads systemd-coredump's entries only); `drkonqi-lite-collector uninstall` gives "
    "crashes back to systemd-coredump"
)
IDLE = (
    "KDE's DrKonqi is installed but gets crashes only through systemd-coredump, which is not "
    "the handler: it shows no crash dialogs either way; the tray app shows them"
)
