"""Keep secrets out of logs, pages and API output: every URL shown or logged goes through :func:`mask_url`.

A URL is parsed, not pattern-matched, and the parse errs on the side of hiding:

* the **userinfo** loses its password (``user:***@``), or all of it when there is no ``:``
  (``https://TOKEN@host`` is a token, not a user name). The userinfo ends at the *last* ``@`` of the
  authority, so a password holding an unescaped ``@`` is hidden whole; and when the authority holds
  a ``:``, at the last ``@`` before the query, so one holding an unescaped ``/`` is too (a URL
  with an ``@`` in its path then shows less than it could, never more);
* **query and fragment parameters** whose name looks like a secret (token, access_token, api_key,
  apikey, key, sig, signature, password, pass, pwd, secret, auth, credential, session, jwt, in any
  case and with ``-``, ``_`` or ``.`` anywhere) lose their value.

:func:`mask_text` masks every URL found in a text (an error message, a log line) and, given the
URLs the text is about, every appearance of their secrets on their own (a server echoing a
password). The logging set up by :mod:`maskwatch.service` passes every line through it as well.

>>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
'rtsp://admin:***@10.0.0.5:554/stream1'
>>> mask_url("rtsp://admin:p@ss@cam/1"), mask_url("rtsp://admin:pa/ss@cam/1")
('rtsp://admin:***@cam/1', 'rtsp://admin:***@cam/1')
>>> mask_url("https://ghp_0123456789@git.example/x")
'https://***@git.example/x'
>>> mask_url("http://cam/snap.jpg?user=admin&access_token=abc&X-Amz-Signature=def")
'http://cam/snap.jpg?user=admin&access_token=***&X-Amz-Signature=***'
>>> mask_url("http://cam/snap@2x.jpg"), mask_url("/videos/lobby.mp4")
('http://cam/snap@2x.jpg', '/videos/lobby.mp4')
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

__all__ = ["mask_text", "mask_url"]

MASK = "***"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# A URL inside a text: up to the next blank, quote or angle bracket, or the next URL ("a=URL1,b=URL2").
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://(?:(?![A-Za-z][A-Za-z0-9+.-]*://)[^\s'\"<>])+")
# Parameter names that carry secrets, compared lower-cased with '-', '_' and '.' taken out.
_SECRET_WORDS = ("token", "key", "sig", "pass", "pwd", "secret", "auth", "credential", "session", "jwt")
_MIN_SECRET = 3  # shorter values are not hunted for on their own in a text: "1" would wipe every digit


def mask_url(url: str) -> str:
    """``url`` as it may be shown: the password (or a lone token) of its userinfo and secret parameters as ``***``.

    URLs inside it (a list of them, a redirect parameter) are masked too.
    """
    return _in_text(_masked(url)[0])


def mask_text(text: str, *urls: str) -> str:
    """``text`` with every URL in it masked, and the secrets of ``urls`` (the URLs it is about) wherever they appear."""
    for url in urls:
        for secret in sorted(_masked(url)[1], key=len, reverse=True):
            text = text.replace(secret, MASK)
    return _in_text(text)


def _in_text(text: str) -> str:
    return _URL_IN_TEXT.sub(lambda m: _masked(m.group(0))[0], text)


def _masked(url: str) -> tuple[str, set[str]]:
    """The masked URL, and the secrets taken out of it (as written and percent-decoded)."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url, set()  # a file path or a webcam index: nothing secret
    secrets: set[str] = set()
    head, rest = scheme.group(0), url[scheme.end():]
    if rest.startswith("//"):
        head, rest = head + "//", rest[2:]
        rest = _mask_userinfo(rest, secrets)
    end = _first(rest, "?#")
    path, tail = rest[:end], rest[end:]
    return head + path + _mask_parameters(tail, secrets), {s for s in secrets if len(s) >= _MIN_SECRET}


def _first(text: str, chars: str) -> int:
    """Index of the first of ``chars`` in ``text``, or its length."""
    return min((i for i in (text.find(c) for c in chars) if i >= 0), default=len(text))


def _mask_userinfo(rest: str, secrets: set[str]) -> str:
    """``rest`` (the URL after ``scheme://``) with the password or token of its userinfo masked."""
    before_query = rest[:_first(rest, "?#")]
    authority_end = _first(before_query, "/")
    if ":" in before_query[:authority_end]:
        at = before_query.rfind("@")  # "user:pa/ss@host": a password may hold a '/', so look past it
    else:
        at = before_query.rfind("@", 0, authority_end)
    if at < 0:
        return rest
    userinfo = rest[:at]
    user, colon, password = userinfo.partition(":")
    hidden = password if colon else userinfo
    secrets.update({hidden, unquote(hidden)})
    shown = f"{user}:{MASK}" if colon else MASK
    return shown + rest[at:]


def _mask_parameters(tail: str, secrets: set[str]) -> str:
    """``?query#fragment`` with the values of secret-looking parameters masked (``&`` or ``;`` between them)."""
    def param(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2)
        if not _secret_name(name):
            return m.group(0)
        secrets.update({value, unquote_plus(value)})
        return f"{name}={MASK}"

    return re.sub(r"([^?#&;=]+)=([^&;#]*)", param, tail)


def _secret_name(name: str) -> bool:
    plain = re.sub(r"[-_.]", "", unquote_plus(name).lower())
    return any(word in plain for word in _SECRET_WORDS)
