"""The seed's evaluation figures: training curves, confusion matrix, ROC curves, sample grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np

from maskwatch.artifact import CLASSES
from trainer.augment import degrade
from trainer.datasets import Split, decode
from trainer.metrics import roc_auc, roc_curve


def curves(history: list[dict], path: Path) -> None:
    """Training loss, and validation balanced accuracy clean and degraded, per epoch over both phases."""
    x = np.arange(1, len(history) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(x, [h["train_loss"] for h in history], label="train loss")
    a.plot(x, [h["val"]["loss"] for h in history], label="val loss (mean over clean/degraded)")
    b.plot(x, [h["train_accuracy"] for h in history], label="train accuracy (augmented)")
    for key in history[0]["val"] if history else []:
        if key not in ("score", "loss"):
            label = "val clean" if key == "0" else f"val @ {key} px"
            b.plot(x, [h["val"][key]["balanced_accuracy"] for h in history], label=f"{label} balanced acc.")
    phase2 = [i + 1 for i, h in enumerate(history) if h["phase"] == 2]
    for ax in (a, b):
        if phase2:
            ax.axvline(phase2[0] - 0.5, color="grey", ls=":", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    a.set_title("loss")
    b.set_title("accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion(cm: np.ndarray, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roc(curves_by_name: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """ROC curves (positive class without_mask), one per evaluation set / degradation."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves_by_name.items():
        fpr, tpr = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(labels, scores):.4f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set_xlabel("false positive rate (with_mask called without)")
    ax.set_ylabel("true positive rate (without_mask found)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sample_grid(split: Split, probs: np.ndarray, path: Path, title: str, degrade_px: int | None = None,
                worst: int = 16, random: int = 16) -> None:
    """The most confident mistakes first, then random predictions; red titles are wrong."""
    preds = probs.argmax(1)
    wrong = np.flatnonzero(preds != split.labels)
    wrong = wrong[np.argsort(-probs[wrong].max(1))][:worst]
    rest = np.setdiff1d(np.arange(len(split)), wrong)
    rng = np.random.default_rng(0)
    chosen = list(wrong) + list(rng.choice(rest, min(random, len(rest)), replace=False))
    cols = 8
    rows = max(1, -(-len(chosen) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 2.1))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), chosen):
        img = decode(split.blobs[i])
        if degrade_px:
            img = degrade(img, degrade_px)
        ax.imshow(img[:, :, ::-1])
        ok = preds[i] == split.labels[i]
        ax.set_title(f"{CLASSES[preds[i]].replace('_', ' ')}\n{probs[i].max():.2f}", fontsize=7,
                     color="green" if ok else "red")
    fig.suptitle(f"{title}: {len(wrong)} worst mistakes (red) then random samples", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
