"""Cloudy-attention ablation (the paper's Table VI) on our data, at a small
budget: train the same configuration with and without the cloudy attention
for the same number of steps, then score both on the validation blocks.

    python -m idfcr_train.reports.ablation --data ../../shared/data/rice2_3s --steps 400 \
        --out models/pixel_cr_rgb.ablation.json

The two runs go in parallel, one thread each, so they see the same machine
load. Checkpoints land in a temp folder (they are not shipped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from idfcr_train import ONNX_DIR


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--config", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="score on the first N validation images only")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    here = ONNX_DIR
    tmp = tempfile.mkdtemp(prefix="ablation-")
    runs = {"with cloudy attention": [], "without cloudy attention": ["--no-attention"]}
    procs = {}
    for name, extra in runs.items():
        ckpt = os.path.join(tmp, name.replace(" ", "_") + ".pt")
        cmd = [sys.executable, "-m", "idfcr_train.training.train_pixel_cr", "--data", args.data, "--ckpt", ckpt,
               "--config", args.config, "--shifted-windows", "--crop", str(args.crop), "--batch", str(args.batch),
               "--max-steps", str(args.steps), "--hours", "10", "--eval-every", "1000000", "--threads", "1",
               "--seed", "7", *extra]
        procs[name] = (subprocess.Popen(cmd, cwd=here, stdout=subprocess.DEVNULL), ckpt)
    results = {}
    for name, (proc, ckpt) in procs.items():
        assert proc.wait() == 0, f"{name}: training failed"
    evals = {}
    for name, (_, ckpt) in procs.items():
        out = ckpt + ".scores.json"
        cmd = [sys.executable, "-m", "idfcr_train.reports.evaluate", "--ckpt", ckpt, "--data", args.data, "--out", out,
               "--threads", "1", "--limit", str(args.limit)]
        evals[name] = (subprocess.Popen(cmd, cwd=here, stdout=subprocess.DEVNULL), out)
    for name, (proc, out) in evals.items():
        assert proc.wait() == 0, f"{name}: evaluation failed"
        with open(out) as f:
            results[name] = json.load(f)["summary"]
    report = {"steps": args.steps, "crop": args.crop, "batch": args.batch, "config": args.config,
              "shifted_windows": True, "global_residual": True, "val_images": args.limit or "all",
              "results": results}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    for name, r in results.items():
        print(f"{name:>26}: PSNR {r['psnr']:.2f}  SSIM {r['ssim']:.4f}  RMSE {r['rmse']:.4f}"
              f"  (do nothing: {r['baseline_psnr']:.2f} / {r['baseline_ssim']:.4f})")


if __name__ == "__main__":
    main()
