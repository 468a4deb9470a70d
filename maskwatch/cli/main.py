"""The `maskwatch` command line: the composition root.

It parses flags, builds :class:`~maskwatch.settings.Settings` (environment, then flags) and calls
into the apps, importing each app lazily inside its subcommand so that `maskwatch --help`, the
producer and the dashboard never load torch.

A flag overrides a setting only where its command declares it one (:func:`_setting`); every other
flag is the command's own option (``train --batch-size`` is the training batch, not the worker's).
Flags that stand for a setting or a camera field parse with that field's own type and range.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from maskwatch import __version__
from maskwatch.cameras import CameraConfig
from maskwatch.cli.errors import run_reporting
from maskwatch.settings import ENV_PREFIX, RuntimeName, Settings

log = logging.getLogger("maskwatch.cli")

DESCRIPTION = """\
MaskWatch measures face-mask compliance on live camera streams.

Start here:
  maskwatch up --camera lobby=rtsp://user:pass@10.0.0.5/stream1 --camera door=0
      runs Redis (embedded), producers, workers, side jobs and the dashboard on this machine;
      open http://127.0.0.1:8000 and press Ctrl-C to stop everything.

Every setting comes from the environment as MASKWATCH_<NAME> (e.g. MASKWATCH_REDIS_URL); a
command's flag for it overrides the environment, and its help names the variable.
"""


def _field_type(model: type[BaseModel], name: str) -> Callable[[str], Any]:
    """Parse a flag's text as ``model``'s field ``name``, with its range: argparse then names the flag."""
    info = model.model_fields[name]
    kind: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(kind)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc.errors()[0]['msg']}") from None

    return parse


def _setting(p: argparse.ArgumentParser, flag: str, name: str | None = None,
             group: argparse._ArgumentGroup | None = None, **kw: Any) -> None:
    """Add ``flag`` to ``p`` as the override of the setting ``name`` (default: the flag's own name).

    Its help is the setting's description, variable and default; :func:`settings_from` applies
    exactly the flags a command declared this way.
    """
    name = name or flag.removeprefix("--").replace("-", "_")
    info = Settings.model_fields[name]
    default = f", default {info.default}" if info.default is not None else ""
    kw.setdefault("help", f"{info.description} (env {ENV_PREFIX}{name.upper()}{default})".replace("%", "%%"))
    if kw.get("action") is None:
        kw.update(type=_field_type(Settings, name), metavar=flag.removeprefix("--").replace("-", "_").upper())
        if get_origin(info.annotation) is Literal:
            kw.update(choices=get_args(info.annotation), metavar=None)
    (group or p).add_argument(flag, dest=name, **kw)
    p.set_defaults(settings_flags=(*(p.get_default("settings_flags") or ()), name))


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common")
    for flag in ("--redis-url", "--prefix", "--model-dir", "--model", "--log-level"):
        _setting(p, flag, group=g)


def _worker_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inference")
    for flag in ("--batch-size", "--max-wait-ms", "--runtime", "--device", "--threads"):
        _setting(p, flag, group=g)


def _allow_no_token(p: argparse.ArgumentParser) -> None:
    _setting(p, "--allow-no-token", action="store_true", default=None,
             help="allow the dashboard's write API without MASKWATCH_API_TOKEN (local use only)")


def _add_up(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run the whole system on this machine", description=(
        "Run MaskWatch on one machine: an embedded redis-server (unless MASKWATCH_REDIS_URL is set), "
        "a producer, N workers, the side-job runner and the dashboard, as child processes. Ctrl-C stops them all."))
    p.add_argument("--camera", action="append", default=[], metavar="NAME=URL",
                   help="add or update a camera before starting (repeatable); "
                        "URL: rtsp(s)://, http(s)://, a webcam index, or a video file (without MASKWATCH_MEDIA_DIR, "
                        "the files' folder becomes the media folder of the run)")
    p.add_argument("--fps", type=_field_type(CameraConfig, "fps"),
                   help="frames per second taken from each --camera (default MASKWATCH_FPS, 5)")
    p.add_argument("--loop", action="store_true", help="loop file cameras given with --camera")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: one per core, one thread each; bench/scaling.py)")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="dashboard port (default 8000)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.add_argument("--no-jobs", action="store_true", help="do not start the side-job runner")
    _allow_no_token(p)
    _setting(p, "--state-dir")
    _worker_flags(p)
    _common(p)
    p.set_defaults(func=_run_up)


def _add_producer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("producer", help="capture the registered cameras into Redis", description=(
        "Capture every camera of the registry (see `maskwatch camera`) that this producer holds a lease on, "
        "send the frames where something moved (with their motion regions) and a keyframe every few seconds "
        "to the camera's frames stream. Run several: they split the cameras."))
    _setting(p, "--metrics-port", "producer_metrics_port")
    _setting(p, "--lag-threshold")
    _common(p)
    p.set_defaults(func=_run_producer)


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="detect, track and classify faces of the cameras it holds", description=(
        "Hold a fair share of the cameras (leases), read their frames in order, batch across them, detect faces "
        "(YuNet) where things moved, track them, classify a face when its track asks for a look (all crops of a "
        "batch in one forward pass) and write results, statistics and person records. Run one per core or GPU: "
        "a new worker takes its share within a second, a dead one's cameras move when its leases expire."))
    _setting(p, "--metrics-port", "worker_metrics_port")
    p.add_argument("--name", help="worker id: consumer name and lease holder (default host-pid)")
    _worker_flags(p)
    _common(p)
    p.set_defaults(func=_run_worker)


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the web dashboard, JSON API and /metrics")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _allow_no_token(p)
    _common(p)
    p.set_defaults(func=_run_dashboard)


def _add_jobs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="run side jobs: webhooks, alerts, offline analysis (RQ)", description=(
        "Run the side jobs: webhook deliveries (several at once) and compliance alerts, and offline video "
        "analysis, each kind on its own queue and threads, so neither waits for the other."))
    p.add_argument("--queue", choices=["webhooks", "analysis"],
                   help="serve only this kind (webhooks: deliveries and alerts); default both")
    _setting(p, "--metrics-port", "jobs_metrics_port")
    _setting(p, "--webhook", "webhook_url")
    p.add_argument("--burst", action="store_true", help="process the queued jobs, then exit")
    _common(p)
    p.set_defaults(func=_run_jobs)


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyse a recorded video as a side job and report compliance")
    p.add_argument("video", type=Path, help="a video file to analyse (for images or a folder of them: `predict`)")
    p.add_argument("--camera", help="camera name to file the report under")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second analysed (default 5)")
    p.add_argument("--wait", action="store_true", help="wait for the job and print its report as JSON")
    _common(p)
    p.set_defaults(func=_run_analyze)


def _add_camera(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("camera", help="manage the camera registry (running producers pick changes up)")
    csub = p.add_subparsers(dest="camera_cmd", required=True, metavar="{add,list,remove,import}")
    add = csub.add_parser("add", help="add or update a camera")
    add.add_argument("name", help="camera id: letters, digits, _ . -")
    add.add_argument("url", help="rtsp(s)://..., http(s)://..., a webcam index such as 0, or a video file in the "
                                 "media folder (MASKWATCH_MEDIA_DIR); refused if not allowed, a warning if it does "
                                 "not open within 3 s")
    for field in ("fps", "max_width", "jpeg_quality"):
        info = CameraConfig.model_fields[field]
        add.add_argument("--" + field.replace("_", "-"), type=_field_type(CameraConfig, field), metavar=field.upper(),
                         help=f"{info.description}, default {info.default}")
    add.add_argument("--loop", action="store_true", help="restart a video file at its end")
    add.add_argument("--roi", help="region of interest x,y,w,h as fractions of the frame, e.g. 0,0.3,1,0.7")
    add.add_argument("--min-face-px", type=_field_type(CameraConfig, "min_face_px"),
                     help="ignore faces smaller than this (pixels)")
    add.add_argument("--disabled", action="store_true", help="register but do not capture")
    privacy = add.add_argument_group("privacy (default: the site's MASKWATCH_STORE, _BLUR_OTHERS, _RETENTION_DAYS)")
    privacy.add_argument("--store", choices=["none", "violations", "all"],
                         help=CameraConfig.model_fields["store"].description)
    privacy.add_argument("--blur-others", action=argparse.BooleanOptionalAction, default=None,
                         help="blur every face but the violator's in stored images")
    privacy.add_argument("--retention-days", type=_field_type(CameraConfig, "retention_days"),
                         help="days person records, events and snapshots of this camera are kept")
    _common(add)
    lst = csub.add_parser("list", help="list cameras (credentials masked)")
    lst.add_argument("--json", action="store_true", help="print JSON")
    _common(lst)
    rm = csub.add_parser("remove", help="remove a camera")
    rm.add_argument("name")
    _common(rm)
    imp = csub.add_parser("import", help="add cameras from a YAML or JSON file: a list of {name, url, fps, ...}")
    imp.add_argument("file", type=Path)
    _common(imp)
    p.set_defaults(func=_run_camera)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="run the detector and classifier on images, a folder or a video")
    p.add_argument("path", type=Path, help="an image, a folder of images, or a video file")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per image or frame: {"source", "frame", "faces": [{"box", "label", "score"}]}')
    p.add_argument("-o", "--out", type=Path, help="write annotated images (a folder) or an annotated video (a file)")
    p.add_argument("--every", type=int, default=1, help="videos: analyse every Nth frame (default 1)")
    _worker_flags(p)
    _common(p)
    p.set_defaults(func=_run_predict)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the mask classifier (needs the torch extra)", description=(
        "Train the MobileNetV2 with_mask / without_mask classifier. DATA: the Kaggle 12K layout "
        "(Train/Validation/Test x WithMask/WithoutMask), train/val/test x with_mask/without_mask, or a plain "
        "with_mask/ without_mask/ folder (a validation split is made)."))
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder (default runs/train)")
    p.add_argument("--epochs", type=int, help="epochs of the head on frozen features (default 20)")
    p.add_argument("--input-size", type=int, help="classifier input size in pixels (default 160; the seed used 224)")
    p.add_argument("--init-weights", default="imagenet", help="'imagenet' (torchvision's weights) or a .pth state dict")
    p.add_argument("--from-scratch", action="store_true", help="random initialisation (never silent)")
    p.add_argument("--unfreeze", type=int,
                   help="fine-tune the last N feature blocks in a second phase (default 3; 0: head only, as the seed)")
    p.add_argument("--seed", type=int, default=0, help="random seed (runs are deterministic under it)")
    p.add_argument("--resume", type=Path, help="checkpoint to resume from")
    p.add_argument("--batch-size", type=int, help="training batch size (default 128)")
    p.add_argument("--lr", type=float, help="peak learning rate of the head (default 1e-3; fine-tuning uses 2e-4)")
    p.add_argument("--augment", dest="augment", action="store_true",
                   help="augment against the CCTV domain gap (default)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="the seed's recipe: no augmentation")
    p.add_argument("--limit", type=int, help="use at most N images per class and split (quick runs, tests)")
    p.add_argument("--views", type=int,
                   help="augmented views cached per training image besides the clean one (default 4)")
    p.add_argument("--finetune-epochs", type=int, help="epochs of the --unfreeze phase (default 4)")
    p.add_argument("--degrade", type=int, nargs="+", metavar="PX",
                   help="face widths of the degraded validation copies that select the model (default 24 32)")
    p.add_argument("--eval", type=Path, action="append", metavar="DIR",
                   help="also evaluate the result on this with_mask/without_mask folder (repeatable; never trained on)")
    p.set_defaults(func=_run_train, augment=True)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class precision/recall/F1, ROC-AUC of a classifier on a folder")
    p.add_argument("--model", type=Path, help="artifact (.mwm); default: the shipped model")
    p.add_argument("--data", type=Path, required=True,
                   help="folder with with_mask/ and without_mask/ (or WithMask/WithoutMask)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--degrade", type=int, metavar="PX",
                   help="first shrink every image to PX wide and back, as a camera would see it")
    p.add_argument("--runtime", choices=get_args(RuntimeName), default="onnx", help="classifier runtime (default onnx)")
    p.set_defaults(func=_run_evaluate)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="third-party model files (YuNet)")
    msub = p.add_subparsers(dest="models_cmd", required=True, metavar="{fetch,info}")
    f = msub.add_parser("fetch", help="download missing model files into MASKWATCH_MODEL_DIR, checking sha256")
    _common(f)
    i = msub.add_parser("info", help="show where the model files are and the classifier's metadata")
    _common(i)
    p.set_defaults(func=_run_models)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskwatch", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"maskwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_up, _add_producer, _add_worker, _add_dashboard, _add_jobs, _add_camera, _add_predict,
                _add_analyze, _add_train, _add_evaluate, _add_models):
        add(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment first, then the flags the command declared as settings (none for train and evaluate)."""
    names: Sequence[str] = getattr(args, "settings_flags", None) or ()
    return Settings.from_env().override(**{name: getattr(args, name) for name in names})


def _run_up(args: argparse.Namespace, s: Settings) -> int:
    from maskwatch.cli.up import UpOptions, run_up

    return run_up(s, UpOptions(cameras=tuple(args.camera), fps=args.fps, loop=args.loop, workers=args.workers,
                               host=args.host, port=args.port, dashboard=not args.no_dashboard, jobs=not args.no_jobs))


def _run_producer(args: argparse.Namespace, s: Settings) -> int:
    from producer.service import main

    return main(s)


def _run_worker(args: argparse.Namespace, s: Settings) -> int:
    from worker.service import main

    return main(s, name=args.name)


def _run_dashboard(args: argparse.Namespace, s: Settings) -> int:
    from dashboard.server import main

    return main(s, host=args.host, port=args.port)


def _run_jobs(args: argparse.Namespace, s: Settings) -> int:
    from worker.jobs.runner import KINDS, main

    return main(s, burst=args.burst, kinds=(args.queue,) if args.queue else tuple(KINDS))


def _run_analyze(args: argparse.Namespace, s: Settings) -> int:
    from maskwatch.vision.media import check_video
    from worker.jobs.analysis import main

    check_video(args.video)
    return main(s, video=args.video, camera=args.camera, fps=args.fps, wait=args.wait)


def _run_camera(args: argparse.Namespace, s: Settings) -> int:
    from maskwatch.cli.camera import run

    return run(s, args)


def _run_predict(args: argparse.Namespace, s: Settings) -> int:
    from maskwatch.cli.predict import main

    return main(s, path=args.path, as_json=args.json, out=args.out, every=args.every)


def _run_train(args: argparse.Namespace, s: Settings) -> int:
    from trainer.train import main

    return main(args)


def _run_evaluate(args: argparse.Namespace, s: Settings) -> int:
    from trainer.evaluate import main

    return main(args)


def _run_models(args: argparse.Namespace, s: Settings) -> int:
    from maskwatch.modelfiles import ensure_yunet, yunet_path

    if args.models_cmd == "fetch":
        print(ensure_yunet(s.model_dir))
        return 0
    from maskwatch.artifact import ModelArtifact, default_model_path

    model = s.model or default_model_path()
    meta = ModelArtifact.load(model).meta
    print(json.dumps({"yunet": str(yunet_path(s.model_dir)), "classifier": str(model),
                      "classes": meta.classes, "input_size": meta.input_size, "metrics": meta.metrics}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting(args.command, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from maskwatch.service import setup_logging

    settings = settings_from(args)
    if not settings.redis_url and args.command != "up":
        from maskwatch.cli.runfile import read

        running = read(settings.state_dir)  # the embedded Redis of an `up` running on this state folder
        if running is not None:
            settings = settings.override(redis_url=running.redis_url, media_dir=settings.media_dir or running.media_dir)
    setup_logging(args.command, settings.log_level)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    return func(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
