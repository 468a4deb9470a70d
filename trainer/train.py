"""`maskwatch train`: train, select, export and document the with_mask / without_mask classifier.

The recipe, sized for a 2-core CPU:

1. Load the data (any layout of :mod:`trainer.datasets`), fingerprint it, build MobileNetV2 with
   ImageNet features and a fresh FC + ReLU + dropout head.
2. Run every frozen block once per augmented view of each training image (and per degraded copy
   of each validation image) and cache the outputs (:mod:`trainer.features`).
3. Phase 1 trains the head on pooled features, each epoch drawing one cached view per image.
   Phase 2 (``--unfreeze N``) trains the last N feature blocks and the head at a lower rate.
4. Select the epoch by validation balanced accuracy averaged over the clean images and copies
   degraded to CCTV face sizes (``--degrade``): clean 12K validation accuracy saturates at 1.0
   and cannot choose a model.
5. Export the artifact, check ONNX Runtime against torch, evaluate the artifact on val and test
   (and any ``--eval`` folder) through the serving code, and write metrics.json, plots and a
   model card.

Every random choice derives from ``--seed`` and the (phase, epoch), so a run and a resumed run
give the same weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import maskwatch
from maskwatch.artifact import CLASSES, ModelArtifact, ModelMeta
from maskwatch.exceptions import InputError, SettingsError
from trainer import card, features, plots
from trainer import model as netlib
from trainer.augment import AugmentConfig, augment, degrade, view_rng
from trainer.datasets import Split, fingerprint, load_dataset
from trainer.evaluate import predict
from trainer.metrics import summary

log = logging.getLogger(__name__)

POS = CLASSES.index("without_mask")


@dataclass
class Recipe:
    """Everything that defines a training run; recorded in the artifact and the checkpoint."""

    input_size: int = 160
    epochs: int = 20
    unfreeze: int = 3
    finetune_epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-3
    finetune_lr: float = 2e-4
    augment: bool = True
    views: int = 4
    degrade: list[int] = field(default_factory=lambda: [24, 32])
    head: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.5
    label_smoothing: float = 0.1
    weight_decay: float = 1e-4
    seed: int = 0
    init_weights: str = "imagenet"
    from_scratch: bool = False
    limit: int | None = None
    augment_config: dict = field(default_factory=lambda: AugmentConfig().as_dict())

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Recipe:
        r = cls()
        for name in ("input_size", "epochs", "unfreeze", "finetune_epochs", "batch_size", "lr", "views",
                     "seed", "init_weights", "limit", "degrade"):
            value = getattr(args, name, None)
            if value is not None:
                setattr(r, name, value)
        r.augment = bool(getattr(args, "augment", True))
        r.from_scratch = bool(getattr(args, "from_scratch", False))
        if not r.augment:
            r.views = 0
        if r.from_scratch and getattr(args, "unfreeze", None) is None:
            r.unfreeze = netlib.NUM_BLOCKS  # random features are worth nothing frozen
        r.validate()
        return r

    def validate(self) -> None:
        checks = [(32 <= self.input_size <= 512, f"--input-size {self.input_size}: use 32..512 pixels"),
                  (self.epochs >= 1, f"--epochs {self.epochs}: train at least one epoch"),
                  (0 <= self.unfreeze <= netlib.NUM_BLOCKS,
                   f"--unfreeze {self.unfreeze}: MobileNetV2 has {netlib.NUM_BLOCKS} feature blocks"),
                  (self.batch_size >= 2, f"--batch-size {self.batch_size}: use at least 2"),
                  (self.lr > 0, f"--lr {self.lr}: must be positive"),
                  (self.views >= 0, f"--views {self.views}: zero or more augmented views"),
                  (all(4 <= px for px in self.degrade), f"--degrade {self.degrade}: face widths of at least 4 px")]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    @property
    def cut(self) -> int:
        return netlib.NUM_BLOCKS - self.unfreeze


@dataclass
class Cached:
    """The frozen stem's outputs: views of the training images, degraded copies of validation."""

    train: list[np.ndarray]  # the clean images, then each augmented view
    val: dict[int, np.ndarray]  # degrade px (0: clean) -> stem outputs


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def extract_all(recipe: Recipe, model: netlib.MaskNet, splits: dict[str, Split], meta: ModelMeta,
                cache_dir: Path, init_source: str) -> Cached:
    stem = features.StemRunner(netlib.to_onnx(netlib.Stem(model, recipe.cut), recipe.input_size, "features"),
                               threads=torch.get_num_threads())
    aug = AugmentConfig(**recipe.augment_config)
    common = {"size": recipe.input_size, "cut": recipe.cut, "init": init_source, "scratch": recipe.from_scratch,
              "seed": recipe.seed, "version": 1}

    def path(split: Split, **extra: object) -> Path:
        key = features.cache_key(data=fingerprint({split.name: split}), **common, **extra)
        return cache_dir / f"{split.name}-{key}.npy"

    train = splits["train"]
    # The clean image is always one of the views: it keeps clean accuracy up (measured in docs/training.md).
    views = [features.extract(train, lambda img, i: img, stem, meta, path(train, degrade=0), "cache train clean")]
    for v in range(recipe.views if recipe.augment else 0):
        def augmented(img: np.ndarray, i: int, v: int = v) -> np.ndarray:
            return augment(img, view_rng(recipe.seed, i, v), aug, train.labels[i])

        views.append(features.extract(train, augmented, stem, meta, path(train, view=v, augment=aug.as_dict()),
                                      f"cache train view {v + 1}/{recipe.views}"))
    val = {}
    for px in [0, *recipe.degrade]:
        fn = (lambda img, i, px=px: degrade(img, px)) if px else (lambda img, i: img)
        val[px] = features.extract(splits["val"], fn, stem, meta, path(splits["val"], degrade=px),
                                   f"cache val {'clean' if not px else f'{px} px'}")
    return Cached(views, val)


class Trainer:
    """Epochs over cached features, validation, selection and checkpoints."""

    def __init__(self, recipe: Recipe, model: netlib.MaskNet, cached: Cached, labels: dict[str, np.ndarray],
                 out: Path, data_fp: str):
        self.recipe, self.model, self.cached, self.labels, self.out = recipe, model, cached, labels, out
        self.data_fp = data_fp  # the checkpoint records it so --resume refuses other data
        self.history: list[dict] = []
        self.best: dict | None = None
        self.upper = netlib.Upper(model, recipe.cut)

    # -- features the head sees in phase 1 (pooled once: the blocks above the cut are frozen then)
    def _pooled(self) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        self.model.eval()
        train = [features.pool_upper(self.upper, v) for v in tqdm(self.cached.train, desc="pool views", leave=False)]
        val = {px: features.pool_upper(self.upper, v) for px, v in self.cached.val.items()}
        return train, val

    def _evaluate(self, module: nn.Module, val: dict[int, np.ndarray]) -> dict:
        module.eval()
        per_px: dict[str, dict[str, float]] = {}
        with torch.inference_mode():
            for px, x in val.items():
                logits = torch.cat([module(torch.from_numpy(np.asarray(x[i:i + 256], np.float32)))
                                    for i in range(0, len(x), 256)])
                p = torch.softmax(logits, 1)[:, POS].numpy()
                s = summary(self.labels["val"], p)
                loss = nn.functional.cross_entropy(logits, torch.from_numpy(self.labels["val"])).item()
                per_px[str(px)] = {"balanced_accuracy": s["balanced_accuracy"], "accuracy": s["accuracy"],
                                   "without_mask_recall": s["per_class"]["without_mask"]["recall"], "loss": loss}
        score = float(np.mean([r["balanced_accuracy"] for r in per_px.values()]))
        loss = float(np.mean([r["loss"] for r in per_px.values()]))
        return {**per_px, "score": score, "loss": loss}

    def run_phase(self, phase: int, start_epoch: int, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, epochs: int,
                  train_x: list[np.ndarray], val_x: dict[int, np.ndarray], module: nn.Module) -> None:
        r = self.recipe
        y = torch.from_numpy(self.labels["train"])
        n = len(y)
        what = "head" if phase == 1 else f"last {r.unfreeze} blocks + head"
        bar = tqdm(range(start_epoch, epochs), desc=f"phase {phase} ({what})", unit="epoch", initial=start_epoch,
                   total=epochs)
        for epoch in bar:
            t0 = time.time()
            g = torch.Generator().manual_seed(r.seed * 1000 + phase * 100 + epoch)
            torch.manual_seed(r.seed * 1000 + phase * 100 + epoch)  # dropout
            perm = torch.randperm(n, generator=g)
            pick = torch.randint(len(train_x), (n,), generator=g).numpy()
            if phase == 1:
                module.train()
            else:
                netlib.set_train_mode(self.model, r.cut, batchnorm_stats=r.from_scratch)
            total, correct, seen = 0.0, 0, 0
            for i in tqdm(range(0, n, r.batch_size), desc=f"epoch {epoch + 1}", unit="batch", leave=False):
                idx = perm[i:i + r.batch_size].numpy()
                if len(idx) < 2:
                    continue
                xb = torch.from_numpy(np.stack([np.asarray(train_x[v][j], np.float32) for v, j in zip(pick[idx], idx)]))
                logits = module(xb)
                loss = nn.functional.cross_entropy(logits, y[idx], label_smoothing=r.label_smoothing)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y[idx]).sum())
                seen += len(idx)
            val = self._evaluate(module, val_x)
            row = {"phase": phase, "epoch": epoch + 1, "train_loss": total / max(seen, 1),
                   "train_accuracy": correct / max(seen, 1), "val": val, "seconds": time.time() - t0}
            self.history.append(row)
            if self.best is None or (val["score"], -val["loss"]) > (self.best["score"], -self.best["loss"]):
                self.best = {"score": val["score"], "loss": val["loss"], "phase": phase, "epoch": epoch + 1,
                             "state": {k: v.clone() for k, v in self.model.state_dict().items()}}
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{val['score']:.4f}",
                            best=f"{self.best['score']:.4f}")
            self.save_checkpoint(phase, epoch + 1, optimizer, scheduler)

    def save_checkpoint(self, phase: int, epoch: int, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        ckpt = {"recipe": asdict(self.recipe), "phase": phase, "epoch": epoch, "model": self.model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "history": self.history, "best": self.best, "data": self.data_fp}
        tmp = self.out / "checkpoint.pt.tmp"
        torch.save(ckpt, tmp)
        tmp.replace(self.out / "checkpoint.pt")


def _phase_optim(params: list[dict], recipe: Recipe, lr: float, epochs: int, n: int) -> tuple:
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=recipe.weight_decay)
    steps = epochs * max(1, -(-n // recipe.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in params], total_steps=steps,
                                                    pct_start=0.15)
    return optimizer, scheduler


def train(recipe: Recipe, data: Path, out: Path, resume: Path | None = None,
          eval_dirs: list[Path] | None = None) -> dict:
    """The whole run; returns metrics.json's content."""
    started = time.time()
    _seed_everything(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset(data, limit=recipe.limit)
    data_fp = fingerprint(splits)
    ckpt = _load_checkpoint(resume, recipe, data_fp) if resume else None
    for name, s in splits.items():
        log.info("%s: %d images %s%s", name, len(s), s.counts(), f", skipped {len(s.skipped)}" if s.skipped else "")
    model, init_source = netlib.build(recipe.head, recipe.dropout, recipe.init_weights, recipe.from_scratch)
    model.eval()
    meta = ModelMeta(classes=list(CLASSES), input_size=recipe.input_size, head=list(recipe.head))
    cached = extract_all(recipe, model, splits, meta, out / "cache", init_source)
    labels = {"train": splits["train"].labels, "val": splits["val"].labels}
    trainer = Trainer(recipe, model, cached, labels, out, data_fp)
    n = len(splits["train"])
    start_phase, start_epoch = (ckpt["phase"], ckpt["epoch"]) if ckpt else (1, 0)
    if ckpt:
        model.load_state_dict(ckpt["model"])
        trainer.history, trainer.best = ckpt["history"], ckpt["best"]

    if start_phase == 1:
        trainable = netlib.freeze(model, netlib.NUM_BLOCKS)
        train_x, val_x = trainer._pooled()
        opt, sched = _phase_optim([{"params": trainable, "lr": recipe.lr}], recipe, recipe.lr, recipe.epochs, n)
        if ckpt and ckpt["phase"] == 1:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        trainer.run_phase(1, start_epoch, opt, sched, recipe.epochs, train_x, val_x, model.head)
        start_epoch = 0
    if recipe.unfreeze:
        trainable = netlib.freeze(model, recipe.cut)
        blocks = [p for p in model.features.parameters() if p.requires_grad]
        lr = recipe.finetune_lr
        groups = [{"params": blocks, "lr": lr}, {"params": list(model.head.parameters()), "lr": lr}]
        opt, sched = _phase_optim(groups, recipe, lr, recipe.finetune_epochs, n)
        if ckpt and ckpt["phase"] == 2 and start_phase == 2:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        trainer.run_phase(2, start_epoch, opt, sched, recipe.finetune_epochs, cached.train, cached.val, trainer.upper)
        del trainable
    assert trainer.best is not None
    model.load_state_dict(trainer.best["state"])
    model.eval()
    return finish(recipe, model, meta, splits, out, trainer, data_fp, init_source, started, eval_dirs or [])


def _load_checkpoint(path: Path, recipe: Recipe, data_fp: str) -> dict:
    if not path.is_file():
        raise InputError(f"--resume {path}: no such checkpoint; give the checkpoint.pt of an earlier run")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("data") != data_fp:
        raise InputError(f"--resume {path}: the checkpoint was trained on other data (fingerprint differs); "
                         "resume with the same --data")
    if ckpt["recipe"] != asdict(recipe):
        diff = sorted(k for k in ckpt["recipe"] if ckpt["recipe"][k] != asdict(recipe).get(k))
        raise InputError(f"--resume {path}: the checkpoint used other settings ({', '.join(diff)}); "
                         "pass the same flags as the run that wrote it")
    return ckpt


def finish(recipe: Recipe, model: netlib.MaskNet, meta: ModelMeta, splits: dict[str, Split], out: Path,
           trainer: Trainer, data_fp: str, init_source: str, started: float, eval_dirs: list[Path]) -> dict:
    """Export, check parity, evaluate the artifact through the serving path, plot, write the card."""
    train_seconds = time.time() - started
    from maskwatch.runtimes.onnx import OnnxRuntime
    from trainer.datasets import load_split

    assert trainer.best is not None  # train() loaded the best epoch before calling finish
    meta.data_fingerprint = data_fp
    meta.versions = {"maskwatch": maskwatch.__version__, "torch": torch.__version__,
                     "torchvision": _version("torchvision"), "onnx": _version("onnx"),
                     "onnxruntime": _version("onnxruntime"), "python": sys.version.split()[0]}
    meta.recipe = {**asdict(recipe), "init_weights_source": init_source,
                   "selected": {k: trainer.best[k] for k in ("phase", "epoch", "score")}}
    meta.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    artifact = ModelArtifact(meta, netlib.to_onnx(model, recipe.input_size, "logits"))
    ort_runtime = OnnxRuntime(artifact)
    parity = check_parity(model, ort_runtime, artifact, splits["val"])
    (out / "parity.json").write_text(json.dumps(parity, indent=2))
    if not parity["ok"]:
        raise RuntimeError(f"ONNX export differs from torch: {parity}")

    sets: dict[str, Split] = {k: splits[k] for k in ("val", "test") if k in splits}
    for d in eval_dirs:
        sets[d.name] = load_split(d, d.name, strict=False)
    evaluation: dict[str, dict] = {}
    predictions: dict[str, np.ndarray] = {}
    for name, split in sets.items():
        for px in [0, *recipe.degrade]:
            key = name if not px else f"{name}@{px}px"
            probs = predict(ort_runtime, artifact, split, px or None, desc=f"evaluate {key}")
            predictions[key] = probs
            evaluation[key] = summary(split.labels, probs[:, POS])
    meta.metrics = {k: {m: v[m] for m in ("n", "accuracy", "balanced_accuracy", "roc_auc")}
                    | {"without_mask_recall": v["per_class"]["without_mask"]["recall"]} for k, v in evaluation.items()}
    artifact.save(out / "model.mwm")
    metrics = {"train_seconds": round(train_seconds, 1), "selected": meta.recipe["selected"],
               "data": {k: {"n": len(s), **s.counts(), "skipped": len(s.skipped)} for k, s in splits.items()},
               "data_fingerprint": data_fp, "parity": parity, "evaluation": evaluation,
               "history": trainer.history, "recipe": meta.recipe, "artifact_sha256": artifact.sha256}
    write_plots(out, trainer.history, sets, predictions, evaluation, recipe.degrade, [d.name for d in eval_dirs])
    metrics["total_seconds"] = round(time.time() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    (out / "MODEL_CARD.md").write_text(card.render(meta, metrics))
    log.info("wrote %s (%.1f MB)", out / "model.mwm", (out / "model.mwm").stat().st_size / 1e6)
    return metrics


def write_plots(out: Path, history: list[dict], sets: dict[str, Split], predictions: dict[str, np.ndarray],
                evaluation: dict[str, dict], degrade_px: list[int], extra_sets: list[str]) -> None:
    """Curves, confusion matrix and ROC of the test split (val without one), sample grids of every set."""
    main_set = "test" if "test" in sets else "val"
    plots.curves(history, out / "training_curves.png")
    plots.confusion(np.asarray(evaluation[main_set]["confusion"]), out / "confusion_matrix.png", main_set)
    shown = {main_set, *extra_sets}
    plots.roc({k: (sets[k.split("@")[0]].labels, p[:, POS]) for k, p in predictions.items()
               if k.split("@")[0] in shown}, out / "roc.png")
    px = min(degrade_px) if degrade_px else None
    plots.sample_grid(sets[main_set], predictions[main_set], out / "samples.png", f"{main_set}, clean")
    for name in [main_set, *extra_sets]:
        key = f"{name}@{px}px" if px else name
        target = out / ("samples_degraded.png" if name == main_set else f"samples_{name}_degraded.png")
        plots.sample_grid(sets[name], predictions[key], target, key, degrade_px=px)


def check_parity(model: netlib.MaskNet, runtime, artifact: ModelArtifact, split: Split, n: int = 64) -> dict:
    """Largest difference of class probabilities between torch and ONNX Runtime on validation images."""
    from maskwatch.vision.preprocess import to_batch
    from trainer.datasets import decode

    crops = [decode(b) for b in split.blobs[:n]]
    batch = to_batch(crops, artifact.meta.input_size, artifact.meta.mean, artifact.meta.std)
    with torch.inference_mode():
        ref = torch.softmax(model.eval()(torch.from_numpy(batch)), 1).numpy()
    got = runtime.predict_proba(batch)
    diff = float(np.abs(ref - got).max())
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    return {"images": len(crops), "max_abs_prob_diff": diff, "label_agreement": agree,
            "ok": diff < 1e-3 and agree == 1.0}


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "unknown"


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    recipe = Recipe.from_args(args)
    resume = Path(args.resume) if getattr(args, "resume", None) else None
    metrics = train(recipe, Path(args.data), Path(args.out), resume, list(getattr(args, "eval", None) or []))
    ev = metrics["evaluation"]
    for key, s in ev.items():
        print(f"{key:<28} acc {s['accuracy']:.4f}  balanced {s['balanced_accuracy']:.4f}  "
              f"without_mask recall {s['per_class']['without_mask']['recall']:.4f}")
    print(f"model: {Path(args.out) / 'model.mwm'}  (trained in {metrics['train_seconds'] / 60:.1f} min, "
          f"{metrics['total_seconds'] / 60:.1f} min with evaluation)")
    return 0
