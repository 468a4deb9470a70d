"""Window and step lengths of the compliance chart: ``15m``, ``6h``, ``7d``, or plain seconds.

>>> parse_duration("15m"), parse_duration("7d"), parse_duration("3600")
(900, 604800, 3600)
>>> auto_step(900), auto_step(86_400), auto_step(7 * 86_400)
(60, 900, 7200)
"""

from __future__ import annotations

import re

from maskwatch.compliance import round_step

MIN_WINDOW_S = 15 * 60
MAX_WINDOW_S = 7 * 86_400  # the workers keep 8 days of minute buckets
MAX_POINTS = 2_000
TARGET_POINTS = 120  # enough to read a trend on a phone, few enough to draw at once
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
DURATION_PATTERN = r"^\s*([0-9]{1,7})\s*([smhd]?)\s*$"  # the API's schema shows it too
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> int:
    """Seconds in ``text``: a whole number with an optional unit s, m, h or d."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration: use a whole number with a unit, e.g. 15m, 6h or 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def auto_step(window_s: int) -> int:
    """The shortest round step of whole minutes that keeps the series at :data:`TARGET_POINTS` or fewer."""
    return round_step(window_s, TARGET_POINTS, at_least_s=60)


def check_window(window_s: int) -> None:
    if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window must be between 15m and 7d, got {window_s} s")


def check_step(window_s: int, step_s: int) -> None:
    if step_s <= 0 or step_s % 60:
        raise ValueError(f"step must be a whole number of minutes (1m, 5m, 1h...), got {step_s} s")
    if window_s / step_s > MAX_POINTS:
        raise ValueError(f"step {step_s} s cuts the window into more than {MAX_POINTS} points; use a longer step")
