"""Screen half-scale context (models/scales.py) on an exported RGB graph
before exporting it: the graph run on each validation image and on the
image averaged down 2 x 2, mixed as the wrapper mixes them, for several
weights at once, scored as `blend_all` scores (the default blended output
and the raw one, 8-bit; each clear reference given as input).

    python -m idfcr_train.reports.half_scale --onnx models/pixel_cr_rgb.onnx \
        --data ../../shared/data/rice2_3s --weights 0.5,0.75,1 --out /tmp/half_scale.json

p is the graph's own (the full-resolution run's), as in a half-scale graph.
Rows carry `screen` (every `--screen-stride`-th image): choose the arm on
those, report it on the others. Stop 48 chose weight 0.5 at sigma 2 this way
(models/pixel_cr_rgb.half_scale.json).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.models import scales
from idfcr_train.reports.metrics import blockiness, psnr, ssim, to_byte


def arms(run, x: np.ndarray, weights: list[float], sigma: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """p and the clear output of each arm ('full': no half-scale run), mixed
    by models/scales.py's own functions."""
    full, p = run(x)
    half = run(F.avg_pool2d(torch.from_numpy(x)[None], 2)[0].numpy())[0]
    full_t = torch.from_numpy(full)[None]
    up = scales.half_scale_up(torch.from_numpy(half)[None], full_t)
    kx, ky = scales.band_kernels(sigma, full.shape[0])
    with torch.no_grad():
        outs = {f"w{w:g}": scales.mix(full_t, up, w, kx, ky)[0].numpy() for w in weights}
    return p, {"full": full, **outs}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="a graph without half-scale context")
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--weights", default="0.5,0.75,1")
    ap.add_argument("--sigma", type=float, default=2.0)
    ap.add_argument("--screen-stride", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    if session.get_modelmeta().custom_metadata_map.get("idfcr.half_scale"):
        raise SystemExit(f"{args.onnx}: the graph has half-scale context already")

    def run(x):
        clear, p = session.run(None, {"cloudy": x[None].astype(np.float32)})
        return clear[0], p[0]

    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    rows = []
    for i, pair in enumerate(val):
        x, y = pair.cloudy.astype(np.float32), pair.clear.astype(np.float32)
        r = {"id": pair.id, "block": pair.block, "screen": i % args.screen_stride == 0, "nothing": psnr(x, y)}
        p, outs = arms(run, x, weights, args.sigma)
        for k, o in outs.items():
            b = to_byte(p * o + (1 - p) * x)
            r.update({k + "_b": psnr(b, y), k: psnr(to_byte(o), y), k + "_ssim_b": ssim(b, y),
                      k + "_blk": blockiness(to_byte(o))})
        pc, outs_c = arms(run, y, weights, args.sigma)
        for k, o in outs_c.items():
            r[k + "_clear_in"] = psnr(to_byte(pc * o + (1 - pc) * y), y)
        rows.append(r)
        print(f"{pair.id}: " + " ".join(f"{k} {r[k + '_b']:.2f}" for k in outs), flush=True)
    summary = {}
    for name, sel in (("screen", [r for r in rows if r["screen"]]), ("others", [r for r in rows if not r["screen"]]),
                      ("all", rows)):
        summary[name] = {k: {"blend": float(np.mean([r[k + "_b"] for r in sel])),
                             "raw": float(np.mean([r[k] for r in sel])),
                             "clear_in_below_40": int(sum(r[k + "_clear_in"] < 40 for r in sel))}
                         for k in ["full"] + [f"w{w:g}" for w in weights]} if sel else {}
    with open(args.out, "w") as f:
        json.dump({"sigma": args.sigma, "weights": weights, "summary": summary, "rows": rows}, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
