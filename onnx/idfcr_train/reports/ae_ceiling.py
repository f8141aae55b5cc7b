"""The autoencoder's ceiling on full validation images: clear image ->
encode -> decode, scored against itself. The decoder cannot give back what
the latent does not hold, so no diffusion model on these latents can be
sharper or closer than this (issue 17, step 1 of `ind_detail`).

    python -m idfcr_train.reports.ae_ceiling --ckpt checkpoints/ind_rgb.pt [more checkpoints] --out table.json

Scored on every image of the validation scene blocks (default 3 and 9, the
blocks no training saw), whole 512 x 512 images: PSNR, SSIM and the
sharpness ratio (summed mean |neighbour difference| of the round trip over
that of the clear images; 1 = as detailed as the clear image).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from idfcr_train.checkpoint import load_state
from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.models.ind import Autoencoder, load_autoencoder
from idfcr_train.reports.ind_detail import sharpness
from idfcr_train.reports.metrics import psnr, ssim


@torch.no_grad()
def score(ae: Autoencoder, images: list[np.ndarray]) -> dict:
    ps, ss, sharp, ref_sharp = [], [], [], []
    for clear in images:
        x = torch.from_numpy(np.ascontiguousarray(clear))[None]
        rec = ae.decode(ae.encode(x)).clamp(0, 1)[0].numpy()
        ps.append(psnr(rec, clear))
        ss.append(ssim(rec, clear))
        sharp.append(sharpness(rec))
        ref_sharp.append(sharpness(clear))
    return {"images": len(images), "psnr": round(float(np.mean(ps)), 3), "ssim": round(float(np.mean(ss)), 4),
            "sharpness_ratio": round(float(np.sum(sharp) / np.sum(ref_sharp)), 3)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", nargs="+", required=True)
    ap.add_argument("--data", default="../../shared/data/rice2_3s")
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--limit", type=int, default=0, help="score only every n-th image so that about this many remain")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    if args.limit and args.limit < len(val):
        val = [val[i * len(val) // args.limit] for i in range(args.limit)]
    images = [p.clear for p in val]
    rows = []
    for path in args.ckpt:
        state = load_state(path)
        ae = load_autoencoder(state)
        row = {"ckpt": path, "ae_config": state["ae_config"], "ae_steps": state.get("steps", {}).get("ae", 0),
               "ae_hours": round(state.get("wall_s", {}).get("ae", 0.0) / 3600, 3), **score(ae, images)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"val_blocks": args.val_blocks, "rows": rows,
                       "command": "python -m idfcr_train.reports.ae_ceiling " + " ".join(argv or sys.argv[1:])}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
