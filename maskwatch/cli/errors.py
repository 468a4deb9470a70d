"""How a command ends on an error: the user's in one line with status 2, a bug with its traceback.

Only a :class:`~maskwatch.exceptions.MaskWatchError` is the user's to fix (a setting, a camera, a
file, an unreachable Redis); its message says what is wrong and how to fix it. Anything else is
a bug and propagates, so Python prints its traceback and exits non-zero.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from maskwatch.exceptions import MaskWatchError

log = logging.getLogger("maskwatch.cli")

USER_ERROR = 2  # exit status of a MaskWatchError, as argparse uses for a bad flag
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def run_reporting(command: str, run: Callable[[], int | None]) -> int:
    """Run ``command``'s body; a user error is said in one line, Ctrl-C ends quietly."""
    try:
        return int(run() or 0)
    except KeyboardInterrupt:
        return INTERRUPTED
    except MaskWatchError as exc:
        log.debug("maskwatch %s failed", command, exc_info=exc)  # the traceback, with --log-level DEBUG
        print(f"maskwatch {command}: error: {exc}", file=sys.stderr)
        return USER_ERROR
