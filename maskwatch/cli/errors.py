"""Which exceptions are the user's to fix (said in one line) rather than bugs (shown with a traceback)."""

from __future__ import annotations


def is_user_error(exc: BaseException) -> bool:
    from maskwatch.artifact import ArtifactError
    from maskwatch.cameras import CameraError
    from maskwatch.modelfiles import ModelFileError
    from maskwatch.exceptions import InputError
    from maskwatch.redis_conn import RedisUnavailable
    from maskwatch.settings import SettingsError

    return isinstance(exc, (ArtifactError, CameraError, ModelFileError, RedisUnavailable, SettingsError, InputError,
                            FileNotFoundError, PermissionError, ValueError))
