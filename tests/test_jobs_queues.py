"""`maskwatch jobs` as a real process: webhooks and analysis on their own queues and threads, deliveries at once.

The hardening issue's item 6: one RQ worker served both kinds, so a receiver that hung let one
delivery out per timeout, and a long analysis held every webhook back until it ended. Here the
receivers are real HTTP servers on 127.0.0.1 that answer, hang or trickle, and the order of what
they saw (not a clock) tells whether one delivery waited for another.
"""

from __future__ import annotations

import collections
import itertools
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from rq.job import JobStatus

from maskwatch import jobstore
from maskwatch.cli.up import child_env
from maskwatch.codec import Event, encode_event
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.support.producer import make_video
from tests.support.waiting import stop, wait_for
from tests.support.webhooks import DRIP, HANG, Receiver, receiver
from worker.jobs.dispatch import ensure_group
from worker.jobs.webhooks import job_timeout_s

SECRET = "shared-secret"
_seqs = itertools.count(1)


def hook_settings(settings: Settings, targets: str, **more: object) -> Settings:
    return settings.override(webhook_url=targets, webhook_secret=SECRET, **more)


def violation(r: redis.Redis, keys: Keys, cam: str) -> None:
    seq = next(_seqs)
    r.xadd(keys.events, encode_event(Event(cam=cam, seq=seq, ts=1_700_000_000_000 + seq, score=0.9,
                                           box=(1, 2, 3, 4), snap=f"{cam}-{seq}")))


@contextmanager
def jobs_process(s: Settings, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`maskwatch jobs ARGS` with ``s``; SIGTERM at the end must stop it with status 0."""
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "jobs", *args], env=child_env(s),
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        yield proc
        assert proc.poll() is None, f"the jobs runner exited early:\n{log.read_text()[-3000:]}"
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0, log.read_text()[-3000:]


def attempts_by_id(*receivers: Receiver) -> dict[str, list[int]]:
    """Each delivery id's attempts as they arrived; fails if one (id, attempt) arrived twice."""
    arrivals = [a for rec in receivers for a in rec.arrivals]
    twice = [k for k, n in collections.Counter(a.key for a in arrivals).items() if n > 1]
    assert not twice, f"these (delivery id, attempt) reached a receiver more than once: {twice}"
    out: dict[str, list[int]] = collections.defaultdict(list)
    for a in sorted(arrivals, key=lambda a: a.arrived):
        out[a.body["delivery_id"]].append(a.body["attempt"])
    return dict(out)


def test_a_hung_receiver_holds_up_only_its_own_deliveries(settings, r, keys, tmp_path):
    with receiver(HANG) as stuck, receiver() as good:
        # Long enough that nothing here times out: what arrives meanwhile went past the hung deliveries.
        s = hook_settings(settings, f"stuck={stuck.url}, lobby={good.url}", webhook_timeout_s=30, webhook_concurrency=4)
        ensure_group(r, keys)
        with jobs_process(s, tmp_path / "jobs.log") as proc:
            for _ in range(3):
                violation(r, keys, "stuck")
            wait_for(lambda: len(stuck.open) == 3, 30, lambda: f"three deliveries at once at the hung receiver "
                     f"(got {len(stuck.arrivals)}; exited: {proc.poll()})")
            for _ in range(3):
                violation(r, keys, "lobby")
            wait_for(lambda: len(good.arrivals) == 3, 20, "the other camera's deliveries, past the hung ones")
            assert len(stuck.open) == 3, "they came while the hung deliveries were still held"
            stuck.release()
            wait_for(lambda: all(a.ended is not None for a in stuck.arrivals), 20, "the hung deliveries to end")
    assert [a.answered for a in stuck.arrivals + good.arrivals] == [True] * 6
    assert sorted(attempts_by_id(stuck, good).values()) == [[1]] * 6, "each delivery once, at its first attempt"


def test_each_delivery_id_reaches_the_receiver_once_per_attempt(settings, r, keys, tmp_path):
    """More hung deliveries than threads, every attempt timed out and retried: never an attempt twice,
    never a retry while its previous attempt still holds the receiver."""
    with receiver(HANG) as stuck:
        s = hook_settings(settings, stuck.url, webhook_timeout_s=0.5, webhook_tries=3, webhook_backoff_s=0.5,
                          webhook_concurrency=4)
        ensure_group(r, keys)
        with jobs_process(s, tmp_path / "jobs.log"):
            for _ in range(6):
                violation(r, keys, "door")
            wait_for(lambda: len(jobstore.failed_deliveries(r, keys)) == 6, 90,
                     lambda: f"six deliveries failed for good (arrivals so far: {len(stuck.arrivals)})")
    attempts = attempts_by_id(stuck)
    assert sorted(attempts.values()) == [[1, 2, 3]] * 6
    by_key = {a.key: a for a in stuck.arrivals}
    for delivery_id, tries in attempts.items():
        for n in tries[1:]:
            before, after = by_key[delivery_id, n - 1], by_key[delivery_id, n]
            assert before.ended is not None and before.ended < after.arrived, \
                f"{delivery_id}: attempt {n} reached the receiver while attempt {n - 1} still held it"
    failed = jobstore.failed_deliveries(r, keys)
    assert {f.attempts for f in failed} == {3} and all("ReadTimeout" in f.error for f in failed)


def test_a_receiver_that_trickles_its_answer_is_cut_off_then_retried(settings, r, keys, tmp_path):
    """A byte every 0.2 s never trips the 0.5 s read timeout: the job's own timeout ends the attempt, and
    the retry comes only after that attempt's connection is closed."""
    with receiver(DRIP) as slow:
        s = hook_settings(settings, slow.url, webhook_timeout_s=0.5, webhook_tries=2, webhook_backoff_s=0.5)
        ensure_group(r, keys)
        with jobs_process(s, tmp_path / "jobs.log"):
            violation(r, keys, "gate")
            wait_for(lambda: jobstore.failed_deliveries(r, keys), 60, "the delivery to fail for good")
    [failed] = jobstore.failed_deliveries(r, keys)
    assert failed.attempts == 2 and f"no whole answer within {job_timeout_s(s)} s" in failed.error
    [tries] = attempts_by_id(slow).values()
    assert tries == [1, 2]
    first, second = sorted(slow.arrivals, key=lambda a: a.arrived)
    assert first.ended is not None and first.ended < second.arrived, "the retry raced the trickling attempt"


@pytest.fixture
def long_video(tmp_path: Path) -> Path:
    """Two minutes at 10 fps: an analysis that is still running long after a webhook could have gone."""
    return make_video(tmp_path / "long.avi", seconds=120, fps=10)


def analysis_state(r: redis.Redis, job_id: str) -> tuple[JobStatus | None, int]:
    job = jobstore.fetch_job(r, job_id)
    if job is None:
        return None, 0
    progress = job.get_meta(refresh=True).get("progress") or {}
    return job.get_status(refresh=True), int(progress.get("frames") or 0)


def test_an_analysis_in_progress_does_not_delay_a_webhook(settings, r, keys, tmp_path, long_video, yunet_dir):
    with receiver() as good:
        s = hook_settings(settings, good.url)
        ensure_group(r, keys)
        job = jobstore.enqueue_analysis(r, s.prefix, {"path": str(long_video), "name": long_video.name}, None, 10.0)
        with jobs_process(s, tmp_path / "jobs.log"):
            wait_for(lambda: analysis_state(r, job.id)[1] > 0, 120, "the analysis to be under way")
            violation(r, keys, "lobby")
            wait_for(lambda: good.arrivals, 30, "the webhook")
            status, frames = analysis_state(r, job.id)
            assert status == JobStatus.STARTED and frames < 1200, "delivered while the analysis still ran"
        # SIGTERM stopped the runner (status 0): the analysis ended at its next batch and says why.
        status, _ = analysis_state(r, job.id)
        assert status == JobStatus.FAILED
        [failed] = [j for j in jobstore.jobs_overview(r, s.prefix).failed if j.id == job.id]
        assert "jobs runner is shutting down" in (failed.error or "")


def test_each_kind_runs_on_its_own_with_queue(settings, r, keys, tmp_path, yunet_dir):
    """`--queue webhooks` and `--queue analysis` (compose and Kubernetes run them apart) take only their kind."""
    video = make_video(tmp_path / "short.avi", seconds=1, fps=5)
    with receiver() as good:
        s = hook_settings(settings, good.url)
        ensure_group(r, keys)
        job = jobstore.enqueue_analysis(r, s.prefix, {"path": str(video), "name": video.name}, None, 5.0)
        with jobs_process(s, tmp_path / "webhooks.log", "--queue", "webhooks"):
            violation(r, keys, "lobby")
            wait_for(lambda: good.arrivals, 30, "the webhook")
            assert analysis_state(r, job.id)[0] == JobStatus.QUEUED, "a webhooks runner left the analysis alone"
        with jobs_process(s.override(webhook_url=None), tmp_path / "analysis.log", "--queue", "analysis"):
            wait_for(lambda: analysis_state(r, job.id)[0] == JobStatus.FINISHED, 120, "the analysis")
        assert jobstore.read_report(r, keys, job.id)["frames_analysed"] == 5
    assert len(good.arrivals) == 1
