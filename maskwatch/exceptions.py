"""The exceptions every part of MaskWatch shares.

:class:`MaskWatchError` is the base of what the *user* can fix (a setting, a camera, a file, an
unreachable Redis): its message says what is wrong and how to fix it, and the command line prints
it in one line and exits with status 2. Anything else is a bug and prints its traceback.

:class:`BadFrame` is not the user's: it marks a malformed stream entry or image that the worker
dead-letters and the readers skip, and it never reaches the command line.

An app keeps an exception that only it raises (``trainer.datasets.DatasetError``, say); when the
user can fix it, it derives from :class:`MaskWatchError` too.
"""

from __future__ import annotations


class MaskWatchError(Exception):
    """Something the user can fix; the message names it and says how."""


class InputError(MaskWatchError):
    """A file, folder or video that cannot be read as what was asked for."""


class SettingsError(MaskWatchError):
    """A setting with a value that cannot be used; the message names the variable or flag."""


class CameraError(MaskWatchError):
    """A camera config that cannot be used; the message names the field."""


class ArtifactError(MaskWatchError):
    """A classifier artifact (``.mwm``) that cannot be loaded or served; the message names the file."""


class ModelFileError(MaskWatchError):
    """A third-party model file (YuNet) that is missing, corrupt or cannot be downloaded."""


class RedisUnavailable(MaskWatchError):
    """Redis cannot be reached or started; the message says where it looked and what to do."""


class JobInputError(MaskWatchError):
    """An analysis request that cannot be run; the message names the option or the upload."""


class BadFrame(ValueError):
    """Stream data that cannot be used: a malformed entry or an undecodable image (dead-lettered)."""


class MessageError(BadFrame):
    """A stream entry with a missing or malformed field.

    >>> str(MessageError("frame", "seq", "is missing"))
    "frame entry: field 'seq' is missing"
    """

    def __init__(self, kind: str, field: str, problem: str):
        super().__init__(f"{kind} entry: field {field!r} {problem}")
        self.kind = kind
        self.field = field


class DecodeError(BadFrame):
    """Bytes that are not a decodable image, or an image that cannot be encoded."""
