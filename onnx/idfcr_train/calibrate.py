"""Choose the cloud-probability calibration (see probability.py) of a
Pixel-CR checkpoint on validation images from scenes no training saw, and
measure it.

    python -m idfcr_train.calibrate --ckpt checkpoints/pixel_cr_rgb.pt \
        --data ../../shared/data/rice2_3s --out models/pixel_cr_rgb.calibration.json --write-ckpt

For every candidate (t0, t1, dilate, blur) on a grid, on the validation
blocks (full images): PSNR of the blend against the clear reference, and
the clear reference given as input (it must come back unchanged: >= 40 dB).
The chosen one maximises mean validation PSNR among those whose clear-input
PSNR is >= 40 dB on every clear reference and on the Landsat 8 demo's clear
image. Reported next to the raw model and doing nothing, plus the
detector's precision and recall (p > 0.5 against cloud opacity > 0.1) on
data with known cloud: the demo's synthetic clouds and synthetic clouds
over the validation clear images.
`--write-ckpt` stores the chosen calibration in the checkpoint, where
`export.py` picks it up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch

from .clear_fidelity import load_demo
from .data import load_rice, split_by_block
from .metrics import psnr
from .pixel_cr import load_checkpoint
from .probability import Calibration, blend, cloud_probability
from .synth_clouds import add_clouds

GRID = {
    "t0": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    "width": [0.1, 0.3],
    "dilate_px": [0, 4, 8, 16],
    "blur_px": [4, 8, 16],
}


@torch.no_grad()
def run(model, img: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    out, att = model(torch.from_numpy(np.ascontiguousarray(img))[None])
    return out.clamp(0, 1), att


def precision_recall(p: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    pred = p > 0.5
    tp = float((pred & truth).sum())
    return tp / max(float(pred.sum()), 1.0), tp / max(float(truth.sum()), 1.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--stride", type=int, default=1, help="every n-th validation image")
    ap.add_argument("--out", required=True)
    ap.add_argument("--write-ckpt", action="store_true", help="store the chosen calibration in the checkpoint")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    model, state = load_checkpoint(args.ckpt)
    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    val = val[:: args.stride]
    cloudy_demo, clear_demo, _ = load_demo()
    from osgeo import gdal
    import os
    from .clear_fidelity import DEMO
    alpha_demo = gdal.Open(os.path.join(DEMO, "landsat8_cloud_alpha.tif")).ReadAsArray().astype(np.float32)
    if alpha_demo.max() > 1.5:
        alpha_demo = alpha_demo / 255.0

    rng = np.random.default_rng(7)
    # Model outputs once per image: cloudy in, clear reference in, and a
    # synthetic-cloud version of the reference (exact opacity).
    cases = []
    for p in val:
        cloudy, clear = p.cloudy, p.clear
        syn, alpha = add_clouds(clear, rng)
        cases.append({
            "id": p.id, "block": p.block, "cloudy": cloudy, "clear": clear,
            "out": run(model, cloudy), "ident": run(model, clear), "syn": syn, "alpha": alpha,
            "syn_out": run(model, syn),
        })
    demo = {"cloudy": cloudy_demo, "clear": clear_demo, "out": run(model, cloudy_demo),
            "ident": run(model, clear_demo), "alpha": alpha_demo}
    print(f"model outputs for {len(cases)} validation images: {time.time() - t_start:.0f} s", flush=True)

    def scores(cal: Calibration | None) -> dict:
        def out(img, res):
            pred, att = res
            if cal is None:
                return pred[0].numpy()
            pb = cloud_probability(att, cal)
            return blend(torch.from_numpy(img)[None], pred, pb)[0].numpy()

        val_psnr = [psnr(out(c["cloudy"], c["out"]), c["clear"]) for c in cases]
        ident = [psnr(out(c["clear"], c["ident"]), c["clear"]) for c in cases]
        return {
            "val_psnr": float(np.mean(val_psnr)),
            "val_psnr_per_block": {b: float(np.mean([v for v, c in zip(val_psnr, cases) if c["block"] == b]))
                                   for b in sorted({c["block"] for c in cases})},
            "val_worst_vs_nothing": float(min(v - psnr(c["cloudy"], c["clear"]) for v, c in zip(val_psnr, cases))),
            "clear_in_psnr_min": float(min(ident)),
            "clear_in_psnr_mean": float(np.mean([min(v, 99.0) for v in ident])),
            "demo_psnr": psnr(out(demo["cloudy"], demo["out"]), demo["clear"]),
            "demo_clear_in_psnr": psnr(out(demo["clear"], demo["ident"]), demo["clear"]),
        }

    nothing = {
        "val_psnr": float(np.mean([psnr(c["cloudy"], c["clear"]) for c in cases])),
        "demo_psnr": psnr(demo["cloudy"], demo["clear"]),
    }
    raw = scores(None)
    rows = []
    for t0, width, d, s in itertools.product(GRID["t0"], GRID["width"], GRID["dilate_px"], GRID["blur_px"]):
        cal = Calibration(t0=t0, t1=t0 + width, dilate_px=d, blur_px=s)
        rows.append({"calibration": cal.to_dict(), **scores(cal)})
    ok = [r for r in rows if r["clear_in_psnr_min"] >= 40.0 and r["demo_clear_in_psnr"] >= 40.0]
    pool = ok or rows
    best = max(pool, key=lambda r: r["val_psnr"])
    cal = Calibration.from_dict(best["calibration"])

    # Detector quality of the chosen p.
    pr_demo = precision_recall(cloud_probability(demo["out"][1], cal)[0, 0].numpy(), demo["alpha"] > 0.1)
    ps, ts = [], []
    for c in cases:
        ps.append(cloud_probability(c["syn_out"][1], cal)[0, 0].numpy().ravel())
        ts.append((c["alpha"] > 0.1).ravel())
    pr_syn = precision_recall(np.concatenate(ps), np.concatenate(ts))
    syn_gain = {
        "nothing": float(np.mean([psnr(c["syn"], c["clear"]) for c in cases])),
        "raw": float(np.mean([psnr(c["syn_out"][0][0].numpy(), c["clear"]) for c in cases])),
        "blend": float(np.mean([psnr(blend(torch.from_numpy(c["syn"])[None], c["syn_out"][0],
                                             cloud_probability(c["syn_out"][1], cal))[0].numpy(), c["clear"])
                                for c in cases])),
    }
    res = {
        "checkpoint_step": state["step"],
        "val_images": len(cases),
        "val_blocks": args.val_blocks,
        "chosen": best,
        "candidates_meeting_40db": len(ok),
        "raw_model": raw,
        "do_nothing": nothing,
        "synthetic_clouds_on_val_clear": syn_gain,
        "precision_recall": {
            "demo (synthetic clouds on Landsat 8, opacity > 0.1)": {"precision": pr_demo[0], "recall": pr_demo[1]},
            "val clear images + synthetic clouds (opacity > 0.1)": {"precision": pr_syn[0], "recall": pr_syn[1]},
        },
        "grid": GRID,
        "seconds": round(time.time() - t_start, 1),
        "command": "python -m idfcr_train.calibrate " + " ".join(argv or __import__("sys").argv[1:]),
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in res.items() if k != "grid"}, indent=1))
    if args.write_ckpt:
        from .train_pixel_cr import save_atomic

        state["probability"] = cal.to_dict()
        save_atomic(state, args.ckpt)
        print(f"calibration stored in {args.ckpt}")


if __name__ == "__main__":
    main()
