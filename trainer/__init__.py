"""The trainer: datasets, augmentation, feature cache, model, training loop, evaluation, export.

`maskwatch train` and `maskwatch evaluate` call :func:`trainer.train.main` and
:func:`trainer.evaluate.main`. Training needs the ``torch`` extra; evaluation runs on ONNX Runtime
through the same preprocessing as serving (``maskwatch.vision.preprocess``), so it needs no torch.
"""
