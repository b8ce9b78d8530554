"""An X server for a session without a desktop: Xvfb on a free display, trayer as the tray.

Under Xvfb with trayer, QSystemTrayIcon works (an XEmbed tray, clickable with xdotool); there
is no tray under QT_QPA_PLATFORM=offscreen (TESTING.md).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from drkonqi_lite.session.process import stop, wait_for

TOOLS = ("Xvfb", "trayer", "xdotool")
SCREEN = "1280x800x24"
TRAYER = ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width",
          "200", "--height", "32"]  # fmt: skip


def x_works(display: str) -> bool:
    """Whether an X server answers on `display`."""
    env = {**os.environ, "DISPLAY": display}
    return subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True,
                          check=False).returncode == 0  # fmt: skip


def screenshot(display: str, path: Path, window: str = "root") -> Path:
    """A PNG of the whole screen, or of one window (an X window id)."""
    subprocess.run(["import", "-display", display, "-window", window, str(path)],
                   check=True, capture_output=True)  # fmt: skip
    return path


class Display:
    """Xvfb on a free display, with trayer as the XEmbed tray host; logs in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self.display = ""
        # Other sessions on this machine start X servers concurrently and -displayfd can lose
        # a race for a display number (the server then dies): start again on a fresh one.
        for attempt in range(5):
            try:
                self._start(workdir)
                return
            except TimeoutError:
                self.close()
                self._procs = []
                if attempt == 4:
                    raise

    def _start(self, workdir: Path) -> None:
        rfd, wfd = os.pipe()
        with (workdir / "xvfb.log").open("ab") as log:
            xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(wfd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                pass_fds=(wfd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        os.close(wfd)
        self._procs.append(xvfb)
        with os.fdopen(rfd) as f:
            self.display = ":" + f.readline().strip()
        wait_for(lambda: x_works(self.display) and xvfb.poll() is None, timeout=5, what="Xvfb")
        env = {**os.environ, "DISPLAY": self.display}
        with (workdir / "trayer.log").open("ab") as log:
            tray = subprocess.Popen(TRAYER, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        self._procs.append(tray)
        wait_for(lambda: subprocess.run(["xdotool", "search", "--classname", "trayer"], env=env,
                                        capture_output=True, check=False).returncode == 0
                 and xvfb.poll() is None,
                 timeout=10, what="trayer")  # fmt: skip

    def screenshot(self, path: Path, window: str = "root") -> Path:
        return screenshot(self.display, path, window)

    def close(self) -> None:
        for proc in reversed(self._procs):
            stop(proc)
