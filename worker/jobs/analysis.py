"""Offline analysis: a recorded video through the worker's detector and classifier, as an RQ job.

The frames are read by :func:`maskwatch.cli.predict.sources` and analysed by
:meth:`maskwatch.vision.pipeline.Pipeline.analyze`, the code the live worker runs, with the
camera's region of interest and minimum face size when ``camera`` is registered. The report (JSON
in ``mw:analysis:{job}``, listed in ``mw:analyses``, both expiring with the snapshots after
``MASKWATCH_SNAPSHOT_TTL_S``) holds totals, compliance over time and the violations, at most one
per ``MASKWATCH_EVENT_THROTTLE_S`` of video like live events, each with an annotated snapshot in
``mw:snap:analysis-{job}-{frame}``. Offline results never enter the live statistics.

While it runs, the job's ``meta["progress"]`` says ``{"frames", "total", "fraction"}``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rq import get_current_job
from rq.job import Job, JobStatus
from tqdm import tqdm

from maskwatch import jobstore
from maskwatch.cameras import Registry
from maskwatch.codec import Face
from maskwatch.compliance import Counts, round_step, total
from maskwatch.exceptions import InputError, MaskWatchError
from maskwatch.keys import Keys
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings
from maskwatch.utils import now_ms
from maskwatch.vision.media import check_video, sources
from maskwatch.vision.pipeline import FrameSpec
from maskwatch.vision.violations import find_violation, snapshot
from worker.jobs.queue import JobContext, context

log = logging.getLogger(__name__)
MAX_VIOLATIONS = 200
SERIES_POINTS = 120  # about this many points in compliance over time
PROGRESS_EVERY_S = 0.5
ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


class AnalysisError(MaskWatchError):
    """A video that cannot be analysed; the message names it and says why."""


def _counts(faces: list[Face]) -> Counts:
    n_with = sum(f.label == "with_mask" for f in faces)
    return Counts(frames=1, faces=len(faces), with_mask=n_with, without_mask=len(faces) - n_with)


def _counts_json(c: Counts) -> dict[str, Any]:
    return {"frames": c.frames, "faces": c.faces, "with_mask": c.with_mask, "without_mask": c.without_mask,
            "compliance": None if c.compliance is None else round(c.compliance, 4)}


class Analysis:
    """One video's analysis: sample, analyse in batches, keep totals, series and violations."""

    def __init__(self, ctx: JobContext, job_id: str, camera: str | None, fps: float, job: Job | None = None):
        self.ctx, self.job_id, self.camera, self.fps, self.job = ctx, job_id, camera, fps, job
        self.s = ctx.settings
        self.per_second: dict[int, Counts] = {}
        self.violations: list[dict[str, Any]] = []
        self._last_violation_s = -math.inf
        self._progress_at = 0.0

    def _spec(self) -> FrameSpec:
        return FrameSpec.for_camera(Registry(self.ctx.r, self.ctx.keys).get(self.camera) if self.camera else None)

    def run(self, path: Path, name: str) -> dict[str, Any]:
        cap = cv2.VideoCapture(str(path))
        video_fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        cap.release()
        video_fps = video_fps if video_fps and video_fps > 0 and math.isfinite(video_fps) else self.fps
        every = max(1, round(video_fps / self.fps))
        started = now_ms()
        try:
            check_video(path)  # by its content: an upload's name says nothing about what it holds
            items, expected, is_video = sources(path, every)
            if not is_video:
                raise AnalysisError(f"{name!r} is an image, not a video: use `maskwatch predict` for images")
            first = next(items)  # a corrupt file fails here, before the models load
            done = self._analyse(itertools.chain([first], items), video_fps, expected)
        except InputError as exc:
            reason = str(exc).replace(f"{path}: ", "").replace(str(path), repr(name))
            raise AnalysisError(f"video {name!r} cannot be read: {reason}") from None
        self._progress(done, done)
        totals = total(self.per_second.values())
        duration = (max(self.per_second) + 1) if self.per_second else 0
        step = round_step(duration, SERIES_POINTS)
        series = [{"t_s": t, **_counts_json(total(c for s, c in self.per_second.items() if t <= s < t + step))}
                  for t in range(0, duration, step)]
        return {"job_id": self.job_id, "video": name, "camera": self.camera, "fps": self.fps,
                "video_fps": round(video_fps, 3), "duration_s": round(done * every / video_fps, 3),
                "frames_analysed": done, "started_ms": started, "finished_ms": now_ms(),
                "totals": _counts_json(totals), "step_s": step, "series": series, "violations": self.violations}

    def _analyse(self, items: Iterator[tuple[str, int, np.ndarray | None]], video_fps: float,
                 expected: int | None) -> int:
        pipeline, spec = self.ctx.pipeline(), self._spec()
        done = 0
        batch: list[tuple[int, np.ndarray]] = []
        for _, index, image in items:
            if self.ctx.stop is not None and self.ctx.stop.stopping:
                raise AnalysisError(f"stopped after {done} frames: the jobs runner is shutting down; "
                                    "queue the video again")
            if image is not None:
                batch.append((index, image))
            if len(batch) >= max(1, self.s.batch_size):
                done += self._batch(pipeline.analyze([img for _, img in batch], [spec] * len(batch)), batch, video_fps)
                batch = []
                self._progress(done, expected)
        if batch:
            done += self._batch(pipeline.analyze([img for _, img in batch], [spec] * len(batch)), batch, video_fps)
        return done

    def _batch(self, faces_per_frame: list[list[Face]], batch: list[tuple[int, np.ndarray]], video_fps: float) -> int:
        for (index, image), faces in zip(batch, faces_per_frame):
            t = index / video_fps
            second = int(t)
            self.per_second[second] = self.per_second.get(second, Counts()) + _counts(faces)
            self._violation(index, t, image, faces)
        return len(batch)

    def _violation(self, index: int, t: float, image: np.ndarray, faces: list[Face]) -> None:
        violation = find_violation(faces)
        if (violation is None or t - self._last_violation_s < self.s.event_throttle_s
                or len(self.violations) >= MAX_VIOLATIONS):
            return
        self._last_violation_s = t
        worst = violation.worst
        snap = f"analysis-{self.job_id}-{index}"
        self.ctx.r.set(self.ctx.keys.snap(snap), snapshot(image, faces), ex=self.s.snapshot_ttl_s)
        self.violations.append({"t_s": round(t, 3), "frame": index, "probability": round(worst.score, 4),
                                "box": list(worst.box), "without_mask": violation.unmasked, "faces": len(faces),
                                "snapshot": snap, "snapshot_url": self.ctx.snapshot_url(snap)})

    def _progress(self, done: int, expected: int | None) -> None:
        if self.job is None or (time.monotonic() - self._progress_at < PROGRESS_EVERY_S and done != expected):
            return
        self._progress_at = time.monotonic()
        fraction = min(1.0, done / expected) if expected else None
        self.job.meta["progress"] = {"frames": done, "total": expected, "fraction": fraction}
        self.job.save_meta()


@contextmanager
def _local_file(ctx: JobContext, source: Mapping[str, str]) -> Iterator[tuple[Path, str]]:
    """The video as a local file and its display name; an upload is copied out of Redis and then dropped."""
    if "path" in source:
        path = Path(source["path"])
        if not path.is_file():
            raise AnalysisError(f"video {str(path)!r} not found: the jobs runner reads it from its own disk")
        yield path, source.get("name") or path.name
        return
    name, key = source.get("name") or "upload", ctx.keys.upload(source["upload"])
    data: Any = ctx.r.get(key)
    if data is None:
        raise AnalysisError(f"the uploaded video {name!r} is gone (uploads are kept "
                            f"{jobstore.UPLOAD_TTL_S // 3600} h); upload it again")
    try:
        with tempfile.NamedTemporaryFile(suffix=Path(name).suffix or ".mp4") as tmp:
            tmp.write(data)
            tmp.flush()
            yield Path(tmp.name), name
    finally:
        ctx.r.delete(key)


def analyze_video(source: dict[str, str], camera: str | None = None, fps: float = 5.0) -> dict[str, Any]:
    """The job: analyse ``source``, store the report under the job's id, return its totals."""
    ctx, job = context(), get_current_job()
    job_id = job.id if job is not None else f"local-{now_ms()}"
    try:
        with _local_file(ctx, source) as (path, name):
            log.info("analysing %s at %.1f fps (job %s)", name, fps, job_id, extra={"cam": camera or "-"})
            report = Analysis(ctx, job_id, camera, fps, job).run(path, name)
    except Exception:
        ctx.metrics.analyses.labels("failed").inc()
        raise
    jobstore.save_report(ctx.r, ctx.keys, job_id, report, ctx.settings.snapshot_ttl_s)
    ctx.metrics.analyses.labels("finished").inc()
    return {"report": job_id, "totals": report["totals"]}


def main(settings: Settings, video: Path, camera: str | None = None, fps: float = 5.0, wait: bool = False) -> int:
    """`maskwatch analyze VIDEO`: queue the job; with ``wait``, follow it and print the report as JSON."""
    path = Path(video).expanduser().resolve()
    if not path.is_file():
        raise InputError(f"{video}: no such video file; give the path of a recorded video")
    r = connect(settings)
    job = jobstore.enqueue_analysis(r, settings.prefix, {"path": str(path), "name": path.name}, camera, fps)
    print(f"queued analysis job {job.id}; `maskwatch jobs` runs it, the dashboard shows it at /jobs/analyses/{job.id}",
          file=sys.stderr)
    if not wait:
        print(json.dumps({"job_id": job.id}))
        return 0
    status = _follow(job)
    if status != JobStatus.FINISHED:
        info = jobstore.job_info(job)
        print(f"maskwatch analyze: job {job.id} {status.value}: {info.error or 'no error recorded'}", file=sys.stderr)
        return 1
    print(json.dumps(jobstore.read_report(r, Keys(settings.prefix), job.id), indent=2))
    return 0


def _follow(job: Job) -> JobStatus:
    """Wait for the job to end, showing its progress; returns its final status."""
    with tqdm(total=None, unit="frame", desc="analysing", disable=None, file=sys.stderr) as bar:
        while (status := job.get_status(refresh=True)) not in ENDED:
            progress = job.get_meta(refresh=True).get("progress") or {}
            if progress.get("total") and bar.total != progress["total"]:
                bar.total = progress["total"]
            bar.update(int(progress.get("frames", 0)) - bar.n)
            time.sleep(0.5)
    return status
