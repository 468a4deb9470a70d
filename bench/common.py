"""What every benchmark shares: machine facts, timing as rates and ratios, tables, the final JSON line,
test scenes as JPEG frames, a private Redis and child processes.

Timings on a shared machine are noisy, so a figure is only ever compared with a baseline taken in the
same run: :func:`interleaved` measures several cases in alternating rounds and keeps each one's median.

>>> rows = [["a", 1.0], ["bb", 2.5]]
>>> print(table("demo", ["name", "value"], rows))
demo
name | value
---- | -----
a    | 1.000
bb   | 2.500
>>> ratio(3.0, 2.0), ratio(1.0, 0.0)
(1.5, None)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.scenes.compose import Scene, compose_scene, load_face_pool
from maskwatch.artifact import default_model_path
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import EmbeddedRedis
from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.utils import now_ms
from maskwatch.vision.jpeg import encode_jpeg

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
MODELS = SHARED / "models"
SCENE_DATA = DATA / "facemask12k" / "test"


class BenchError(SystemExit):
    """A benchmark that cannot run (missing model or data); the message says what to provide."""

    def __init__(self, message: str):
        super().__init__(f"bench: {message}")


def use_shared_models() -> None:
    """Benchmarks never download: YuNet comes from the shared models folder unless told otherwise."""
    os.environ.setdefault("MASKWATCH_MODEL_DIR", str(MODELS))


def model_path(given: Path | None = None) -> Path:
    """The classifier to benchmark: ``--model``, else MASKWATCH_MODEL, else the shipped default."""
    env = os.environ.get("MASKWATCH_MODEL")
    path = Path(given or env or default_model_path())
    if not path.is_file():
        raise BenchError(f"no classifier at {path}; pass --model PATH.mwm or set MASKWATCH_MODEL")
    return path


def model_for_children(given: Path | None) -> Path:
    """Resolve the classifier now (fail before any process starts) and hand it to child processes."""
    path = model_path(given)
    os.environ["MASKWATCH_MODEL"] = str(path)
    return path


def parse_pair(text: str, form: str = "WIDTHxHEIGHT", example: str = "640x360") -> tuple[int, int]:
    """Two positive integers written ``AxB`` (an argparse type), e.g. a frame size ``640x360``."""
    import argparse

    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {form}, e.g. {example}") from None
    if a < 1 or b < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both numbers of {form} must be at least 1")
    return a, b


def need(path: Path) -> Path:
    if not path.exists():
        raise BenchError(f"{path} is absent: put MaskWatch's shared data at {SHARED} (or set MASKWATCH_SHARED)")
    return path


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare runs: cores, CPU model, load when the run began."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "load_1min_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version()}


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 3 places, or None when there is no baseline."""
    if a is None or not b:
        return None
    return round(a / b, 3)


def rate(fn: Callable[[], object], items: int, min_s: float = 0.5, min_reps: int = 1) -> float:
    """Items per second of ``fn`` (which handles ``items`` per call), called until ``min_s`` and ``min_reps``."""
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if reps >= min_reps and elapsed >= min_s:
            return items * reps / elapsed


def interleaved(cases: Mapping[str, tuple[Callable[[], object], int]], rounds: int = 2, min_s: float = 0.5,
                warmup: bool = True) -> dict[str, float]:
    """Median items/s of each case; rounds alternate the order so load changes hit every case alike.

    ``cases`` maps a name to (callable, items handled per call).
    """
    if warmup:
        for fn, _ in cases.values():
            fn()
    seen: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            fn, items = cases[name]
            seen[name].append(rate(fn, items, min_s))
    return {name: float(np.median(v)) for name, v in seen.items()}


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    if not len(values):
        return {f"p{q}": None for q in qs}
    arr = np.asarray(values, np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 1) for q in qs}


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (also valid Markdown apart from the title line)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(parts: Sequence[str]) -> str:
        return " | ".join(p.ljust(w) for p, w in zip(parts, widths)).rstrip()

    out = [title, line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out)


def show(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(table(title, headers, rows), end="\n\n", flush=True)


def emit(figures: dict[str, Any]) -> None:
    """The last line of every benchmark: its figures as one JSON object."""
    print(json.dumps(figures, separators=(",", ":")), flush=True)


def scenes(n: int, faces: int = 6, size: tuple[int, int] = (640, 360), face_px: tuple[int, int] = (32, 56),
           seed: int = 0, data: Path = SCENE_DATA) -> list[Scene]:
    """``n`` composed CCTV-like scenes with ``faces`` faces each, masked and unmasked at random."""
    rng = np.random.default_rng(seed)
    pool = load_face_pool(need(data), 32, rng)
    return [compose_scene(pool, rng, size=size, faces=faces, face_px=face_px) for _ in range(n)]


def frame_jpegs(images: Sequence[np.ndarray], quality: int = 85) -> list[bytes]:
    """The frames as a producer would push them (JPEG at the producer's default quality)."""
    return [encode_jpeg(img, quality) for img in images]


def register(r: redis.Redis, keys: Keys, cam: str) -> None:
    """Put ``cam`` in the registry if it is not there: workers analyse registered cameras only."""
    registry = Registry(r, keys)
    if registry.get(cam) is None:
        registry.put(CameraConfig(id=cam, url=f"{cam}.mp4"))


def prefill(r: redis.Redis, keys: Keys, cam: str, jpegs: Sequence[bytes], shape: tuple[int, int],
            start_seq: int = 0) -> int:
    """Register ``cam`` and XADD every JPEG to its frames stream as a keyframe (capture time now) in one pipeline.

    Returns how many. Keyframes are analysed whole, as every frame was before motion gating.
    """
    register(r, keys, cam)
    h, w = shape
    pipe = r.pipeline(transaction=False)
    now = now_ms()
    for i, jpg in enumerate(jpegs):
        pipe.xadd(keys.frames(cam), encode_frame(Frame(cam=cam, seq=start_seq + i, ts=now, w=w, h=h, jpg=jpg)))
    pipe.execute()
    return len(jpegs)


@contextmanager
def private_redis() -> Iterator[EmbeddedRedis]:
    """A throw-away redis-server on a free port, without persistence."""
    with tempfile.TemporaryDirectory(prefix="mwbench-redis-") as tmp, EmbeddedRedis(Path(tmp), persist=False) as server:
        yield server


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a MaskWatch child process: ours, the shared models, the extra variables."""
    use_shared_models()
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m ...args`` from the project root with output going to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the child (and its own children: it leads its session), then SIGKILL if it lingers."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(sid: int) -> float:
    """CPU seconds of every live process in session ``sid`` (a child started by :func:`spawn` and its descendants)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while we looked
            continue
        if int(fields[3]) == sid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def redis_cpu_seconds(r: redis.Redis) -> float:
    """redis-server's own CPU seconds (INFO cpu: microsecond resolution)."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
