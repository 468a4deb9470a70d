"""Classification metrics of the with_mask / without_mask classifier, in plain numpy.

``summary`` gives the JSON object of ``maskwatch evaluate --json``. The positive class of ROC is
``without_mask``: the class the product exists to find.

>>> s = summary(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
>>> s["accuracy"], s["per_class"]["without_mask"]["recall"], s["roc_auc"], s["confusion"]
(0.75, 1.0, 1.0, [[1, 1], [0, 2]])
"""

from __future__ import annotations

import numpy as np

from maskwatch.artifact import CLASSES

POSITIVE = CLASSES.index("without_mask")


def confusion(labels: np.ndarray, preds: np.ndarray, k: int = len(CLASSES)) -> np.ndarray:
    """Counts with rows the true class and columns the predicted class."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``labels == POSITIVE`` (Mann-Whitney, ties halved)."""
    pos = labels == POSITIVE
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every threshold, for the ROC plot."""
    order = np.argsort(-scores, kind="mergesort")
    pos = (labels[order] == POSITIVE).astype(np.float64)
    tps, fps = np.concatenate([[0], np.cumsum(pos)]), np.concatenate([[0], np.cumsum(1 - pos)])
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1)


def summary(labels: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, ROC-AUC, per-class precision/recall/F1/n and the confusion matrix.

    ``p_positive`` is the probability of without_mask; a face is called without_mask above ``threshold``.
    """
    labels = np.asarray(labels, np.int64)
    preds = np.where(np.asarray(p_positive) > threshold, POSITIVE, 1 - POSITIVE)
    cm = confusion(labels, preds)
    per_class = {}
    for i, name in enumerate(CLASSES):
        tp, n_true, n_pred = cm[i, i], cm[i].sum(), cm[:, i].sum()
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "n": int(n_true)}
    present = [c for c in per_class.values() if c["n"]]
    return {
        "n": len(labels),
        "accuracy": float((preds == labels).mean()) if len(labels) else 0.0,
        "balanced_accuracy": float(np.mean([c["recall"] for c in present])) if present else 0.0,
        "roc_auc": roc_auc(labels, np.asarray(p_positive, np.float64)),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }
