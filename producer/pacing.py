"""When to take a frame: pick frames at a camera's target fps, and play video files in real time.

Frames between two picks are dropped at the source, never queued, so a slow consumer can never
make a camera fall behind live.

>>> p = Pacer(5.0)                      # a 25 fps source sent on at 5 fps: every 5th frame
>>> [i for i in range(21) if p.due(i / 25)]
[0, 5, 10, 15, 20]
>>> c = MediaClock()                    # frame 1 of a 25 fps file, asked for right at the start
>>> c.delay(0.0, now=100.0), round(c.delay(0.04, now=100.0), 3)
(0.0, 0.04)
"""

from __future__ import annotations

# A pick may come this share of a period early: media times such as 15/25 and 3 * 0.2 differ
# in the last bit, and a live camera's frames jitter around their nominal times.
_EARLY = 0.01
# A file that decodes slower than real time gives up catching up once it is this late (seconds).
_MAX_LATE_S = 1.0


class Pacer:
    """Says which frames to send so that, on average, ``fps`` frames a second go out."""

    def __init__(self, fps: float):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps
        self._next: float | None = None

    def due(self, t: float) -> bool:
        """Whether the frame at time ``t`` (seconds, any fixed origin) is to be sent."""
        if self._next is not None and t < self._next - _EARLY * self.period:
            return False
        # Stay on the grid of due times so the mean rate is exact, unless a whole period was missed.
        if self._next is None or t - self._next >= self.period:
            self._next = t
        self._next += self.period
        return True


class MediaClock:
    """Maps a video file's media time to wall time, so a file camera runs at its own speed like a live one."""

    def __init__(self) -> None:
        self._origin: float | None = None

    def delay(self, media_t: float, now: float) -> float:
        """Seconds to wait until the frame at ``media_t`` is due, given the monotonic time ``now``."""
        if self._origin is None:
            self._origin = now - media_t
        wait = self._origin + media_t - now
        if wait < -_MAX_LATE_S:
            self._origin = now - media_t
            return 0.0
        return max(0.0, wait)
