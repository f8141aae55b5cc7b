"""Cloudy-attention ablation (the paper's Table VI) on our data: train the
same recipe with and without the cloudy attention from scratch for the same
number of steps, then score both the way `reports.compare` scores any
checkpoint (full validation images of the held-out scene blocks, the demo, a
clear image in, blockiness) and compare them image by image.

    python -m idfcr_train.reports.ablation --data ../../shared/data/rice2_3s \
        --steps 1200 --crop 64 --batch 8 --workdir runs/ablation --stride 6 \
        --out models/pixel_cr_rgb.ablation.json

The two runs go in parallel, one thread each, so they see the same machine
load and the same seed. Checkpoints land in --workdir (not shipped); a rerun
resumes them, so an interrupted ablation continues where it stopped. The
verdict rests on the paired per-image difference: its mean, how many images
each arm wins, and a bootstrap 95 % interval of the mean (resampling images).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

import numpy as np

from idfcr_train import ONNX_DIR

# The shipped RGB recipe (pixel_cr_rgb 0.5) minus what only makes sense when
# resuming it; the no-attention arm trains the same, without the maps (their
# loss term has nothing to act on and drops out).
DEFAULT_RECIPE = ("--config cpu --shifted-windows --align-labels --identity 0.1 --ema 0.995 "
                  "--opacity-target 4 --stretch 0.3")
ARMS = {"with cloudy attention": [], "without cloudy attention": ["--no-attention"]}


def paired(a: list[float], b: list[float], seed: int = 0, draws: int = 10000) -> dict:
    """Per-image a - b: mean, wins each way, and a bootstrap 95 % interval of
    the mean (images resampled with replacement)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(draws, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"images": len(d), "mean_db": float(d.mean()), "a_wins": int((d > 0).sum()), "b_wins": int((d < 0).sum()),
            "ci95_db": [float(lo), float(hi)]}


def verdict(p: dict) -> str:
    lo, hi = p["ci95_db"]
    if lo > 0:
        return "the cloudy attention helps"
    if hi < 0:
        return "the cloudy attention hurts"
    return "undecided at this budget"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--lr-end", type=float, default=4e-5, help="cosine decay to this over --steps")
    ap.add_argument("--recipe", default=DEFAULT_RECIPE, help="the other trainer flags, the same for both arms")
    ap.add_argument("--workdir", required=True, help="checkpoints and logs (resumed when present)")
    ap.add_argument("--stride", type=int, default=6, help="score every n-th validation image")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    ckpts, procs = {}, []
    for name, extra in ARMS.items():
        ckpt = os.path.abspath(os.path.join(args.workdir, name.replace(" ", "_") + ".pt"))
        ckpts[name] = ckpt
        cmd = [sys.executable, "-m", "idfcr_train.training.train_pixel_cr", "--data", args.data, "--ckpt", ckpt,
               *shlex.split(args.recipe), "--crop", str(args.crop), "--batch", str(args.batch),
               "--lr", str(args.lr), "--lr-end", str(args.lr_end), "--max-steps", str(args.steps),
               "--hours", "100", "--eval-every", "200", "--threads", "1", "--seed", "7", "--resume", *extra]
        log = open(ckpt + ".stdout", "a")
        procs.append((name, subprocess.Popen(cmd, cwd=ONNX_DIR, stdout=log, stderr=subprocess.STDOUT)))
    for name, proc in procs:
        if proc.wait() != 0:
            sys.exit(f"ablation: training '{name}' failed (see {ckpts[name]}.stdout)")
    cmp_dir = os.path.join(args.workdir, "compare")
    labels = {name: name.split()[0] for name in ARMS}  # "with" / "without"
    cmd = [sys.executable, "-m", "idfcr_train.reports.compare", "--data", args.data, "--stride", str(args.stride),
           "--out", cmp_dir, "--threads", "2", *[f"{labels[n]}={ckpts[n]}" for n in ARMS]]
    if subprocess.call(cmd, cwd=ONNX_DIR) != 0:
        sys.exit("ablation: scoring failed")
    with open(os.path.join(cmp_dir, "compare.json")) as f:
        table = json.load(f)
    with_, without = (table[labels[n]] for n in ARMS)
    assert [r["id"] for r in with_["per_image"]] == [r["id"] for r in without["per_image"]]
    diff = paired([r["psnr"] for r in with_["per_image"]], [r["psnr"] for r in without["per_image"]])
    keep = ("val_images", "val_psnr", "val_ssim", "val_base_psnr", "val_worst_vs_base", "val_blockiness",
            "block3_psnr", "block9_psnr", "demo_psnr", "demo_base_psnr", "demo_blockiness", "clear_in_psnr",
            "stretch_psnr", "stretch_base_psnr", "stretch_clear_in_psnr", "palette_psnr", "palette_base_psnr",
            "step", "hours")
    report = {"steps": args.steps, "crop": args.crop, "batch": args.batch, "lr": [args.lr, args.lr_end],
              "recipe": args.recipe, "stride": args.stride, "seed": 7, "threads_per_arm": 1,
              "results": {n: {k: t.get(k) for k in keep} for n, t in zip(ARMS, (with_, without))},
              "with_minus_without": diff, "verdict": verdict(diff),
              "command": "python -m idfcr_train.reports.ablation " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    for name, r in report["results"].items():
        print(f"{name:>26}: PSNR {r['val_psnr']:.2f}  SSIM {r['val_ssim']:.4f}  demo {r['demo_psnr']:.2f}"
              f"  clear in {r['clear_in_psnr']:.1f}  (do nothing: {r['val_base_psnr']:.2f})")
    print(f"with - without: {diff['mean_db']:+.2f} dB, 95 % {diff['ci95_db'][0]:+.2f}..{diff['ci95_db'][1]:+.2f}, "
          f"wins {diff['a_wins']}/{diff['images']}: {verdict(diff)}")


if __name__ == "__main__":
    main()
