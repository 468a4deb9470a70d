"""A newcomer's first ten minutes, driven end to end on a fresh copy of the repository.

The README's run command as typed: a fresh virtual environment from a copy of this checkout (its
tracked files and untracked ones git does not ignore, so the same on a clean CI clone), ``pip
install .`` (not editable, no torch), then ``maskwatch up`` with two video files made here as its
cameras. From a second shell (another process, no flags): ``camera list``, ``camera add`` of a
third video, a bad URL and a missing file refused with what is wrong; a second ``up`` on the same
state says where the first one runs and leaves it alone; Ctrl-C, sent to the process group as a
terminal does, stops everything and leaves no process behind. Without the detector model and
without a network, ``up`` says so in one message and starts nothing.

What every step printed is printed here as it comes (pytest shows it when a test fails), and no
step may print a traceback. The model folder is the shared one, so nothing downloads; the state
folder is the default one under a temporary XDG_DATA_HOME.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.scenes.compose import write_video
from bench.scenes.walking import face_pool, preset_scene
from maskwatch.cli.embedded_redis import free_port
from tests.conftest import DATA, MODELS, ROOT, need_shared
from tests.support.waiting import wait_for
from tests.test_up import alive, descendants

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 30  # Ctrl-C to the last process gone


@dataclass
class Transcript:
    """Every step's command, exit status and output, printed as it comes and searched for tracebacks."""

    steps: list[tuple[str, str]] = field(default_factory=list)

    def add(self, step: str, output: str) -> str:
        self.steps.append((step, output))
        print(f"===== {step}\n{output}", flush=True)
        return output

    def run(self, step: str, args: list[str], env: dict[str, str], cwd: Path,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        self.add(f"{step}: {' '.join(args)} (exit {proc.returncode})", proc.stdout + proc.stderr)
        return proc

    def tracebacks(self) -> list[str]:
        return [step for step, output in self.steps if "Traceback" in output]


@dataclass(frozen=True)
class Install:
    """A copy of the checkout with the README's ``.venv`` installed in it."""

    checkout: Path
    bin: Path


def checkout_copy(dest: Path) -> Path:
    """The files a fresh clone of this checkout would have, with its uncommitted changes: git's tracked and
    untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the working tree is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def user_env(tmp: Path, models: Path, **extra: str) -> dict[str, str]:
    """A newcomer's shell: no MASKWATCH_* setting but the model folder, the data folder under ``tmp``, no proxy."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MASKWATCH_") and k.lower() not in {"http_proxy", "https_proxy", "no_proxy"}
           and k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env.update({"XDG_DATA_HOME": str(tmp / "data"), "MASKWATCH_MODEL_DIR": str(models), **extra})
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """``python3 -m venv .venv && .venv/bin/pip install .`` in a fresh copy of the checkout, once for the module."""
    checkout = checkout_copy(tmp_path_factory.mktemp("clone") / "maskwatch")
    transcript = Transcript()
    env = user_env(checkout.parent, MODELS)
    # The interpreter running the tests, rather than whichever python3 comes first on PATH.
    venv = transcript.run("install", [sys.executable, "-m", "venv", ".venv"], env, checkout)
    assert venv.returncode == 0, venv.stderr
    pip = transcript.run("install", [".venv/bin/pip", "install", "."], env, checkout, timeout=600)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    assert not transcript.tracebacks(), "pip printed a traceback"
    return Install(checkout, checkout / ".venv" / "bin")


@pytest.fixture
def transcript() -> Transcript:
    return Transcript()


def make_clips(folder: Path, names: list[str]) -> list[Path]:
    """Short walking-people videos (real faces, encoded by OpenCV), one per name."""
    folder.mkdir(parents=True)
    pool = face_pool([need_shared(DATA / "facemask12k" / "test")], per_class=8)
    clips = []
    for seed, name in enumerate(names):
        scene = preset_scene("busy", seed=seed, duration_s=12.0, pool=pool)
        clips.append(write_video(folder / f"{name}.mp4", (f.image for f in scene.frames()), fps=scene.fps))
    return clips


def cameras(base: str) -> dict[str, dict]:
    try:
        answer = httpx.get(f"{base}/api/cameras", timeout=5)
        return {c["id"]: c for c in answer.json()} if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def frames_counted(base: str, names: tuple[str, ...]) -> dict[str, int] | None:
    """Frames analysed per camera, once every one of ``names`` has some."""
    counted = {name: cam["totals"]["frames"] for name, cam in cameras(base).items()}
    return counted if all(counted.get(name, 0) > 0 for name in names) else None


def test_up_without_the_detector_model_offline_says_so_once_and_starts_nothing(installed: Install,
                                                                               transcript: Transcript,
                                                                               tmp_path: Path) -> None:
    site, models = tmp_path / "site", tmp_path / "no-models"
    make_clips(site / "clips", ["door"])
    closed = f"http://127.0.0.1:{free_port()}"  # every download goes through a proxy that refuses: no network
    env = user_env(tmp_path, models, https_proxy=closed, http_proxy=closed, HTTPS_PROXY=closed, HTTP_PROXY=closed)
    up = transcript.run("up without the model", [str(installed.bin / "maskwatch"), "up", "--camera",
                                                 "door=./clips/door.mp4", "--port", str(free_port())], env, site)
    assert up.returncode == 2, up.stderr
    assert up.stdout == ""
    assert up.stderr.startswith("maskwatch up: error: the face detector's model face_detection_yunet_2023mar.onnx "
                                f"is not in {models} and could not be downloaded"), up.stderr
    assert "`maskwatch models fetch`" in up.stderr and "MASKWATCH_MODEL_DIR" in up.stderr, "it says how to fix it"
    assert up.stderr.count("\n") == 1, "one message, said once"
    assert not (tmp_path / "data" / "maskwatch" / "redis").exists(), "nothing started, not even Redis"
    assert not models.exists() or not list(models.iterdir()), "no partial download left behind"
    assert not transcript.tracebacks()


def test_first_ten_minutes(installed: Install, transcript: Transcript, yunet_dir: Path, tmp_path: Path) -> None:
    site, other_shell = tmp_path / "site", tmp_path / "elsewhere"  # the second shell is in another folder
    other_shell.mkdir()
    make_clips(site / "clips", ["front", "back", "third"])
    maskwatch = str(installed.bin / "maskwatch")
    env = user_env(tmp_path, yunet_dir)  # the shared YuNet: nothing downloads
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "up.log"
    # A terminal runs the command in a process group of its own and sends Ctrl-C's SIGINT to all of it.
    with open(log_path, "wb") as log:
        up = subprocess.Popen([maskwatch, "up", "--camera", "front=./clips/front.mp4", "--camera",
                               "back=./clips/back.mp4", "--loop", "--port", str(port)],
                              env=env, cwd=site, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up_log() -> str:
        return log_path.read_text(errors="replace")

    children: set[int] = set()
    try:
        counted = wait_for(lambda: frames_counted(base, ("front", "back")) or up.poll() is not None, 180,
                           lambda: "frames counted on both cameras; up's log:\n" + up_log()[-4000:], every=1.0)
        assert up.poll() is None, "up ended early:\n" + up_log()
        transcript.add("frames counted", str(counted))
        assert f"dashboard: {base}  (Ctrl-C stops everything)" in up_log()
        assert httpx.get(base, timeout=10).status_code == 200, "the dashboard's page answers"
        children = descendants(up.pid)

        # A second shell, in the same folder and with no flag: the CLI finds the running system.
        listed = transcript.run("second shell", [maskwatch, "camera", "list"], env, other_shell)
        assert listed.returncode == 0, listed.stderr
        assert "front" in listed.stdout and "back" in listed.stdout
        added = transcript.run("second shell", [maskwatch, "camera", "add", "third", "../site/clips/third.mp4"], env,
                               other_shell)
        assert added.returncode == 0, added.stderr
        assert added.stdout == f"camera third -> {site / 'clips' / 'third.mp4'} (5 fps)\n", "a plain absolute path"
        assert "warning" not in added.stderr, "the file opened"
        bad = transcript.run("second shell", [maskwatch, "camera", "add", "fourth", "notaurl://x"], env, other_shell)
        assert bad.returncode != 0
        assert bad.stderr == ("maskwatch camera: error: camera 'fourth': field 'url': scheme 'notaurl:' is not "
                              "allowed; a camera is rtsp://, rtsps://, http:// or https:// with a host, a video file "
                              "in the media folder, or a webcam index 0-99\n"), bad.stderr
        missing = transcript.run("second shell", [maskwatch, "camera", "add", "fifth", "../site/clips/gone.mp4"], env,
                                 other_shell)
        assert missing.returncode != 0
        assert missing.stderr == ("maskwatch camera: error: camera 'fifth': field 'url': "
                                  f"{site / 'clips' / 'gone.mp4'} does not exist in the media folder "
                                  f"{site / 'clips'}\n"), missing.stderr
        relisted = transcript.run("second shell", [maskwatch, "camera", "list"], env, other_shell)
        names = sorted(line.split()[0] for line in relisted.stdout.splitlines())
        assert names == ["back", "front", "third"], "what was refused was not registered"
        counted = wait_for(lambda: frames_counted(base, ("front", "back", "third")), 120,
                           lambda: "frames counted on the added camera; up's log:\n" + up_log()[-4000:], every=1.0)
        transcript.add("frames counted", str(counted))

        # The same command again, say in another terminal: it says where the first one is and leaves it alone.
        second = transcript.run("second up", [maskwatch, "up", "--camera", "front=./clips/front.mp4", "--camera",
                                              "back=./clips/back.mp4", "--loop", "--port", str(free_port())], env, site)
        assert second.returncode != 0
        assert second.stderr.startswith(f"maskwatch up: error: already running: dashboard at {base} "
                                        f"(pid {up.pid})"), second.stderr
        assert "stop it with Ctrl-C, or give this one another --state-dir" in second.stderr
        assert up.poll() is None and descendants(up.pid) == children, "the first up and its children run on"
        assert frames_counted(base, ("front", "back", "third")), "its dashboard still answers"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        stopping = time.monotonic()
        try:
            code = up.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
            raise AssertionError(f"up did not stop within {STOP_WITHIN_S} s of Ctrl-C:\n{up_log()[-4000:]}") from None
        finally:
            transcript.add(f"up (exit {up.returncode})", up_log())
    wait_for(lambda: not [p for p in children if alive(p)], STOP_WITHIN_S - (time.monotonic() - stopping),
             lambda: f"every child to end after Ctrl-C; left: {[p for p in children if alive(p)]}")
    assert code == 0, "Ctrl-C is how `up` is meant to stop"
    assert len(children) >= 5, "redis, producer, workers, jobs and dashboard ran as its children"
    assert up_log().rstrip().endswith("stopped"), "it says it stopped, last"
    assert not transcript.tracebacks(), f"a traceback was printed by: {transcript.tracebacks()}"
