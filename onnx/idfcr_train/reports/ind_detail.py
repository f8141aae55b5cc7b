"""Where does stage 2 lose detail? PSNR and sharpness at each step of the IND
chain, on fixed validation crops (scene blocks no training saw).

    python -m idfcr_train.reports.ind_detail --out models/ind_rgb.detail.json

Steps, each scored against the clear crop:
1. clear -> encode -> decode: the autoencoder's ceiling (the decoder cannot
   give back what the latent does not hold);
2. stage 1: the Pixel-CR output (the condition);
3. stage 1 -> encode -> decode: what the condition latent keeps;
4. sampled latent -> decode: the diffusion's own result (fixed seed);
5. + the wavelet colour fix (as src/diffusion/colorfix.rs: 5-level a-trous,
   high frequencies of 4, low frequencies of 2): what `--refine` writes.

Sharpness = mean |difference between neighbouring pixels|; the ratio is
the step's summed over the crops divided by the clear crops' (1 = as
detailed as the clear image; issue 17 wants 0.8-1.2). Per-crop ratios are
not averaged: a flat sea crop makes them explode.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.models.ind import load_checkpoint as load_ind, sample
from idfcr_train.reports.metrics import psnr
from idfcr_train.models.pixel_cr import load_checkpoint as load_pixel_cr


def sharpness(img: np.ndarray) -> float:
    """Mean |neighbour difference| over both axes and all bands."""
    return float((np.abs(np.diff(img, axis=-1)).mean() + np.abs(np.diff(img, axis=-2)).mean()) / 2)


def _atrous_split(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) of (B, C, H, W): summed detail layers and the last low pass,
    3x3 [1 2 1]^2 / 16 dilated by 2^i, edges replicated (the Rust colour fix)."""
    k = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype)
    c = x.shape[1]
    high = torch.zeros_like(x)
    img = x
    for level in range(levels):
        r = 1 << level
        p = F.pad(img, (r, r, 0, 0), mode="replicate")
        low = F.conv2d(p, k.view(1, 1, 1, 3).repeat(c, 1, 1, 1), dilation=(1, r), groups=c)
        p = F.pad(low, (0, 0, r, r), mode="replicate")
        low = F.conv2d(p, k.view(1, 1, 3, 1).repeat(c, 1, 1, 1), dilation=(r, 1), groups=c)
        high = high + img - low
        img = low
    return high, img


def colour_fix(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    return _atrous_split(content)[0] + _atrous_split(style)[1]


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../../shared/data/rice2_3s")
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--pixel-cr", default="checkpoints/pixel_cr_rgb.pt")
    ap.add_argument("--ind", default="checkpoints/ind_rgb.pt")
    ap.add_argument("--images", type=int, default=8, help="validation images (evenly spaced), one crop each")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    picks = [val[i * len(val) // args.images] for i in range(args.images)]
    pcr, _ = load_pixel_cr(args.pixel_cr)
    _, ae, den = load_ind(args.ind)
    rng = np.random.default_rng(0)
    s, win = args.crop, pcr.cfg.window
    steps: dict[str, list[tuple[float, float]]] = {k: [] for k in
                                                   ("autoencoder_ceiling", "stage1", "stage1_enc_dec",
                                                    "sampled_decoded", "refined_colour_fixed")}
    ref_sharp: list[float] = []
    for p in picks:
        cloudy, clear = p.cloudy, p.clear
        h, w = clear.shape[1:]
        # Stage 1 on a window-aligned region with 32 px of context around the crop.
        y = int(rng.integers(32, h - s - 32 + 1)) // win * win
        x = int(rng.integers(32, w - s - 32 + 1)) // win * win
        region = torch.from_numpy(np.ascontiguousarray(cloudy[:, y - 32:y + s + 32, x - 32:x + s + 32]))[None]
        stage1 = pcr(region)[0].clamp(0, 1)[:, :, 32:-32, 32:-32]
        ref = torch.from_numpy(np.ascontiguousarray(clear[:, y:y + s, x:x + s]))[None]
        cond = ae.encode(stage1)
        z = sample(den, cond, args.steps, args.sampler, torch.Generator().manual_seed(2))
        dec = ae.decode(z).clamp(0, 1)
        outs = {
            "autoencoder_ceiling": ae.decode(ae.encode(ref)).clamp(0, 1),
            "stage1": stage1,
            "stage1_enc_dec": ae.decode(cond).clamp(0, 1),
            "sampled_decoded": dec,
            "refined_colour_fixed": colour_fix(dec, stage1).clamp(0, 1),
        }
        r = ref[0].numpy()
        for k, v in outs.items():
            v = v[0].numpy()
            steps[k].append((psnr(v, r), sharpness(v)))
        ref_sharp.append(sharpness(r))
        print(p.id, {k: (round(v[-1][0], 2), round(v[-1][1] / max(ref_sharp[-1], 1e-6), 2))
                     for k, v in steps.items()}, flush=True)
    res = {
        "images": [p.id for p in picks], "crop": s, "val_blocks": args.val_blocks,
        "sampler": f"{args.sampler}-{args.steps}", "pixel_cr": args.pixel_cr, "ind": args.ind,
        "steps": {k: {"psnr": round(float(np.mean([a for a, _ in v])), 3),
                      "sharpness_ratio": round(float(np.sum([b for _, b in v]) / np.sum(ref_sharp)), 3)}
                  for k, v in steps.items()},
        "command": "python -m idfcr_train.reports.ind_detail " + " ".join(argv or __import__("sys").argv[1:]),
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps(res["steps"], indent=1))


if __name__ == "__main__":
    main()
