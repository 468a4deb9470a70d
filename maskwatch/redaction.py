"""Keep secrets out of logs, pages and API output: camera URLs lose their password.

>>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
'rtsp://admin:***@10.0.0.5:554/stream1'
>>> mask_url("http://cam/snap.jpg?user=admin&password=hunter2")
'http://cam/snap.jpg?user=admin&password=***'
>>> mask_url("/videos/lobby.mp4")
'/videos/lobby.mp4'
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/]*)(?::(?P<pw>[^@/]*))?@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|pass|token|key|secret|auth)=)[^&#]*")


def mask_url(url: str) -> str:
    """Replace the password in ``scheme://user:password@host`` and in secret-looking query parameters."""
    def userinfo(m: re.Match[str]) -> str:
        if m.group("pw") is None:
            return m.group(0)
        return f"{m.group('scheme')}{m.group('user')}:***@"

    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(userinfo, url, count=1))


def mask_text(text: str, url: str) -> str:
    """Replace every appearance of ``url`` (and its password) in an error message."""
    masked = mask_url(url)
    if masked == url:
        return text
    text = text.replace(url, masked)
    m = _USERINFO.match(url)
    if m and m.group("pw"):
        text = text.replace(m.group("pw"), "***")
    return text
