"""The exceptions every part of MaskWatch shares.

:class:`MaskWatchError` is the base of what the *user* can fix (a setting, a camera, a file, an
unreachable Redis): its message says what is wrong and how to fix it, and the command line prints
it in one line and exits with status 2. Anything else is a bug and prints its traceback.
"""

from __future__ import annotations


class MaskWatchError(Exception):
    """Something the user can fix; the message names it and says how."""


class InputError(MaskWatchError):
    """A file, folder or video that cannot be read as what was asked for."""
