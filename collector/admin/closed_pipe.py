"""Commands whose reader may go away: `drkonqi-lite-collector status | head -1`.

When the reader of stdout closes the pipe, Python raises BrokenPipeError at the next write or
at the final flush, and at exit prints "Exception ignored ... BrokenPipeError" over the user's
terminal. A command that lost its reader has nothing left to say: it ends quietly with status
0. Shared by both command lines (drkonqi-lite imports it); never on the kernel's path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def quiet_on_closed_pipe(command: Callable[[], int]) -> int:
    """Run `command` (argument parsing included) and flush its output; 0 if the reader left."""
    try:
        try:
            return command()
        finally:  # also after argparse's SystemExit for --help and --version
            sys.stdout.flush()
    except BrokenPipeError:
        # The interpreter flushes stdout once more at exit: give it nowhere to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
