"""What the command line says about a user's files that are not what it takes: one clear line, never a traceback.

Camera files with broken YAML, `predict` on files that are not images, `analyze` on a folder or
a text file named like an image. Each runs the real `maskwatch` command in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import redis

from maskwatch.cameras import Registry
from maskwatch.keys import Keys
from tests.conftest import DATA, MODELS, need_shared
from tests.frames import scenes


def maskwatch(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    return subprocess.run([sys.executable, "-m", "maskwatch", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**base, "MASKWATCH_MODEL_DIR": str(MODELS), **env})


def one_error_line(proc: subprocess.CompletedProcess[str], command: str) -> str:
    """The error line of a command that failed as a user error should: status 2, one line, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"maskwatch {command}: error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_camera_import_of_malformed_yaml_says_where(tmp_path: Path, redis_server, prefix: str) -> None:
    cams = tmp_path / "cameras.yaml"
    cams.write_text("cameras:\n  - name: lobby\n    url: rtsp://10.0.0.5/stream1\n   - name: door\n    url: 0\n")
    proc = maskwatch("camera", "import", str(cams), cwd=tmp_path, MASKWATCH_REDIS_URL=redis_server.url,
                     MASKWATCH_PREFIX=prefix)
    line = one_error_line(proc, "camera")
    assert f"{cams} is not valid YAML: line 4, column 4: expected <block end>" in line, line
    assert proc.stderr.count("\n") == 1
    # With no system running, the file's problem is still the one said.
    alone = maskwatch("camera", "import", str(cams), cwd=tmp_path, XDG_DATA_HOME=str(tmp_path / "data"))
    assert one_error_line(alone, "camera") == line


def test_camera_import_takes_a_webcam_index_as_yaml_writes_it(tmp_path: Path, redis_server, prefix: str) -> None:
    cams = tmp_path / "cameras.yaml"
    cams.write_text("- name: door\n  url: 0\n")
    proc = maskwatch("camera", "import", str(cams), cwd=tmp_path, MASKWATCH_REDIS_URL=redis_server.url,
                     MASKWATCH_PREFIX=prefix)
    assert proc.returncode == 0, proc.stderr
    door = Registry(redis.Redis.from_url(redis_server.url), Keys(prefix)).get("door")
    assert door is not None and door.url == "0"


def test_predict_on_an_unreadable_file_names_it_and_fails(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("meeting notes, not a picture\n")
    proc = maskwatch("predict", str(notes), cwd=tmp_path)
    line = one_error_line(proc, "predict")
    assert "nothing could be read" in line and str(notes) in line, line
    assert f"maskwatch predict: {notes}: cannot be read as an image" in proc.stderr
    assert proc.stdout == ""


def test_predict_skips_what_it_cannot_read_and_reports_the_rest(tmp_path: Path) -> None:
    need_shared(DATA / "facemask12k" / "test")
    folder = tmp_path / "shots"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), scenes(DATA / "facemask12k" / "test", n=1, seed=5, faces=2)[0].image)
    (folder / "b.jpg").write_text("not a picture")
    proc = maskwatch("predict", str(folder), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"maskwatch predict: {folder / 'b.jpg'}: cannot be read as an image" in proc.stderr
    assert "face(s):" in proc.stdout and "1 unreadable file(s) skipped" in proc.stdout, proc.stdout
    assert "setPreferableTarget" not in proc.stderr, "OpenCV 5's target warning is not shown"
    assert "Traceback" not in proc.stderr


def test_analyze_a_folder_says_it_is_a_folder_and_what_to_pass(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    line = one_error_line(maskwatch("analyze", str(folder), cwd=tmp_path), "analyze")
    assert f"{folder} is a folder; `analyze` takes one video file" in line, line
    assert f"`maskwatch predict {folder}`" in line


def test_analyze_tells_a_file_by_its_content_not_its_name(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("meeting notes\n")
    line = one_error_line(maskwatch("analyze", str(notes), cwd=tmp_path), "analyze")
    assert f"{notes} is a text file, not a video" in line and "is an image" not in line, line
    photo = tmp_path / "photo.mp4"  # an image, whatever its name says
    cv2.imwrite(str(tmp_path / "photo.png"), scenes(need_shared(DATA / "facemask12k" / "test"), n=1, seed=1)[0].image)
    (tmp_path / "photo.png").rename(photo)
    line = one_error_line(maskwatch("analyze", str(photo), cwd=tmp_path), "analyze")
    assert f"{photo} is an image, not a video; for images use `maskwatch predict {photo}`" in line, line
