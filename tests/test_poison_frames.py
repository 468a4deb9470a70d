"""Frames that hurt workers (docs/architecture.md, "Poison frames"), each attack replayed on real workers.

Each test writes to a camera's stream what anyone able to write to Redis could, runs workers as
real processes (or, where a fault must be injected into the pipeline, in this process) against a
real redis-server, and checks what an operator would: the good frames are counted once, only the
bad one is dead-lettered (with a bounded entry), and the worker lives on.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.codec import Frame, decode_result, encode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.utils import now_ms
from maskwatch.vision.jpeg import encode_jpeg
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared
from tests.frames import register, scenes, totals
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess, consumers, start_worker
from worker.service import Worker

pytestmark = pytest.mark.slow
CAM = "lobby"
# Leases move within 2 s of a kill; frames are never too old to count, however slow the machine.
FAST = {"lease_ttl_ms": 2000, "max_wait_ms": 20, "threads": 1, "frame_max_age_s": 3600}


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [s.image for s in scenes(need_shared(DATA / "facemask12k" / "test"), n=4, seed=11, faces=2)]


def entry(seq: int, image: np.ndarray, cam: str = CAM, **fields: Any) -> dict[str, Any]:
    """A frame entry as the producer writes it (a keyframe captured now), with ``fields`` replaced or added."""
    h, w = image.shape[:2]
    return {**encode_frame(Frame(cam=cam, seq=seq, ts=now_ms(), w=w, h=h, jpg=encode_jpeg(image, 90))), **fields}


def push(r: redis.Redis, keys: Keys, entries: list[dict[str, Any]], cam: str = CAM) -> list[str]:
    register(r, keys, cam)
    return [r.xadd(keys.frames(cam), e).decode() for e in entries]


def pending_of(r: redis.Redis, keys: Keys, cam: str) -> set[str]:
    """The camera's frames read by a worker and not committed (none before its group exists)."""
    try:
        return {p["message_id"].decode() for p in r.xpending_range(keys.frames(cam), keys.group, "-", "+", 100)}
    except redis.ResponseError:  # NOGROUP: no worker has taken the camera yet
        return set()


def dead_letters(r: redis.Redis, keys: Keys) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in f.items()} for _, f in r.xrange(keys.dlq)]


def counted_seqs(r: redis.Redis, keys: Keys, cam: str = CAM) -> Counter[int]:
    return Counter(res.seq for res in (decode_result(f) for _, f in r.xrange(keys.results)) if res.cam == cam)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.fixture
def workers(settings: Settings, logs: Path) -> Iterator[list[WorkerProcess]]:
    """Worker processes started by a test (append to the list); stopped at its end."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop()


def test_one_poison_frame_is_dead_lettered_alone_and_the_worker_lives_on(settings, r, keys, images, logs, workers):
    """Issue item 2: a frame with ts=2**53 in a batch of 16 crashed the worker three times and lost all 16."""
    good = [entry(seq, images[seq % len(images)]) for seq in range(16)]
    good[7] = {**good[7], "ts": 2**53}
    push(r, keys, good)
    worker = start_worker(settings, "w1", logs, batch_size=16, **FAST)
    workers.append(worker)
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 15 and r.xlen(keys.dlq) == 1, 90,
             lambda: f"15 frames counted and one dead-lettered, got {totals(r, keys, CAM)}" + worker.tail())
    (dead,) = dead_letters(r, keys)
    assert dead["seq"] == b"7" and b"'ts'" in dead["error"] and b"ahead" in dead["error"], dead["error"]
    assert sorted(counted_seqs(r, keys)) == [s for s in range(16) if s != 7], "each good frame has one result"
    assert worker.alive and "Traceback" not in worker.log_text(), "the worker did not crash"
    assert worker.metric("maskwatch_worker_dead_lettered_total", reason="malformed") == 1


class RaisesOnSize:
    """The real pipeline, but detection raises on frames of one size: a poison frame that passes the codec."""

    def __init__(self, pipeline: Pipeline, poison_shape: tuple[int, int]):
        self._pipeline, self.poison_shape = pipeline, poison_shape

    def detect(self, image: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        if image.shape[:2] == self.poison_shape:
            raise RuntimeError("the detector fails on this frame " + "x" * 50_000)
        return self._pipeline.detect(image, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)


def test_a_batch_that_raises_is_run_frame_by_frame(settings, r, keys, images, yunet_dir):
    """Any exception of a batch: its frames run alone, only the one that raises on its own is dead-lettered."""
    poison = cv2.resize(images[0], (320, 180))
    frames = [entry(seq, images[seq % len(images)]) for seq in range(16)]
    frames[9] = entry(9, poison)
    push(r, keys, frames)
    pipeline = RaisesOnSize(Pipeline.from_settings(settings.override(model_dir=yunet_dir)), poison.shape[:2])
    worker = Worker(settings.override(batch_size=16, **FAST), redis.Redis.from_url(settings.redis_url),
                    pipeline, "in-process")  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: totals(r, keys, CAM).get("frames") == 15 and r.xlen(keys.dlq) == 1, 90,
                 lambda: f"15 frames counted and one dead-lettered, got {totals(r, keys, CAM)}")
        assert thread.is_alive(), "the worker lives on"
    finally:
        worker.stop()
        thread.join(30)
    (dead,) = dead_letters(r, keys)
    assert dead["seq"] == b"9" and dead["error"].startswith(b"raised when run alone: RuntimeError"), dead["error"]
    assert len(dead["error"]) < 600, "the reason is cut short, not a copy of the exception's 50 kB message"
    assert sorted(counted_seqs(r, keys)) == [s for s in range(16) if s != 9]
    sample = worker.metrics.registry.get_sample_value
    assert sample("maskwatch_worker_isolated_frames_total") == 16, "every frame of the failed batch ran alone"
    assert sample("maskwatch_worker_dead_lettered_total", {"reason": "failed"}) == 1
    assert sample("maskwatch_worker_errors_total", {"cause": "exception"}) == 2, "the batch, then the frame alone"


def test_a_frame_that_kills_workers_is_dead_lettered_and_its_batch_counted(settings, r, keys, images, logs):
    """Issue item 8: a frame that kills every worker that runs it is told from workers killed for other reasons.

    The test plays the poison: it kills the worker (kill -9) whenever it runs the poison frame, in its
    batch and then alone. The good frames of its batch are counted; the poison is dead-lettered after
    ``max_deliveries`` (3) lone attempts that each ended with the worker dead.
    """
    frames = [entry(seq, images[seq % len(images)]) for seq in range(9)]
    # The poison is large, so the worker spends a while on it: the test's kill lands while it runs.
    big = cv2.resize(images[0], (1920, 1080))
    frames[4] = entry(4, big)
    ids = push(r, keys, frames)
    poison = ids[4]
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        started.append(start_worker(settings, f"w{len(started) + 1}", logs, batch_size=16, **FAST))
        return started[-1]

    try:
        worker = start()
        # Its first run: the poison in its batch (read, not committed) kills the worker.
        wait_for(lambda: poison in pending_of(r, keys, CAM), 90,
                 lambda: "the worker reading the poison's batch" + worker.tail(), every=0.005)
        worker.kill()
        for attempt in (1, 2, 3):  # then each time it is run alone
            worker = start()
            wait_for(lambda n=attempt: int(r.hget(keys.suspects(CAM), poison) or 0) == n, 90,
                     lambda n=attempt, w=worker: f"lone attempt {n} on the poison" + w.tail(), every=0.005)
            worker.kill()
        assert not dead_letters(r, keys), "no frame dead-lettered while the poison was still being tried"
        worker = start()
        wait_for(lambda: r.xlen(keys.dlq) == 1 and totals(r, keys, CAM).get("frames") == 8, 90,
                 lambda: f"the poison dead-lettered and the 8 good frames counted, got {totals(r, keys, CAM)}"
                 + worker.tail())
        assert worker.alive
    finally:
        for w in started:
            w.stop()
    (dead,) = dead_letters(r, keys)
    assert dead["entry"].decode() == poison and b"died on each of the 3 attempts" in dead["error"], dead
    seqs = counted_seqs(r, keys)
    assert sorted(seqs) == [0, 1, 2, 3, 5, 6, 7, 8] and max(seqs.values()) == 1, "good frames counted once each"
    assert not r.hexists(keys.suspects(CAM), poison), "the dead letter clears its attempts"


def bomb_entries(seq: int) -> dict[str, dict[str, Any]]:
    """Decompression bombs: small files that decode to 48 megapixels (an 8000x6000 flat picture)."""
    flat = np.full((6000, 8000, 3), 128, np.uint8)
    jpeg = cv2.imencode(".jpg", flat, [cv2.IMWRITE_JPEG_QUALITY, 10])[1].tobytes()
    png = cv2.imencode(".png", flat, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    base = {"v": 1, "cam": CAM, "ts": now_ms(), "key": 1}
    return {
        "jpeg declared small": {**base, "seq": seq, "w": 640, "h": 360, "jpg": jpeg},
        "jpeg declared as it is": {**base, "seq": seq + 1, "w": 8000, "h": 6000, "jpg": jpeg},
        "png declared small": {**base, "seq": seq + 2, "w": 640, "h": 360, "jpg": png},
    }


def test_decompression_bombs_are_refused_before_decoding(settings, r, keys, images, logs, workers):
    """Issue item 4: a small JPEG of 8000x6000 took a worker to 4.3 GB; now refused from its header, unread."""
    push(r, keys, [entry(0, images[0])])
    worker = start_worker(settings, "w1", logs, batch_size=4, **FAST)
    workers.append(worker)
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 1, 90, lambda: "the first frame counted" + worker.tail())
    before = worker.peak_rss_mb()
    bombs = bomb_entries(1)
    assert all(len(b["jpg"]) < 1_000_000 for b in bombs.values()), "each bomb is under a megabyte"
    push(r, keys, [*bombs.values(), entry(4, images[1])])
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 2 and r.xlen(keys.dlq) == 3, 90,
             lambda: f"the bombs dead-lettered and the next frame counted, got {totals(r, keys, CAM)}" + worker.tail())
    errors = {int(d["seq"]): d["error"].decode() for d in dead_letters(r, keys)}
    assert "'jpg' is a 8000x6000 JPEG, but the entry declares 640x360" in errors[1]
    assert "'w' must lie in [1, 7680], got 8000" in errors[2]
    assert "'jpg' is not a JPEG (no JPEG start-of-image marker)" in errors[3]
    grown = worker.peak_rss_mb() - before
    assert grown < 100, f"the worker's peak memory grew by {grown} MiB on the bombs (an 8000x6000 decode is 144 MB)"
    assert worker.alive


def test_an_8k_frame_is_searched_shrunk(settings, r, keys, images, logs, workers):
    """A frame as large as the codec allows (8K) is analysed, its frame pass shrunk to the detector's working
    size: the worker's memory grows by a fraction of what searching it whole took (2.7 GiB)."""
    push(r, keys, [entry(0, images[0])])
    worker = start_worker(settings, "w1", logs, batch_size=4, **FAST)
    workers.append(worker)
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 1, 90, lambda: "the first frame counted" + worker.tail())
    before = worker.peak_rss_mb()
    big = cv2.resize(images[1], (7680, 4320), interpolation=cv2.INTER_CUBIC)
    push(r, keys, [entry(1, big)])
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 2, 120, lambda: "the 8K frame counted" + worker.tail())
    grown = worker.peak_rss_mb() - before
    assert grown < 1000, f"the worker's peak memory grew by {grown} MiB on one 8K frame"
    (result,) = [decode_result(f) for _, f in r.xrange(keys.results) if decode_result(f).seq == 1]
    assert result.faces, "the faces of the enlarged scene are still found"
    assert all(max(f.box[2:]) > 100 for f in result.faces), "in the 8K frame's pixels"


def test_huge_fields_make_bounded_dead_letters_and_log_lines(settings, r, keys, images, logs, workers):
    """Issue item 9: a 20 MB field made a 41.9 MB log line and a 21 MB dead letter."""
    huge = b"9" * 20_000_000
    frame = entry(0, images[0])
    push(r, keys, [{**frame, "seq": huge}, {**frame, "cam": huge}, {**frame, "key": 0, "regions": huge},
                   {**frame, "ts": huge}, entry(1, images[1])])
    worker = start_worker(settings, "w1", logs, batch_size=8, **FAST)
    workers.append(worker)
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 1 and r.xlen(keys.dlq) == 4, 90,
             lambda: f"4 dead letters and the good frame counted, got {totals(r, keys, CAM)}" + worker.tail())
    for _, fields in r.xrange(keys.dlq):
        size = sum(len(k) + len(v) for k, v in fields.items())
        assert size < 2000, f"a dead letter of {size} bytes: {fields.get(b'error', b'')[:200]!r}"
        assert int(fields[b"entry_bytes"]) > 20_000_000, "it says how large the entry was"
        assert fields[b"error"].endswith(b" is 20000000 bytes long; at most 256 are allowed") or \
            fields[b"error"] == b"frame entry: field 'regions' is 20000000 bytes long; at most 384 are allowed"
    longest = max(len(line) for line in worker.log_text().splitlines())
    assert longest < 2000, f"a log line of {longest} characters"
    assert worker.alive
    r.delete(keys.frames(CAM))  # 80 MB the session's Redis need not keep


def test_frames_naming_another_camera_are_not_counted(settings, r, keys, images, logs, workers):
    """Issue item 9: an entry on a registered camera's stream naming another camera was counted for that one."""
    push(r, keys, [entry(0, images[0], cam="ghost"), entry(1, images[1])])
    worker = start_worker(settings, "w1", logs, batch_size=4, **FAST)
    workers.append(worker)
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 1 and r.xlen(keys.dlq) == 1, 90,
             lambda: f"the ghost frame dead-lettered, the other counted, got {totals(r, keys, CAM)}" + worker.tail())
    assert totals(r, keys, "ghost") == {} and not r.keys(keys.stats("ghost", "*"))
    (dead,) = dead_letters(r, keys)
    assert b"'cam' is 'ghost', but the entry is on the stream of camera 'lobby'" in dead["error"]
    assert worker.metric("maskwatch_worker_dead_lettered_total", reason="camera") == 1


def test_consumers_of_gone_workers_are_removed(settings, r, keys, images, logs, workers):
    """Issue item 9: every worker that ever read a camera stayed a consumer of its group forever."""
    push(r, keys, [entry(0, images[0]), entry(1, images[1])])
    stream = keys.frames(CAM)
    r.xgroup_create(stream, keys.group, id="0")
    for gone in ("gone-1", "gone-2"):  # workers that read nothing, or read and committed, then went
        for entry_id, _ in r.xreadgroup(keys.group, gone, {stream: ">"}, count=1)[0][1]:
            r.xack(stream, keys.group, entry_id)
    r.xreadgroup(keys.group, "gone-3", {stream: "0"}, count=1)  # an empty read: a consumer holding nothing
    push(r, keys, [entry(2, images[2])])
    assert consumers(r, keys, CAM) == {"gone-1", "gone-2", "gone-3"}
    worker = start_worker(settings, "w1", logs, batch_size=4, consumer_idle_ms=1000, **FAST)
    workers.append(worker)
    wait_for(lambda: consumers(r, keys, CAM) == {"w1"}, 60,
             lambda: f"only the live worker left in the group, got {consumers(r, keys, CAM)}" + worker.tail())
    wait_for(lambda: totals(r, keys, CAM).get("frames") == 1, 60, lambda: "the new frame counted" + worker.tail())
    assert worker.metric("maskwatch_worker_consumers_removed_total") == 3


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of its own, whose memory limit the test lowers (noeviction: writes are refused past it)."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=False).start()
    redis.Redis.from_url(server.url).config_set("maxmemory-policy", "noeviction")
    yield server
    server.stop()


def test_a_worker_survives_redis_out_of_memory(small_redis, images, logs, tmp_path):
    """Issue item 7: Redis refusing writes (maxmemory reached, noeviction) made the worker exit 1."""
    s = Settings.from_env().override(redis_url=small_redis.url, prefix="oom", state_dir=tmp_path / "state")
    r, keys = redis.Redis.from_url(small_redis.url), Keys("oom")
    push(r, keys, [entry(seq, images[seq % len(images)]) for seq in range(6)])
    r.set("ballast", b"x" * 4_000_000)
    r.config_set("maxmemory", "1mb")  # well under what is used: every write that allocates is refused
    with pytest.raises(redis.OutOfMemoryError):
        r.set("probe", 1)
    worker = start_worker(s, "w1", logs, batch_size=4, **FAST)
    try:
        wait_for(lambda: (worker.metric("maskwatch_worker_errors_total", cause="redis_oom") or 0) >= 3, 90,
                 lambda: "the worker retrying under OOM" + worker.tail())
        assert worker.alive, "out of memory, the worker lives on"
        assert "Redis is out of memory" in worker.log_text()
        assert not r.exists(keys.totals(CAM)), "nothing counted while Redis refuses writes"
        r.config_set("maxmemory", "0")
        wait_for(lambda: totals(r, keys, CAM).get("frames") == 6, 90,
                 lambda: f"every frame counted once Redis takes writes, got {totals(r, keys, CAM)}" + worker.tail())
        assert worker.alive and r.xlen(keys.dlq) == 0
        seqs = counted_seqs(r, keys)
        assert sorted(seqs) == list(range(6)) and max(seqs.values()) == 1
    finally:
        assert worker.stop() == 0, "and it stops cleanly"


def test_a_worker_mid_stream_survives_redis_out_of_memory(small_redis, images, logs, tmp_path):
    """Redis runs out of memory while a worker holds its camera: frames are counted once, none lost."""
    s = Settings.from_env().override(redis_url=small_redis.url, prefix="oom", state_dir=tmp_path / "state")
    r, keys = redis.Redis.from_url(small_redis.url), Keys("oom")
    n = 24
    push(r, keys, [entry(seq, images[seq % len(images)]) for seq in range(n)])
    worker = start_worker(s, "w1", logs, batch_size=2, **FAST)
    try:
        wait_for(lambda: totals(r, keys, CAM).get("frames"), 90, lambda: "a first frame counted" + worker.tail())
        r.set("ballast", b"x" * 4_000_000)
        r.config_set("maxmemory", "1mb")
        wait_for(lambda: (worker.metric("maskwatch_worker_errors_total", cause="redis_oom") or 0) >= 3, 90,
                 lambda: "the worker retrying under OOM" + worker.tail())
        assert worker.alive
        r.config_set("maxmemory", "0")
        wait_for(lambda: totals(r, keys, CAM).get("frames") == n, 120,
                 lambda: f"every frame counted, got {totals(r, keys, CAM)}" + worker.tail())
        seqs = counted_seqs(r, keys)
        assert sorted(seqs) == list(range(n)) and max(seqs.values()) == 1, "each frame counted exactly once"
        assert r.xlen(keys.dlq) == 0
    finally:
        assert worker.stop() == 0
