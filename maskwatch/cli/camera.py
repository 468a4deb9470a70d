"""`maskwatch camera add|list|remove|import`: edit the registry that running producers watch.

A camera added here (``add``, ``import``, ``up --camera``) that leaves out fps, max_width or
jpeg_quality takes the settings' (MASKWATCH_FPS, ...), as one added through the dashboard API does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.exceptions import CameraError, InputError
from maskwatch.keys import Keys
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings


def load_camera_file(path: Path, defaults: Settings | None = None) -> list[CameraConfig]:
    """Cameras from a YAML or JSON file: a list of ``{name, url, fps, ...}`` or a mapping name -> config.

    Fields a camera leaves out take their defaults: ``defaults``' camera settings where given.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the camera file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path} is not valid YAML: {exc}") from None
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
        cams.append(CameraConfig.added(defaults, name, **item) if defaults else CameraConfig.from_dict(name, item))
    return cams


def parse_camera_arg(spec: str, s: Settings, fps: float | None = None, loop: bool = False) -> CameraConfig:
    """``NAME=URL`` from `maskwatch up --camera`, with the settings' camera defaults (``fps`` None: theirs)."""
    name, sep, url = spec.partition("=")
    if not sep or not name or not url:
        raise CameraError(f"--camera {spec!r}: expected NAME=URL, e.g. --camera lobby=rtsp://10.0.0.5/stream1")
    return CameraConfig.added(s, name, url=url, fps=fps, loop=loop)


def _parse_roi(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise CameraError(f"--roi {text!r}: give x,y,w,h as fractions of the frame, e.g. 0,0.3,1,0.7") from None


def run(s: Settings, args: argparse.Namespace) -> int:
    registry = Registry(connect(s), Keys(s.prefix))
    if args.camera_cmd == "add":
        roi = _parse_roi(args.roi) if args.roi else None
        cam = CameraConfig.added(s, args.name, url=args.url, fps=args.fps, max_width=args.max_width,
                                 jpeg_quality=args.jpeg_quality, loop=args.loop, roi=roi,
                                 min_face_px=args.min_face_px, enabled=not args.disabled, store=args.store,
                                 blur_others=args.blur_others, retention_days=args.retention_days)
        registry.put(cam)
        print(f"camera {cam.id} -> {cam.public()['url']} ({cam.fps:g} fps)")
    elif args.camera_cmd == "remove":
        if not registry.remove(args.name):
            print(f"no camera named {args.name!r}")
            return 1
        print(f"removed camera {args.name}")
    elif args.camera_cmd == "import":
        imported = load_camera_file(args.file, s)
        for cam in imported:
            registry.put(cam)
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
