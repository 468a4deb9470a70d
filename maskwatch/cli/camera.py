"""`maskwatch camera add|list|remove|import`: edit the registry that running producers watch.

A camera added here (``add``, ``import``, ``up --camera``) that leaves out fps, max_width or
jpeg_quality takes the settings' (MASKWATCH_FPS, ...), as one added through the dashboard API does.

Every camera added here passes the site's allow-list first (:mod:`maskwatch.camera_urls`): one
refused (another scheme, a file missing or outside the media folder, MaskWatch's own Redis) stops
the command with exit 2 and registers nothing. Then each is opened once with a short timeout, all
at once (:func:`maskwatch.camera_open.first_open`): one that does not open is registered all the
same, with a warning on stderr saying why. On the command line a relative file path is taken from
the current folder, as any command takes it; in a camera file, inside the media folder.
`up --camera` with a video file and no MASKWATCH_MEDIA_DIR makes the file's folder the media
folder of that run (:func:`up_cameras`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from maskwatch.camera_open import first_open
from maskwatch.camera_urls import UrlPolicy, check_syntax
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.exceptions import CameraError, InputError
from maskwatch.keys import Keys
from maskwatch.redaction import mask_text
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings


def load_camera_file(path: Path, defaults: Settings | None = None) -> list[CameraConfig]:
    """Cameras from a YAML or JSON file: a list of ``{name, url, fps, ...}`` or a mapping name -> config.

    Fields a camera leaves out take their defaults: ``defaults``' camera settings where given.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the camera file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file; give a YAML or JSON list of cameras") from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(_yaml_problem(path, exc)) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); name the file .yaml if it is YAML") from None
    if isinstance(data, dict) and "cameras" in data:
        data = data["cameras"]
    if isinstance(data, dict):
        data = [{"name": k, **(v if isinstance(v, dict) else {"url": v})} for k, v in data.items()]
    if not isinstance(data, list):
        raise CameraError(f"{path}: expected a list of cameras, each with name and url")
    cams = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "name" not in item:
            raise CameraError(f"{path}: camera #{i + 1} needs a 'name' and a 'url'")
        item = dict(item)
        name = str(item.pop("name"))
        if isinstance(item.get("url"), int):  # `url: 0` in YAML: a webcam index
            item["url"] = str(item["url"])
        cams.append(CameraConfig.added(defaults, name, **item) if defaults else CameraConfig.from_dict(name, item))
    return cams


def _yaml_problem(path: Path, exc: Exception) -> str:
    """A YAML parser's error as one line: where (line, column, 1-based), what, and the line itself.

    >>> import yaml
    >>> try:
    ...     yaml.safe_load("- name: a\\n  url: [0\\n")
    ... except yaml.YAMLError as exc:
    ...     print(_yaml_problem(Path("cams.yaml"), exc))  # doctest: +ELLIPSIS
    cams.yaml is not valid YAML: line 3, column 1: expected ',' or ']', but got '<stream end>' (while parsing ...
    """
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark != mark:
        what += f" ({context} that starts at line {context_mark.line + 1}, column {context_mark.column + 1})"
    elif context:
        what += f" ({context})"
    return f"{path} is not valid YAML: {where}{what}; fix the file there"


def up_cameras(specs: Sequence[str], s: Settings, fps: float | None = None,
               loop: bool = False) -> tuple[Settings, list[CameraConfig]]:
    """The cameras of `up --camera NAME=URL` (``fps`` None: the settings'), and the settings to run them with.

    Without MASKWATCH_MEDIA_DIR, the folder of the video files given here becomes the media folder
    of the run, so ``up --camera door=./clip.mp4`` plays the clip; files in several folders are
    refused (one media folder a site). With it, files outside it are refused as anywhere else.
    """
    named = []
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url:
            raise CameraError(f"--camera {spec!r}: expected NAME=URL, e.g. --camera lobby=rtsp://10.0.0.5/stream1")
        named.append((name, command_line_url(url)))
    folders = sorted({Path(url).resolve().parent for _, url in named if _is_file(url)})
    if s.media_dir is None and len(folders) > 1:
        raise CameraError(f"--camera videos in {len(folders)} folders ({', '.join(map(str, folders))}): file cameras "
                          "read from one media folder; put the videos in one folder, or set MASKWATCH_MEDIA_DIR")
    if s.media_dir is None and folders:
        s = s.override(media_dir=folders[0])
    return s, [CameraConfig.added(s, name, url=url, fps=fps, loop=loop) for name, url in named]


def command_line_url(url: str) -> str:
    """A camera URL typed on the command line: a relative file path made absolute from the current folder.

    ``..`` is taken out, so the camera keeps a plain path (``../site/door.mp4`` typed in ``/srv/x`` is
    ``/srv/site/door.mp4``, not ``/srv/x/../site/door.mp4``, which stops working when ``/srv/x`` goes).
    """
    return os.path.abspath(os.path.expanduser(url)) if _is_file(url) else url


def _is_file(url: str) -> bool:
    try:
        return check_syntax(url.strip(" ")) == "file"
    except ValueError:
        return False  # refused, with the reason, when its config is made


def check_cameras(cams: Sequence[CameraConfig], s: Settings) -> list[str]:
    """Refuse the lot if the site refuses one (:class:`CameraError`); else a warning for each that did not open."""
    policy = UrlPolicy.from_settings(s)
    for cam in cams:
        try:
            policy.target(cam.url)
        except CameraError as exc:
            raise CameraError(f"camera {cam.id!r}: field 'url': {exc}") from None
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(cams)))) as pool:
        failures = list(pool.map(lambda cam: first_open(cam.url, policy), cams))
    warnings = []
    for cam, failed in zip(cams, failures):
        if failed is not None:
            how = f" ({mask_text(failed.detail, cam.url)})" if failed.detail != failed.reason else ""
            warnings.append(f"camera {cam.id} did not open, registered all the same: "
                            f"{mask_text(failed.reason, cam.url)}{how}")
    return warnings


def _register(registry: Registry, cams: Sequence[CameraConfig], s: Settings) -> None:
    for warning in check_cameras(cams, s):
        print(f"warning: {warning}", file=sys.stderr)
    for cam in cams:
        registry.put(cam)


def _parse_roi(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise CameraError(f"--roi {text!r}: give x,y,w,h as fractions of the frame, e.g. 0,0.3,1,0.7") from None


def run(s: Settings, args: argparse.Namespace) -> int:
    # A camera file's own problems first: said as such even when no Redis runs.
    imported = load_camera_file(args.file, s) if args.camera_cmd == "import" else []
    registry = Registry(connect(s), Keys(s.prefix))
    if args.camera_cmd == "add":
        roi = _parse_roi(args.roi) if args.roi else None
        cam = CameraConfig.added(s, args.name, url=command_line_url(args.url), fps=args.fps, max_width=args.max_width,
                                 jpeg_quality=args.jpeg_quality, loop=args.loop, roi=roi,
                                 min_face_px=args.min_face_px, enabled=not args.disabled, store=args.store,
                                 blur_others=args.blur_others, retention_days=args.retention_days)
        _register(registry, [cam], s)
        print(f"camera {cam.id} -> {cam.public()['url']} ({cam.fps:g} fps)")
    elif args.camera_cmd == "remove":
        if not registry.remove(args.name):
            print(f"no camera named {args.name!r}")
            return 1
        print(f"removed camera {args.name}")
    elif args.camera_cmd == "import":
        _register(registry, imported, s)
        print(f"imported {len(imported)} camera(s): {', '.join(c.id for c in imported)}")
    else:
        cams, errors = registry.all()
        if args.json:
            print(json.dumps({"cameras": [c.public() for c in cams.values()], "errors": errors}, indent=2))
        else:
            for c in cams.values():
                pub = c.public()
                print(f"{c.id:20} {pub['url']:50} {c.fps:g} fps{'' if c.enabled else '  (disabled)'}")
            for cam_id, err in errors.items():
                print(f"{cam_id:20} INVALID: {err}")
    return 0
