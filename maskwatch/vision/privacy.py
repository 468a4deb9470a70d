"""Privacy by default: which face images may be kept, and the faces blurred in those that are.

Operators in many countries may not keep the faces of people who complied. Per site, overridable
per camera (docs/architecture.md, "People"):

- ``store``: ``none`` keeps no image of anyone in Redis (no snapshot, no live frame);
  ``violations`` (default) keeps snapshots of people without a mask only; ``all`` keeps everyone's.
- ``blur_others`` (default on): in a stored snapshot every face but the violator's is blurred, and
  in the live frame every masked face is.
- ``retention_days`` (default 7): person records, events and their snapshots expire after it.

>>> p = Privacy(store="violations", blur_others=True, retention_days=7)
>>> p.may_keep("without_mask"), p.may_keep("with_mask"), p.live_frame, p.retention_s
(True, False, True, 604800)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from maskwatch.codec import Face

if TYPE_CHECKING:
    from maskwatch.cameras import CameraConfig
    from maskwatch.settings import Settings

Box = tuple[int, int, int, int]
BLUR_GROW = 0.2  # a blurred face's box grows by this share on each side: hair and chin identify too


@dataclass(frozen=True)
class Privacy:
    store: str  # none | violations | all
    blur_others: bool
    retention_days: int

    @classmethod
    def for_camera(cls, s: Settings, cam: CameraConfig | None) -> Privacy:
        """The site's settings, overridden by the camera's where it sets them."""
        def pick(name: str) -> object:
            own = getattr(cam, name, None) if cam is not None else None
            return getattr(s, name) if own is None else own

        return cls(store=str(pick("store")), blur_others=bool(pick("blur_others")),
                   retention_days=int(pick("retention_days")))  # type: ignore[call-overload]

    @property
    def retention_s(self) -> int:
        return self.retention_days * 86_400

    @property
    def live_frame(self) -> bool:
        """Whether the newest annotated frame may be kept (briefly) for the live view."""
        return self.store != "none"

    def may_keep(self, label: str) -> bool:
        """Whether a snapshot of a person labelled ``label`` may be stored."""
        return self.store == "all" or (self.store == "violations" and label == "without_mask")

    def live(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """The live frame as it may be shown: masked faces blurred when ``blur_others``."""
        if not self.blur_others:
            return image
        return blur(image, [f.box for f in faces if f.label != "without_mask"])

    def snapshot(self, image: np.ndarray, faces: Sequence[Face], subject: Box) -> np.ndarray:
        """A snapshot of the person at ``subject``: every other face blurred when ``blur_others``."""
        if not self.blur_others:
            return image
        return blur(image, [f.box for f in faces if f.box != subject])


def blur(image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """A copy of ``image`` with each box (grown by :data:`BLUR_GROW`) blurred past recognition.

    >>> img = np.zeros((40, 40, 3), np.uint8); img[10:20, 10:20] = 255
    >>> out = blur(img, [(10, 10, 10, 10)])
    >>> int(out[15, 15].max()) < 255, int(img[15, 15].max())
    (True, 255)
    """
    if not boxes:
        return image
    out = image.copy()
    h, w = out.shape[:2]
    for x, y, bw, bh in boxes:
        gx, gy = round(bw * BLUR_GROW), round(bh * BLUR_GROW)
        x0, y0, x1, y1 = max(0, x - gx), max(0, y - gy), min(w, x + bw + gx), min(h, y + bh + gy)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        patch = out[y0:y1, x0:x1]
        # Pixelate, then smooth: a blur alone of a small face can be undone, a few blocks cannot.
        small = cv2.resize(patch, (max(1, (x1 - x0) // 8), max(1, (y1 - y0) // 8)), interpolation=cv2.INTER_AREA)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR),
                                             (0, 0), max(1.0, (x1 - x0) / 8))
    return out
