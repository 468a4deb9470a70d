"""Settings from the environment and a command's own flags; one camera model for the CLI, the API and the registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import ValidationError

from maskwatch.cameras import Registry
from maskwatch.cli.main import build_parser, settings_from
from maskwatch.cli.up import UpOptions, plan
from maskwatch.exceptions import SettingsError
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.support.dashboard import serve

TOKEN = "s3cret-token"


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_a_mapping_is_read_as_the_process_environment_is_and_nothing_else_leaks_in(monkeypatch) -> None:
    monkeypatch.setenv("MASKWATCH_PREFIX", "from-env")
    monkeypatch.setenv("MASKWATCH_BATCH_SIZE", "32")
    monkeypatch.setenv("MASKWATCH_DET_FLIP", "yes")
    from_process = Settings.from_env()
    assert (from_process.prefix, from_process.batch_size, from_process.det_flip) == ("from-env", 32, True)
    ours = {k: v for k, v in os.environ.items() if k.startswith("MASKWATCH_")}
    assert Settings.from_env(ours) == from_process
    assert Settings.from_env({}).prefix == "mw"  # the mapping alone: the process environment is not read


def test_an_empty_variable_unsets_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("MASKWATCH_API_TOKEN", "")
    monkeypatch.setenv("MASKWATCH_MODEL", "")
    monkeypatch.setenv("MASKWATCH_BATCH_SIZE", "")
    monkeypatch.setenv("MASKWATCH_WEBHOOK_URL", "https://hooks.example/mw")
    s = Settings.from_env()
    assert (s.api_token, s.model, s.batch_size) == (None, None, Settings.model_fields["batch_size"].default)
    assert s.webhook_url == "https://hooks.example/mw"


@pytest.mark.parametrize("env, words", [
    ({"MASKWATCH_RUNTIME": "tensorrt"}, "MASKWATCH_RUNTIME='tensorrt': Input should be 'auto', 'onnx' or 'torch'"),
    ({"MASKWATCH_DEVICE": "tpu"}, "MASKWATCH_DEVICE='tpu': Input should be 'auto', 'cpu' or 'cuda'"),
    ({"MASKWATCH_BATCH_SIZE": "0"}, "MASKWATCH_BATCH_SIZE='0': Input should be greater than or equal to 1"),
    ({"MASKWATCH_JPEG_QUALITY": "101"}, "MASKWATCH_JPEG_QUALITY='101': Input should be less than or equal to 100"),
    ({"MASKWATCH_FPS": "0"}, "MASKWATCH_FPS='0': Input should be greater than 0"),
    ({"MASKWATCH_WORKER_METRICS_PORT": "70000"}, "MASKWATCH_WORKER_METRICS_PORT='70000'"),
    ({"MASKWATCH_ALLOW_NO_TOKEN": "maybe"}, "MASKWATCH_ALLOW_NO_TOKEN='maybe': Input should be a valid boolean"),
    ({"MASKWATCH_LOG_LEVEL": "loud"}, "MASKWATCH_LOG_LEVEL='LOUD': Input should be 'DEBUG'"),
    ({"MASKWATCH_COMPLIANCE_WARN": "0.95"},
     "MASKWATCH_COMPLIANCE_WARN=0.95 must not exceed MASKWATCH_COMPLIANCE_GOOD=0.9"),
    ({"MASKWATCH_LAG_THRESHOLD": "3000"},
     "MASKWATCH_FRAMES_MAXLEN=250 must be at least 4x MASKWATCH_LAG_THRESHOLD=3000"),
])
def test_a_bad_variable_is_named_with_what_is_valid(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert words in str(err.value)


def test_override_is_a_validated_copy_and_the_original_stays() -> None:
    s = Settings.from_env({})
    assert s.override(batch_size=8, prefix=None).batch_size == 8 and s.batch_size == 16
    with pytest.raises(SettingsError, match="MASKWATCH_BATCH_SIZE=0"):
        s.override(batch_size=0)
    with pytest.raises(SettingsError, match="MASKWATCH_FRAMES_MAXLEN"):
        s.override(lag_threshold=5000)
    with pytest.raises(SettingsError, match="'batch_sise' is not a setting"):
        s.override(batch_sise=8)
    with pytest.raises(ValidationError, match="frozen"):
        s.batch_size = 8  # type: ignore[misc]


def test_secrets_stay_out_of_repr_and_safe_settings() -> None:
    s = Settings.from_env({"MASKWATCH_API_TOKEN": "tok-9f8e7d", "MASKWATCH_WEBHOOK_SECRET": "hmac-5e6f",
                           "MASKWATCH_REDIS_URL": "redis://:pw-1a2b3c@r:6379/0"})
    for shown in (repr(s), str(s), str(s.safe_dict())):
        assert "tok-9f8e7d" not in shown and "hmac-5e6f" not in shown and "pw-1a2b3c" not in shown
    assert s.safe_dict()["redis_url"] == "redis://:***@r:6379/0" and s.safe_dict()["api_token"] == "***"
    assert s.api_token == "tok-9f8e7d"  # the code still reads the value itself


def test_the_child_environment_rebuilds_the_same_settings() -> None:
    s = Settings.from_env({}).override(prefix="p", det_flip=True, model=Path("/m/model.mwm"), api_token="tok", fps=2.5)
    assert s != Settings.from_env({})
    assert Settings.from_env({k: v for k, v in s.to_env().items() if v is not None}) == s


def test_every_setting_is_documented() -> None:
    assert [name for name, f in Settings.model_fields.items() if not f.description] == []


def test_train_flags_never_touch_the_settings_and_worker_flags_do(monkeypatch) -> None:
    monkeypatch.delenv("MASKWATCH_BATCH_SIZE", raising=False)
    monkeypatch.delenv("MASKWATCH_FPS", raising=False)
    default = Settings.from_env()
    train = parse("train", "--data", "faces", "--batch-size", "7")
    assert train.batch_size == 7 and settings_from(train).batch_size == default.batch_size == 16
    worker = parse("worker", "--batch-size", "7")
    assert settings_from(worker).batch_size == 7
    evaluate = parse("evaluate", "--data", "faces", "--runtime", "torch")
    assert evaluate.runtime == "torch" and settings_from(evaluate).runtime == default.runtime
    for camera_fps in (parse("analyze", "v.mp4", "--fps", "2"), parse("camera", "add", "a", "0", "--fps", "2"),
                       parse("up", "--fps", "2")):
        assert camera_fps.fps == 2 and settings_from(camera_fps).fps == default.fps


def test_a_flag_out_of_its_settings_range_is_refused_naming_the_flag(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        parse("worker", "--batch-size", "0")
    assert stop.value.code == 2
    assert "argument --batch-size: '0': Input should be greater than or equal to 1" in capsys.readouterr().err
    assert settings_from(parse("worker", "--log-level", "debug")).log_level == "DEBUG"


def test_camera_add_takes_its_flags_and_the_environments_camera_defaults(settings: Settings, r: redis.Redis,
                                                                         keys: Keys) -> None:
    env = {**os.environ, "MASKWATCH_REDIS_URL": settings.redis_url or "", "MASKWATCH_PREFIX": settings.prefix,
           "MASKWATCH_MAX_WIDTH": "640", "MASKWATCH_FPS": "3"}
    add = [sys.executable, "-m", "maskwatch", "camera", "add"]
    done = subprocess.run([*add, "lobby", "rtsp://u:pw@cam/1", "--fps", "2"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pw" not in done.stdout and "rtsp://u:***@cam/1" in done.stdout
    cam = Registry(r, keys).get("lobby")
    assert cam is not None and (cam.fps, cam.max_width, cam.jpeg_quality) == (2, 640, 85)
    refused = subprocess.run([*add, "gate", "0", "--jpeg-quality", "5"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "--jpeg-quality" in refused.stderr and Registry(r, keys).get("gate") is None


def test_the_api_takes_the_camera_model_and_the_dashboards_camera_defaults(settings: Settings, r: redis.Redis,
                                                                           keys: Keys) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve(settings.override(api_token=TOKEN, fps=2, jpeg_quality=60)) as url:
        added = httpx.post(f"{url}/api/cameras", json={"id": "dock", "url": "rtsp://dock/1", "jpeg_quality": 70},
                           headers=auth)
        spec = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"]
    assert added.status_code == 201, added.text
    cam = Registry(r, keys).get("dock")
    assert cam is not None and (cam.fps, cam.max_width, cam.jpeg_quality) == (2, 1280, 70)
    fps = spec["CameraCreate"]["properties"]["fps"]
    assert (fps["exclusiveMinimum"], fps["maximum"]) == (0, 60) and fps["description"]
    assert spec["CameraPatch"]["properties"]["jpeg_quality"]["anyOf"][0] == {"type": "integer", "minimum": 10,
                                                                             "maximum": 100}


def test_up_plans_its_children_from_typed_options(settings: Settings) -> None:
    children = plan(settings, UpOptions(workers=2, jobs=False, port=8123))
    assert [c.name for c in children] == ["producer", "worker-1", "worker-2", "dashboard"]
    assert children[-1].args == ["dashboard", "--host", "127.0.0.1", "--port", "8123"]
    assert Settings.from_env(children[0].env) == settings
    alone = plan(settings, UpOptions(workers=1, jobs=False, dashboard=False))
    assert [c.name for c in alone] == ["producer", "worker-1"]
