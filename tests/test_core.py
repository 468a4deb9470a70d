"""The core's small pieces: settings, codec, camera configs, credential masking, and their doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

from maskwatch.cameras import CameraConfig, CameraError, Registry
from maskwatch.codec import Face, Frame, MessageError, Result, decode_frame, decode_result, encode_frame, encode_result
from maskwatch.keys import Keys
from maskwatch.redaction import mask_text, mask_url
from maskwatch.settings import Settings, SettingsError

DOCTESTED = ["maskwatch.settings", "maskwatch.codec", "maskwatch.keys", "maskwatch.redaction", "maskwatch.cameras",
             "maskwatch.artifact", "maskwatch.vision.crop", "maskwatch.vision.preprocess", "bench.scenes.compose",
             "maskwatch.signing"]


@pytest.mark.parametrize("module", DOCTESTED)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_settings_come_from_env_and_flags_override():
    s = Settings.from_env({"MASKWATCH_BATCH_SIZE": "32", "MASKWATCH_ALLOW_NO_TOKEN": "yes", "MASKWATCH_MODEL_DIR": "/m"})
    assert (s.batch_size, s.allow_no_token, str(s.model_dir)) == (32, True, "/m")
    assert s.override(batch_size=8).batch_size == 8


@pytest.mark.parametrize("env, named", [({"MASKWATCH_BATCH_SIZE": "many"}, "MASKWATCH_BATCH_SIZE"),
                                        ({"MASKWATCH_RUNTIME": "tensorrt"}, "MASKWATCH_RUNTIME"),
                                        ({"MASKWATCH_FRAMES_MAXLEN": "100"}, "MASKWATCH_FRAMES_MAXLEN")])
def test_bad_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_secrets_stay_out_of_safe_settings():
    s = Settings.from_env({"MASKWATCH_API_TOKEN": "tok-9f8e7d", "MASKWATCH_REDIS_URL": "redis://:pw-1a2b3c@r:6379/0"})
    shown = str(s.safe_dict())
    assert "tok-9f8e7d" not in shown and "pw-1a2b3c" not in shown and "***" in shown
    assert "tok-9f8e7d" not in repr(s) and "pw-1a2b3c" not in repr(s)


def test_frame_and_result_round_trip():
    f = Frame(cam="gate", seq=3, ts=1, w=2, h=2, jpg=b"\xff\xd8\x00")
    assert decode_frame({k.encode(): str(v).encode() if not isinstance(v, bytes) else v for k, v in encode_frame(f).items()}) == f
    r = Result(cam="gate", seq=3, ts=1, done_ts=2, faces=[Face((1, 2, 3, 4), "without_mask", 0.875)], worker="w")
    assert decode_result(encode_result(r)) == r


@pytest.mark.parametrize("fields, named", [
    ({"v": "1", "cam": "a b", "seq": "1", "ts": "1", "w": "1", "h": "1", "jpg": b"x"}, "cam"),
    ({"v": "1", "cam": "a", "seq": "-1", "ts": "1", "w": "1", "h": "1", "jpg": b"x"}, "seq"),
    ({"v": "1", "cam": "a", "seq": "1", "ts": "1", "w": "0", "h": "1", "jpg": b"x"}, "w"),
    ({"v": "2", "cam": "a", "seq": "1", "ts": "1", "w": "1", "h": "1", "jpg": b"x"}, "v"),
    ({"v": "1", "cam": "a", "seq": "1", "ts": "1", "w": "1", "h": "1"}, "jpg"),
])
def test_malformed_frames_name_the_field(fields, named):
    with pytest.raises(MessageError) as err:
        decode_frame(fields)
    assert err.value.field == named and repr(named) in str(err.value)


def test_malformed_result_faces_are_refused():
    entry = encode_result(Result(cam="a", seq=1, ts=1, done_ts=1))
    entry["faces"] = '[{"box": [1, 2, 3], "label": "with_mask", "score": 0.9}]'
    with pytest.raises(MessageError, match=r"faces\[0\]\.box"):
        decode_result(entry)


def test_camera_configs_are_validated_with_the_field_named():
    with pytest.raises(CameraError, match="'fps'"):
        CameraConfig(id="a", url="rtsp://x", fps=0)
    with pytest.raises(CameraError, match="'roi'"):
        CameraConfig(id="a", url="rtsp://x", roi=(0, 0, 2, 1))
    with pytest.raises(CameraError, match="unknown field"):
        CameraConfig.from_dict("a", {"url": "x", "fsp": 5})
    with pytest.raises(ValueError, match="camera id"):
        CameraConfig(id="bad id!", url="x")


def test_registry_round_trip_bumps_the_version_and_keeps_bad_entries_apart(r, keys: Keys):
    reg = Registry(r, keys)
    v0 = reg.version()
    reg.put(CameraConfig(id="lobby", url="rtsp://admin:secret@10.0.0.5/s1", fps=2))
    r.hset(keys.cameras, "broken", "{not json")
    cams, errors = reg.all()
    assert cams["lobby"].fps == 2 and "broken" in errors and reg.version() == v0 + 1
    assert cams["lobby"].public()["url"] == "rtsp://admin:***@10.0.0.5/s1"
    assert reg.remove("lobby") and not reg.remove("lobby")


def test_passwords_are_masked_in_text():
    url = "rtsp://admin:hunter2@cam.local/stream"
    assert mask_text(f"cannot open {url}: 401 for hunter2", url) == "cannot open rtsp://admin:***@cam.local/stream: 401 for ***"
    assert mask_url("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
