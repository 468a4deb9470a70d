"""The model card written next to every trained artifact: data, recipe, metrics, limits, licence."""

from __future__ import annotations

from maskwatch.artifact import ModelMeta

LICENCE = (
    "The training images are third-party. Face Mask 12K's without_mask faces derive from CelebA, whose "
    "terms allow non-commercial research use only; treat the data, and this model trained on it, as "
    "**research-only**. Retrain on data you hold the rights to before any other use."
)

LIMITS = """\
- Trained on web photos (with_mask) and CelebA celebrity crops (without_mask): frontal, well-lit,
  mostly adult faces. In that data the classes also differ by source, sharpness and framing; the
  augmentation (recrops, blur, 16-48 px downscaling, JPEG) fights that shortcut, but faces seen from
  high above, in infrared, half-occluded or in profile are under-represented and less reliable.
- Faces narrower than about 24 px lose the mask's outline: expect without_mask recall to fall
  (see the degraded rows), so set the worker's minimum face size accordingly.
- Validation accuracy on clean 12K saturates near 1.0; the model was selected on validation images
  degraded to CCTV face sizes. No set here looks like real CCTV: check on your own footage.
- A classifier of mask presence, not of correct wearing (nose out counts as masked), and not for
  identifying anyone."""


def _rows(metrics: dict) -> str:
    lines = ["| set | images | accuracy | balanced acc. | without_mask recall | ROC-AUC |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, s in metrics["evaluation"].items():
        lines.append(f"| {key} | {s['n']} | {s['accuracy']:.4f} | {s['balanced_accuracy']:.4f} | "
                     f"{s['per_class']['without_mask']['recall']:.4f} | {s['roc_auc']:.4f} |")
    return "\n".join(lines)


def render(meta: ModelMeta, metrics: dict) -> str:
    r = meta.recipe
    data = "\n".join(f"- {k}: {v['n']} images ({v.get('with_mask', 0)} with_mask, {v.get('without_mask', 0)} "
                     f"without_mask, {v['skipped']} unreadable skipped)" for k, v in metrics["data"].items())
    phases = f"{r['epochs']} head epochs"
    if r["unfreeze"]:
        phases += f", then {r['finetune_epochs']} epochs fine-tuning the last {r['unfreeze']} feature blocks"
    return f"""# Model card: MaskWatch with_mask / without_mask classifier

## Model
- MobileNetV2 feature layers (init: {r['init_weights_source']}), global average pooling, head
  FC {' -> FC '.join(str(h) for h in meta.head)} -> 2 with ReLU and dropout {r['dropout']}; batch norms folded.
- Input: {meta.input_size}x{meta.input_size} RGB, normalised with mean {meta.mean}, std {meta.std}
  (`maskwatch.vision.preprocess.to_batch`). Output: logits of {meta.classes}.
- ONNX graph sha256 `{metrics['artifact_sha256']}`; ONNX Runtime vs torch max probability
  difference {metrics['parity']['max_abs_prob_diff']:.2e} on {metrics['parity']['images']} images.

## Training
{data}
- Data fingerprint `{meta.data_fingerprint}`.
- Recipe: {phases}; input {meta.input_size} px; augmentation {'on' if r['augment'] else 'off'}
  (the clean image and {r['views']} augmented view(s) of it, cached); batch {r['batch_size']};
  learning rate {r['lr']}; seed {r['seed']}.
- Selected: phase {r['selected']['phase']} epoch {r['selected']['epoch']} by validation balanced accuracy
  averaged over clean and degraded ({', '.join(f'{p} px' for p in r['degrade'])}) images: {r['selected']['score']:.4f}.
- Training time: {metrics['train_seconds'] / 60:.1f} min ({metrics['total_seconds'] / 60:.1f} min with the evaluation
  below). Versions: {', '.join(f'{k} {v}' for k, v in meta.versions.items())}.

## Metrics
Measured on the exported artifact with ONNX Runtime through the serving preprocessing;
`name@N px` means every image shrunk to N px wide and scaled back (`maskwatch evaluate --degrade N`).
Sets other than train and val were never trained on nor used to select the model.

{_rows(metrics)}

## Limits
{LIMITS}

## Licence
{LICENCE}
"""
