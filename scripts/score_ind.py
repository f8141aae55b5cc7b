#!/usr/bin/env python3
"""Score the IND refinement stage on the validation blocks with the shipped
runtime (run by hand, not in CI): Pixel-CR alone vs Pixel-CR + `--refine`,
no-reference NIQE/BRISQUE (`idfcr quality`, the paper's metrics for this
stage) and PSNR/SSIM against the clear image (`idfcr eval`, so the fidelity
cost of generative refinement is visible).

    python3 scripts/score_ind.py                          # blocks 3,9, DDPM 50 steps
    python3 scripts/score_ind.py --sampler ddim --steps 10 --limit 8
    python3 scripts/score_ind.py --ind-model 0.2=onnx/models/ind_rgb --ind-model new=/tmp/x/ind_rgb --steps 20

Inputs are the RICE-layout pairs of `--data` whose scene block is in
`--blocks` (the blocks training held out). Outputs go to `--work` (outside
the repository; reruns skip what is there) and the report to `--out`.
The binary does the imaging; with numpy and GDAL's Python bindings (e.g.
`.venv-ci/bin/python`) each output also gets its sharpness (mean absolute
neighbour difference; the report's sharpness_ratio is the sum over images
against the clear references' sum, 1 = as detailed, so that nearly flat
references do not dominate) and its window blockiness
(`idfcr_train.reports.metrics.blockiness`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def detail_scorer():
    """(sharpness, blockiness) of an image, or None without numpy and GDAL's
    bindings."""
    try:
        import sys

        import numpy as np
        from osgeo import gdal

        sys.path.insert(0, os.path.join(ROOT, "onnx"))
        from idfcr_train.reports.metrics import blockiness
    except ImportError:
        return None

    def read(path: str):
        return gdal.Open(path).ReadAsArray().astype(np.float64)

    def sharpness(a) -> float:
        return float((np.abs(np.diff(a, axis=-1)).mean() + np.abs(np.diff(a, axis=-2)).mean()) / 2)

    def score(path: str) -> dict:
        a = read(path)
        return {"sharpness": sharpness(a), "blockiness": blockiness(a)}

    return score


def sh(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "rice2_3s"))
    ap.add_argument("--blocks", default="3,9")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"])
    ap.add_argument("--seed", type=int, default=231)
    ap.add_argument("--limit", type=int, default=0, help="score only every n-th pair so that about this many remain")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "idfcr"))
    ap.add_argument("--work", default="/tmp/idfcr_score_ind")
    ap.add_argument("--out", default=os.path.join(ROOT, "onnx", "models", "ind_rgb.scores.json"))
    ap.add_argument("--ind-model", action="append", default=[], metavar="NAME=PREFIX",
                    help="score these IND graphs side by side (repeatable; default: the bundled one)")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    blocks = set(args.blocks.split(","))
    with open(os.path.join(args.data, "pairs.csv")) as f:
        pairs = [r for r in csv.DictReader(f) if r["scene_block"] in blocks]
    if args.limit and len(pairs) > args.limit:
        pairs = pairs[:: -(-len(pairs) // args.limit)]
    tag = f"{args.sampler}{args.steps}_seed{args.seed}"
    refine = ["--refine", "--sampler", args.sampler, "--steps", str(args.steps), "--seed", str(args.seed)]
    runs = {"pixel_cr": []}
    if not args.ind_model:
        runs[f"refined_{tag}"] = refine
    for spec in args.ind_model:
        name, _, prefix = spec.partition("=")
        if not prefix:
            raise SystemExit(f"--ind-model {spec}: expected NAME=PREFIX")
        runs[f"refined_{name}_{tag}"] = [*refine, "--ind-model", prefix]
    common = ["--threads", str(args.threads), "-q", "--device", "cpu"]
    per_image: dict[str, list[dict]] = {name: [] for name in runs}
    seconds = {name: 0.0 for name in runs}
    for name in runs:
        os.makedirs(os.path.join(args.work, name), exist_ok=True)
    per_image["clear_reference"] = []
    detail = detail_scorer()
    for i, row in enumerate(pairs):
        cloudy, clear = os.path.join(args.data, row["cloudy"]), os.path.join(args.data, row["clear"])
        outs = {name: os.path.join(args.work, name, f"{row['id']}.tif") for name in runs}
        for name, extra in runs.items():
            if not os.path.exists(outs[name]):
                t0 = time.time()
                sh([args.binary, "remove", cloudy, outs[name], *extra, *common])
                seconds[name] += time.time() - t0
        # One `quality` run scores the outputs and the clear reference.
        scored = json.loads(sh([args.binary, "quality", *outs.values(), clear, "--json"]))
        for name, q in zip([*runs, "clear_reference"], scored):
            rec = {"id": row["id"], "block": row["scene_block"], "niqe": q["niqe"], "brisque": q["brisque"]}
            if name in runs:
                e = json.loads(sh([args.binary, "eval", outs[name], clear, "--json", "-"]))["mean"]
                rec.update(psnr=e["psnr"], ssim=e["ssim"])
                if detail:
                    rec.update(detail(outs[name]))
            elif detail:
                rec.update(detail(clear))
            per_image[name].append(rec)
        last = {n: round(v[-1]["brisque"], 1) for n, v in per_image.items()}
        print(f"{i + 1}/{len(pairs)} id {row['id']}: BRISQUE {last}", flush=True)

    report = {"data": os.path.basename(os.path.normpath(args.data)), "blocks": args.blocks, "images": len(pairs),
              "sampler": f"{args.sampler}, {args.steps} steps, seed {args.seed}", "threads": args.threads,
              "mean": {}, "seconds_new_outputs": {n: round(s, 1) for n, s in seconds.items()}}
    for name, rows in per_image.items():
        report["mean"][name] = {k: round(statistics.fmean(r[k] for r in rows), 4)
                                for k in ("niqe", "brisque", "psnr", "ssim", "blockiness")
                                if k in rows[0]}
        if "sharpness" in rows[0]:
            ref = sum(r["sharpness"] for r in per_image["clear_reference"])
            report["mean"][name]["sharpness_ratio"] = round(sum(r["sharpness"] for r in rows) / max(ref, 1e-9), 4)
    report["per_image"] = per_image
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(json.dumps(report["mean"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
