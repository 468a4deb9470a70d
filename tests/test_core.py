"""The core's small pieces: settings, codec, camera configs, credential masking.

Their docstrings' examples run as tests too: pytest collects them (--doctest-modules in pyproject.toml).
"""

from __future__ import annotations

import pytest

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.codec import Face, Frame, Result, decode_frame, decode_result, encode_frame, encode_result
from maskwatch.exceptions import CameraError, MessageError, SettingsError
from maskwatch.keys import Keys
from maskwatch.redaction import mask_text, mask_url
from maskwatch.settings import Settings


def test_settings_come_from_env_and_flags_override():
    s = Settings.from_env({"MASKWATCH_BATCH_SIZE": "32", "MASKWATCH_ALLOW_NO_TOKEN": "yes",
                           "MASKWATCH_MODEL_DIR": "/m"})
    assert (s.batch_size, s.allow_no_token, str(s.model_dir)) == (32, True, "/m")
    assert s.override(batch_size=8).batch_size == 8


@pytest.mark.parametrize("env, named", [({"MASKWATCH_BATCH_SIZE": "many"}, "MASKWATCH_BATCH_SIZE"),
                                        ({"MASKWATCH_RUNTIME": "tensorrt"}, "MASKWATCH_RUNTIME"),
                                        ({"MASKWATCH_FRAMES_MAXLEN": "100", "MASKWATCH_LAG_THRESHOLD": "200"},
                                         "MASKWATCH_FRAMES_MAXLEN")])
def test_bad_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_secrets_stay_out_of_safe_settings():
    s = Settings.from_env({"MASKWATCH_API_TOKEN": "tok-9f8e7d", "MASKWATCH_REDIS_URL": "redis://:pw-1a2b3c@r:6379/0"})
    shown = str(s.safe_dict())
    assert "tok-9f8e7d" not in shown and "pw-1a2b3c" not in shown and "***" in shown
    assert "tok-9f8e7d" not in repr(s) and "pw-1a2b3c" not in repr(s)


def test_frame_and_result_round_trip():
    import numpy as np

    from maskwatch.utils import now_ms
    from maskwatch.vision.jpeg import encode_jpeg

    f = Frame(cam="gate", seq=3, ts=now_ms(), w=2, h=2, jpg=encode_jpeg(np.zeros((2, 2, 3), np.uint8)))
    entry = {k.encode(): str(v).encode() if not isinstance(v, bytes) else v for k, v in encode_frame(f).items()}
    assert decode_frame(entry) == f
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


@pytest.mark.parametrize("cam_id, data, words", [
    ("a", {"url": "rtsp://x", "fps": 0}, "field 'fps': input should be greater than 0, got 0"),
    ("a", {"url": "rtsp://x", "fps": 61}, "field 'fps'"),
    ("a", {"url": "rtsp://x", "max_width": 32}, "field 'max_width'"),
    ("a", {"url": "rtsp://x", "jpeg_quality": 101}, "field 'jpeg_quality'"),
    ("a", {"url": "rtsp://x", "roi": [0, 0, 2, 1]}, "field 'roi'"),
    ("a", {"url": "rtsp://x", "roi": [0, 0, 0, 1]}, "field 'roi'"),
    ("a", {"url": "rtsp://x", "min_face_px": 0}, "field 'min_face_px'"),
    ("a", {"url": " "}, "field 'url'"),
    ("a", {}, "field 'url' is required"),
    ("a", {"url": "x", "fsp": 5}, "unknown field 'fsp'"),
    ("bad id!", {"url": "x"}, "camera id 'bad id!' is not valid"),
])
def test_camera_configs_are_validated_with_the_field_named(cam_id, data, words):
    with pytest.raises(CameraError) as err:
        CameraConfig.from_dict(cam_id, data)
    assert words in str(err.value) and str(err.value).startswith(f"camera {cam_id!r}: ")


def test_a_valid_camera_config_survives_json_and_masks_its_password_when_shown():
    cam = CameraConfig.from_dict("lobby", {"url": "rtsp://admin:hunter2@cam/1", "fps": 60, "max_width": 64,
                                           "jpeg_quality": 10, "roi": [0, 0.25, 1, 0.75], "min_face_px": 1})
    assert CameraConfig.from_json("lobby", cam.to_json()) == cam and cam.roi == (0, 0.25, 1, 0.75)
    assert "hunter2" not in repr(cam) and "hunter2" not in str(cam.public()) and "hunter2" in cam.to_json()


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
    assert mask_text(f"cannot open {url}: 401 for hunter2", url) == \
        "cannot open rtsp://admin:***@cam.local/stream: 401 for ***"
    assert mask_url("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
