"""The `drkonqi-lite` command's entry point: the tray app starts here without the CLI's imports.

A cold start from the socket unit must notify within 200 ms (issue 12), and the command line's
modules (argparse, the commands, their formatting and reporting code) cost it ~10 % of that, so
the tray app's options are recognised before cli.py is imported at all.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The tray app's own options (cli.py's parser shows them in --help with this text).
APP_OPTIONS = {
    "--autostart": "start quietly from the session (do nothing if it already runs); alone, "
    "wait for crashes without Qt and start the tray app for each (XDG autostart)",
    "--exit-when-idle": "end the tray app once no crash is unseen and no window is open (the "
    "systemd user unit: its socket starts the app again at the next crash)",
}


def tray_app(autostart: bool, exit_when_idle: bool) -> int:
    if autostart and not exit_when_idle:  # XDG autostart: the lean resident waiter
        from drkonqi_lite import waiter  # noqa: PLC0415

        return waiter.run()
    from drkonqi_lite.app import run  # noqa: PLC0415 (Qt only for the tray app)

    return run(autostart=autostart, exit_when_idle=exit_when_idle)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if set(words) <= APP_OPTIONS.keys():
        return tray_app("--autostart" in words, "--exit-when-idle" in words)
    from drkonqi_lite import cli  # noqa: PLC0415 (not in the tray app's start)

    return cli.main(words)
