"""`maskwatch camera add|list|remove|import`: edit the registry that running producers watch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from maskwatch.cameras import CameraConfig, CameraError, Registry
from maskwatch.keys import Keys
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings


def load_camera_file(path: Path) -> list[CameraConfig]:
    """Cameras from a YAML or JSON file: a list of ``{name, url, fps, ...}`` or a mapping name -> config."""
    text = path.read_text()
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        data: Any = yaml.safe_load(text)
    else:
        data = json.loads(text)
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
        cams.append(CameraConfig.from_dict(str(item.pop("name")), item))
    return cams


def parse_camera_arg(spec: str, s: Settings, loop: bool = False) -> CameraConfig:
    """``NAME=URL`` from `maskwatch up --camera`, with the settings' camera defaults."""
    name, sep, url = spec.partition("=")
    if not sep or not name or not url:
        raise CameraError(f"--camera {spec!r}: expected NAME=URL, e.g. --camera lobby=rtsp://10.0.0.5/stream1")
    return CameraConfig(id=name, url=url, fps=s.fps, max_width=s.max_width, jpeg_quality=s.jpeg_quality, loop=loop)


def run(s: Settings, args: argparse.Namespace) -> int:
    registry = Registry(connect(s), Keys(s.prefix))
    if args.camera_cmd == "add":
        roi = tuple(float(v) for v in args.roi.split(",")) if args.roi else None
        cam = CameraConfig(id=args.name, url=args.url, fps=s.fps, max_width=s.max_width,
                           jpeg_quality=s.jpeg_quality, loop=args.loop, roi=roi,  # type: ignore[arg-type]
                           min_face_px=args.min_face_px, enabled=not args.disabled)
        registry.put(cam)
        print(f"camera {cam.id} -> {cam.public()['url']} ({cam.fps:g} fps)")
    elif args.camera_cmd == "remove":
        if not registry.remove(args.name):
            print(f"no camera named {args.name!r}")
            return 1
        print(f"removed camera {args.name}")
    elif args.camera_cmd == "import":
        cams = load_camera_file(args.file)
        for cam in cams:
            registry.put(cam)
        print(f"imported {len(cams)} camera(s): {', '.join(c.id for c in cams)}")
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
