#!/usr/bin/env python3
"""Low-precision variants of a shipped Pixel-CR graph, measured against FP32
(issue 15, item 2; run by hand, not in CI).

    python scripts/low_precision.py --model onnx/models/pixel_cr_rgb.onnx --out /tmp/lp
    python3 scripts/bench.py --sizes 1024 --model /tmp/lp/pixel_cr_rgb.int8_dynamic.onnx   # speed, memory

Writes each variant next to a JSON table (OUT/<model>.low_precision.json):
- `int8_dynamic`: weights of MatMul and Gemm in INT8 per channel,
  activations quantised on the fly (`quantize_dynamic`);
- `int8_dynamic_conv`: the same plus Conv (ConvInteger);
- `int8_static`: QDQ graph, weights and activations of Conv and MatMul in
  INT8 with ranges calibrated on training images (`quantize_static`,
  scene blocks outside validation);
- `int8_static_conv`: the same for Conv only (most of the FLOPs are the
  3 x 3 convolutions; attention stays FP32).
BF16 is not listed: ONNX Runtime's CPU execution provider has no BF16
kernels for these operators on x86 (its BF16 fast-math switch is for ARM64
only), so a BF16 graph would run as casts around FP32 kernels.

Per variant, on full validation images (RICE2 blocks 3 and 9, every
`--stride`-th; scene blocks no training saw): PSNR and SSIM of the raw model
output against the clear reference, the PSNR of the output against the FP32
output, the largest change of the probability output, and the ONNX Runtime
time per 512 px image at `--threads` (median of `--reps`, the variants
timed in turn so that other load on the machine weighs on all alike). The variants keep
the FP32 graph's idfcr.* metadata (plus `idfcr.precision`), so `idfcr
remove --model VARIANT` runs them, and `scripts/bench.py --model` measures
them in the tool.

Needs `onnxruntime.quantization`, which needs a newer `onnx` than Debian's:
a separate virtual environment, never .venv-ci, e.g.
    /usr/bin/python3 -m venv --system-site-packages /tmp/venv-q
    /tmp/venv-q/bin/pip install onnx==1.17.0 numpy==1.24.2 onnxruntime==1.31.1
    /tmp/venv-q/bin/pip install --no-deps ml_dtypes==0.4.1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "onnx"))
from idfcr_train.data.pairs import load_rice, split_by_block  # noqa: E402
from idfcr_train.reports.metrics import psnr, ssim  # noqa: E402


def metadata(path: str) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def set_metadata(path: str, props: dict[str, str]) -> None:
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, path)


class TrainingCrops(CalibrationDataReader):
    """Calibration inputs: 256 px crops of training images (model units)."""

    def __init__(self, images: list[np.ndarray], name: str):
        self.batches = iter([{name: img[None, :, :256, :256].astype(np.float32)} for img in images])

    def get_next(self):
        return next(self.batches, None)


def session(path: str, threads: int, arena: bool = True) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_mem_pattern = False  # as the tool (src/models/runtime.rs)
    so.enable_cpu_mem_arena = arena
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "onnx/models/pixel_cr_rgb.onnx"))
    ap.add_argument("--data", default=os.path.join(ROOT, "../shared/data/rice2_3s"))
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--stride", type=int, default=9, help="every n-th validation image")
    ap.add_argument("--calibration-images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", default="int8_dynamic,int8_dynamic_conv,int8_static,int8_static_conv")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    props = metadata(args.model)
    scale = float(props["idfcr.input_scale"])
    offset = float(props.get("idfcr.input_offset", "0"))
    in_name = onnx.load(args.model, load_external_data=False).graph.input[0].name

    train, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    val = val[:: args.stride]
    to_model = lambda raw: ((raw.astype(np.float32) + offset) * scale)  # noqa: E731
    calib = [to_model(p.clear_raw if i % 2 else p.cloudy_raw)
             for i, p in enumerate(train[:: max(1, len(train) // args.calibration_images)][: args.calibration_images])]

    stem = os.path.splitext(os.path.basename(args.model))[0]
    paths = {"fp32": args.model}
    for v in args.variants.split(","):
        path = os.path.join(args.out, f"{stem}.{v}.onnx")
        if v == "int8_dynamic":
            quantize_dynamic(args.model, path, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"])
        elif v == "int8_dynamic_conv":
            quantize_dynamic(args.model, path, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm", "Conv"])
        elif v in ("int8_static", "int8_static_conv"):
            ops = ["Conv", "MatMul"] if v == "int8_static" else ["Conv"]
            quantize_static(args.model, path, TrainingCrops(calib, in_name), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=ops,
                            # Min/max folded in every 5 images (16 is not a multiple: ORT fails on an empty last batch);
                            # otherwise the calibrator keeps every intermediate of every image (11 GB, killed here).
                            extra_options={"CalibMaxIntermediateOutputs": 5})
        else:
            raise SystemExit(f"unknown variant {v!r}")
        set_metadata(path, {**props, "idfcr.precision": v})
        paths[v] = path

    x512 = to_model(val[0].cloudy_raw)[None, :, :512, :512]
    sessions = {v: session(path, args.threads) for v, path in paths.items()}
    # Timed round-robin (one run of each variant in turn), so that whatever
    # else the machine does weighs on every variant alike.
    times: dict[str, list[float]] = {v: [] for v in paths}
    for s in sessions.values():
        s.run(None, {in_name: x512})  # warm-up
    for _ in range(args.reps):
        for v, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {in_name: x512})
            times[v].append(time.perf_counter() - t)
    del sessions  # quality one variant at a time: five sessions' arenas at once exhaust 24 GB
    rows, fp32_out = {}, {}
    for v, path in paths.items():
        s = session(path, args.threads, arena=False)  # full images: give memory back between them
        ps, ss, vs_fp32, p_diff = [], [], [], []
        for p in val:
            out, prob = s.run(None, {in_name: to_model(p.cloudy_raw)[None]})[:2]
            out = np.clip(out[0], 0, 1)
            ref = to_model(p.clear_raw)
            ps.append(psnr(out, ref))
            ss.append(ssim(out, ref))
            if v == "fp32":
                fp32_out[p.id] = (out, prob)
            else:
                vs_fp32.append(psnr(out, fp32_out[p.id][0]))
                p_diff.append(float(np.abs(prob - fp32_out[p.id][1]).max()))
        rows[v] = {"file_mb": round(os.path.getsize(paths[v]) / 1e6, 2),
                   "seconds_per_512px": round(statistics.median(times[v]), 3),
                   "val_psnr": round(float(np.mean(ps)), 3), "val_ssim": round(float(np.mean(ss)), 4),
                   "psnr_vs_fp32": round(float(np.mean(vs_fp32)), 2) if vs_fp32 else None,
                   "probability_max_abs_diff": round(max(p_diff), 4) if p_diff else None}
        print(v, json.dumps(rows[v]), flush=True)
        del s
    base = rows["fp32"]
    for r in rows.values():
        r["speedup"] = round(base["seconds_per_512px"] / r["seconds_per_512px"], 2)
        r["psnr_delta_db"] = round(r["val_psnr"] - base["val_psnr"], 3)
    table = {"model": os.path.relpath(args.model, ROOT), "val_images": len(val), "val_blocks": args.val_blocks,
             "threads": args.threads, "ort": ort.__version__, "rows": rows,
             "command": "python scripts/low_precision.py " + " ".join(argv or sys.argv[1:])}
    with open(os.path.join(args.out, f"{stem}.low_precision.json"), "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
