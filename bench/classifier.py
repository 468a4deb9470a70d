"""Classifier runtimes side by side: crops/s and accuracy at each input size, and allocator effects.

For every input size (the shipped model's own, and the same weights re-exported at other sizes:
MobileNetV2 is convolutional with a global pool, so one set of weights runs at any size, with a
different accuracy), four runtimes are timed at batch 1 / 8 / 32 / 64 in alternating rounds:

- ``torch``: eager PyTorch, fp32, NCHW (batch norms folded, as the artifact holds them);
- ``torch_cl``: the same module in channels_last memory format (what ``maskwatch`` runs on torch);
- ``onnx``: ONNX Runtime fp32 with full graph optimisations (the CPU worker's runtime);
- ``onnx_int8``: ONNX Runtime on a statically quantised graph (QDQ, per-channel int8 weights,
  uint8 activations calibrated on real crops of facemask12k/train).

Each is also scored on the 12K test split and on chandrikadeb7 (the first ``--limit`` images of
each class by file name); the torch runtimes, which hold the fp32 graph's very weights, are checked
against it on 64 crops and share its scores when they agree. Then eager torch and ONNX Runtime run in
child processes under glibc's default allocator, under tuned ``MALLOC_*`` thresholds and under
jemalloc, to show page-fault costs.

    python -m bench.classifier                     # 5-10 minutes on 2 busy cores
    python -m bench.classifier --sizes 128 --batches 1,32 --limit 50 --no-alloc
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.common import (
    DATA,
    ROOT,
    BenchError,
    emit,
    interleaved,
    machine,
    model_path,
    need,
    rate,
    ratio,
    show,
)
from maskwatch.artifact import ModelArtifact
from maskwatch.runtimes import softmax
from maskwatch.vision.preprocess import to_batch

RUNTIMES = ("torch", "torch_cl", "onnx", "onnx_int8")
EVAL_SETS = {"12k_test": DATA / "facemask12k" / "test", "chandrikadeb7": DATA / "chandrikadeb7"}
CALIB_DATA = DATA / "facemask12k" / "train"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
# glibc hands blocks above the mmap threshold straight to mmap and back on free, so every big
# activation of every forward pass page-faults anew; raising the thresholds (and not trimming) keeps
# the memory in the heap. Values: the largest threshold glibc accepts (32 MiB), and mmap off for the rest.
ALLOCATORS: dict[str, dict[str, str]] = {
    "glibc default": {},
    "glibc MALLOC_MMAP_THRESHOLD_+TRIM": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                                          "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
    "glibc MALLOC_MMAP_MAX_=0+TRIM": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
    "jemalloc (LD_PRELOAD)": {"LD_PRELOAD": JEMALLOC},
}

Predict = Callable[[np.ndarray], np.ndarray]


def torch_module(artifact: ModelArtifact):
    """The artifact's folded network as an eval-mode fp32 torch module (NCHW)."""
    from maskwatch.runtimes.torch import build_folded, state_from_onnx

    module = build_folded(artifact.meta)
    module.load_state_dict(state_from_onnx(artifact, module))
    return module.eval()


def onnx_at(artifact: ModelArtifact, module, size: int) -> bytes:
    """The artifact's graph at its own size; the same weights exported anew at any other size."""
    if size == artifact.meta.input_size:
        return artifact.onnx
    from trainer.model import to_onnx

    return to_onnx(module, size, "logits")


def quantize_int8(onnx_fp32: bytes, calib: np.ndarray, workdir: Path) -> bytes:
    """Static int8 quantisation: QDQ, per-channel weights (7-bit: no VNNI needed), MinMax-calibrated activations."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calib[i:i + 16]} for i in range(0, len(calib), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    src, pre, out = workdir / "fp32.onnx", workdir / "pre.onnx", workdir / "int8.onnx"
    src.write_bytes(onnx_fp32)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out.read_bytes()


def ort_predict(onnx_bytes: bytes, threads: int) -> Predict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: softmax(session.run(None, {name: x})[0])


def torch_predict(module, channels_last: bool) -> Predict:
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = module.to(memory_format=fmt)

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return softmax(net(torch.from_numpy(x).contiguous(memory_format=fmt)).numpy())

    return predict


def runtimes_at(artifact: ModelArtifact, size: int, which: list[str], threads: int, calib: np.ndarray,
                workdir: Path) -> dict[str, Predict]:
    """One predict function per runtime named in ``which``, at input ``size``.

    Torch is imported only when a torch runtime is asked for or the graph must be re-exported, so
    an ONNX Runtime child of the allocator comparison measures a process without torch in it.
    """
    needs_torch = size != artifact.meta.input_size or any(name.startswith("torch") for name in which)
    module = None
    if needs_torch:
        import torch

        torch.set_num_threads(threads)
        module = torch_module(artifact)
    fp32 = onnx_at(artifact, module, size)
    made: dict[str, Predict] = {}
    for name in which:
        if name in ("torch", "torch_cl"):
            made[name] = torch_predict(copy.deepcopy(module), channels_last=name == "torch_cl")
        elif name == "onnx":
            made[name] = ort_predict(fp32, threads)
        elif name == "onnx_int8":
            made[name] = ort_predict(quantize_int8(fp32, calib, workdir), threads)
        else:
            raise BenchError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    return made


def load_crops(folder: Path, per_class: int | None) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``per_class`` crops of each class (by file name), decoded, with labels in CLASSES order."""
    from trainer.datasets import decode, load_split

    split = load_split(need(folder), folder.name, strict=False, limit=per_class)  # keeps readable images only
    return [img for img in map(decode, split.blobs) if img is not None], split.labels


def accuracy(predict: Predict, batch: np.ndarray, labels: np.ndarray, without: int) -> dict[str, float]:
    """Accuracy and without_mask recall of ``predict`` over ``batch`` (in chunks of 64)."""
    from trainer.metrics import summary

    p = np.concatenate([predict(batch[i:i + 64])[:, without] for i in range(0, len(batch), 64)])
    s = summary(labels, p)
    return {"accuracy": round(s["accuracy"], 4), "without_recall": round(s["per_class"]["without_mask"]["recall"], 4)}


def accuracy_rows(made: dict[str, Predict], size: int, batches: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                  without: int, check: int = 64, tolerance: float = 1e-3) -> list[dict[str, Any]]:
    """Accuracy of every runtime at ``size`` on every set.

    The torch runtimes hold the very weights of the fp32 ONNX graph, so they are checked against it on
    ``check`` crops and, when no probability differs by more than ``tolerance``, share its figures
    (scoring eager torch on every crop would double the benchmark's time and tell nothing new).
    """
    rows: dict[str, dict[str, Any]] = {}
    for rt in sorted(made, key=lambda name: name.startswith("torch")):  # ONNX first: the torch rows may reuse it
        row: dict[str, Any] = {"runtime": rt, "size": size, "scored": "all"}
        probe = next(iter(batches.values()))[:check]
        gap = None
        if rt.startswith("torch") and "onnx" in made:
            gap = float(np.abs(made[rt](probe) - made["onnx"](probe)).max())
        if gap is not None and gap <= tolerance:
            row.update({name: rows["onnx"][name] for name in batches},
                       scored=f"= onnx (max |dp| {gap:.1e} on {len(probe)} crops)")
        else:
            row.update({name: accuracy(made[rt], batches[name], labels[name], without) for name in batches})
        rows[rt] = row
    return [rows[rt] for rt in made]


def alloc_child(artifact_path: Path, runtime: str, size: int, batch: int, threads: int,
                min_s: float) -> dict[str, float]:
    """Crops/s of one runtime in this process, with the page faults and kernel share of its CPU time."""
    artifact = ModelArtifact.load(artifact_path)
    with tempfile.TemporaryDirectory() as tmp:
        no_calibration = np.zeros((0, 3, size, size), np.float32)
        predict = runtimes_at(artifact, size, [runtime], threads, no_calibration, Path(tmp))[runtime]
    x = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)
    predict(x)
    before = resource.getrusage(resource.RUSAGE_SELF)
    crops_per_s = rate(lambda: predict(x), batch, min_s=min_s, min_reps=2)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"crops_per_s": round(crops_per_s, 1), "minor_faults": after.ru_minflt - before.ru_minflt,
            "kernel_cpu_share": round(system / max(1e-9, user + system), 3)}


def allocators(artifact_path: Path, runtimes: list[str], size: int, batch: int, threads: int, min_s: float,
               rounds: int) -> list[dict]:
    """Each runtime under each allocator, in child processes, alternating rounds.

    Median crops/s, and its ratio to glibc's default allocator.
    """
    variants = {k: v for k, v in ALLOCATORS.items() if "LD_PRELOAD" not in v or Path(JEMALLOC).exists()}
    seen: dict[tuple[str, str], list[dict]] = {}
    for r in range(rounds):
        order = list(variants.items()) if r % 2 == 0 else list(reversed(variants.items()))
        for runtime in runtimes:
            for label, env in order:
                cmd = [sys.executable, "-m", "bench.classifier", "--model", str(artifact_path), "--alloc-child",
                       f"{runtime}:{size}:{batch}", "--threads", str(threads), "--min-time", str(min_s)]
                proc = subprocess.run(cmd, check=False, cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                                      text=True, timeout=600)
                if proc.returncode != 0:
                    raise BenchError(f"allocator child {label} failed: {proc.stderr[-2000:]}")
                seen.setdefault((runtime, label), []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    rows = []
    for runtime in runtimes:
        base = float(np.median([m["crops_per_s"] for m in seen[(runtime, "glibc default")]]))
        for label in variants:
            ms = seen[(runtime, label)]
            cps = float(np.median([m["crops_per_s"] for m in ms]))
            faults = float(np.median([m["minor_faults"] for m in ms]))
            rows.append({"runtime": runtime, "allocator": label, "size": size, "batch": batch,
                         "crops_per_s": round(cps, 1), "ratio_vs_glibc_default": ratio(cps, base),
                         "minor_faults_per_crop": round(faults / max(1, batch), 1),
                         "kernel_cpu_share": float(np.median([m["kernel_cpu_share"] for m in ms]))})
    return rows


def parse_ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.classifier", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL, else the shipped model)")
    p.add_argument("--sizes", type=parse_ints, default=[224, 160, 128], help="input sizes (default 224,160,128)")
    p.add_argument("--batches", type=parse_ints, default=[1, 8, 32, 64], help="batch sizes (default 1,8,32,64)")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated subset of {','.join(RUNTIMES)}")
    p.add_argument("--limit", type=int, default=100, help="images per class of each accuracy set (default 100; 0: all)")
    p.add_argument("--calib", type=int, default=128, help="facemask12k/train crops calibrating int8 (default 128)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="intra-op threads of every runtime (default: all cores)")
    p.add_argument("--min-time", type=float, default=0.4, help="seconds per timing round (default 0.4)")
    p.add_argument("--rounds", type=int, default=2, help="alternating timing rounds; the median is kept (default 2)")
    p.add_argument("--alloc-batch", type=int, default=64, help="batch of the allocator comparison (default 64)")
    p.add_argument("--alloc-size", type=int, help="input size of the allocator comparison (default: the model's)")
    p.add_argument("--alloc-runtimes", default="torch,onnx",
                   help="runtimes of the allocator comparison (default torch,onnx)")
    p.add_argument("--alloc-rounds", type=int, default=1,
                   help="alternating rounds of the allocator comparison (default 1)")
    p.add_argument("--no-alloc", action="store_true", help="skip the allocator comparison")
    p.add_argument("--alloc-child", help=argparse.SUPPRESS)  # RUNTIME:SIZE:BATCH, run by the allocator comparison
    args = p.parse_args(argv)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    args.alloc_runtimes = [r.strip() for r in args.alloc_runtimes.split(",") if r.strip()]
    unknown = [r for r in args.runtimes + args.alloc_runtimes if r not in RUNTIMES]
    if unknown:
        p.error(f"unknown runtime(s) {unknown}; choose from {', '.join(RUNTIMES)}")
    if "onnx_int8" in args.alloc_runtimes:
        p.error("--alloc-runtimes takes torch, torch_cl or onnx (int8 needs calibration data)")
    if "torch" not in args.runtimes:
        p.error("the runtimes must include torch: it is the baseline of every ratio")
    if any(v < 1 for v in args.sizes + args.batches):
        p.error("sizes and batches must be positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    path = model_path(args.model)
    if args.alloc_child:
        runtime, size, batch = args.alloc_child.split(":")
        child: dict[str, Any] = alloc_child(path, runtime, int(size), int(batch), args.threads, args.min_time)
        emit(child)
        return child
    artifact = ModelArtifact.load(path)
    meta = artifact.meta
    without = meta.index("without_mask")
    limit = args.limit or None
    eval_sets = {name: load_crops(folder, limit) for name, folder in EVAL_SETS.items()}
    calib_crops, _ = load_crops(CALIB_DATA, max(1, args.calib // 2))
    speed: list[dict] = []
    quality: list[dict] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mwbench-cls-") as tmp:
        for size in args.sizes:
            made = runtimes_at(artifact, size, args.runtimes, args.threads,
                               to_batch(calib_crops, size, meta.mean, meta.std), Path(tmp))
            batches = {name: to_batch(crops, size, meta.mean, meta.std) for name, (crops, _) in eval_sets.items()}
            quality += accuracy_rows(made, size, batches, {n: labels for n, (_, labels) in eval_sets.items()}, without)
            pool = batches["12k_test"]
            for batch in tqdm(args.batches, desc=f"speed @{size}", leave=False):
                x = np.ascontiguousarray(np.resize(pool, (batch, 3, size, size)))
                cases = {rt: (partial(f, x), batch) for rt, f in made.items()}
                rates = interleaved(cases, args.rounds, args.min_time)
                for rt, cps in rates.items():
                    speed.append({"runtime": rt, "size": size, "batch": batch, "crops_per_s": round(cps, 1),
                                  "ratio_vs_torch": ratio(cps, rates["torch"]),
                                  "ratio_vs_onnx": ratio(cps, rates.get("onnx"))})
    alloc = [] if args.no_alloc else allocators(path, args.alloc_runtimes, args.alloc_size or meta.input_size,
                                                args.alloc_batch, args.threads,
                                                max(1.0, args.min_time * 3), args.alloc_rounds)
    report(args, meta.input_size, speed, quality, alloc, {n: len(labels) for n, (_, labels) in eval_sets.items()})
    figures: dict[str, Any] = {
        "bench": "classifier", "machine": machine(), "model": str(path), "model_input_size": meta.input_size,
        "threads": args.threads, "limit_per_class": limit, "speed": speed, "accuracy": quality, "allocators": alloc,
        "seconds": round(time.perf_counter() - t_start, 1)}
    emit(figures)
    return figures


def report(args: argparse.Namespace, native: int, speed: list[dict], quality: list[dict], alloc: list[dict],
           counts: dict[str, int]) -> None:
    show(f"crops/s by runtime, input size and batch ({args.threads} threads; "
         f"median of {args.rounds} alternating rounds; "
         "ratio: to eager torch at the same size and batch)",
         ["size", "batch", *[f"{rt} crops/s (x torch)" for rt in args.runtimes]],
         [[f"{s}{'*' if s == native else ''}", b,
           *[next(f"{r['crops_per_s']:.1f} ({r['ratio_vs_torch']:.2f}x)" for r in speed
                  if r["runtime"] == rt and r["size"] == s and r["batch"] == b) for rt in args.runtimes]]
          for s in args.sizes for b in args.batches])
    limit = f"first {args.limit} per class by file name" if args.limit else "all images"
    show(f"accuracy / without_mask recall ({limit}: 12k_test n={counts['12k_test']}, "
         f"chandrikadeb7 n={counts['chandrikadeb7']}); "
         f"* = the model's own input size, others re-exported from the same weights",
         ["size", "runtime", "12k_test acc", "12k_test w/o recall", "chandrikadeb7 acc", "chandrikadeb7 w/o recall",
          "scored"],
         [[f"{q['size']}{'*' if q['size'] == native else ''}", q["runtime"], q["12k_test"]["accuracy"],
           q["12k_test"]["without_recall"], q["chandrikadeb7"]["accuracy"], q["chandrikadeb7"]["without_recall"],
           q["scored"]]
          for q in quality])
    if alloc:
        show(f"allocators, child processes, size {alloc[0]['size']} batch {alloc[0]['batch']} "
             "(ratio: to glibc default)",
             ["runtime", "allocator", "crops/s", "ratio", "minor faults/crop", "kernel share of CPU"],
             [[a["runtime"], a["allocator"], a["crops_per_s"], a["ratio_vs_glibc_default"], a["minor_faults_per_crop"],
               a["kernel_cpu_share"]] for a in alloc])


if __name__ == "__main__":
    main()
