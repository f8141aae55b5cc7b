"""INR ablation (the paper's Table V on our data): score IND checkpoints that
differ only in the ControlNet training (K = 1, 2, 3 at one budget, plus the
untrained ControlNet and the shipped model) on fixed validation crops.

    python -m idfcr_train.reports.ind_ablation --out models/ind_rgb.ablation.json \\
        /tmp/ind_rgb_unet.pt /tmp/ind_rgb_k1.pt /tmp/ind_rgb_k2.pt /tmp/ind_rgb_k3.pt checkpoints/ind_rgb.pt

Two scores per checkpoint, on 24 fixed 128 px crops of the validation blocks
(split by scene block, as training), conditioned on the Pixel-CR output of
the whole image (cached outside the repository):
- val_eps_mse: noise-prediction MSE at the same t and noise for all
  checkpoints (the training objective, low variance);
- sampled PSNR/SSIM: a full respaced sampling chain (DDPM 50 steps by
  default, fixed seed), decoded by one shared decoder (`--decoder`; the
  encoder is frozen in every checkpoint, so latents are comparable), against
  the clear crop. PSNR of the Pixel-CR condition itself is the reference.

With `--full N` the same checkpoints are scored on N whole validation images
instead (evenly spaced over the blocks, 512 px; the decision the issue asks
for): each image sampled once per checkpoint with the same seed, decoded by
the checkpoint's own decoder, scored before and after the wavelet colour fix
(`--refine`'s output), with the sharpness ratio (summed mean |neighbour
difference| over the clear images'). Checkpoints are then grouped by K:
mean and spread (sample standard deviation) over the seeds.

    python -m idfcr_train.reports.ind_ablation --full 12 --steps 20 --threads 2 \
        --cond-cache /tmp/ind_val_cond_pcr04.npz --out models/ind_rgb.inr_ablation.json /tmp/inr/k*_s*.pt
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.models.ind import alphas_cumprod, load_checkpoint, q_sample, sample
from idfcr_train.reports.ind_detail import colour_fix, sharpness
from idfcr_train.reports.metrics import psnr, ssim
from idfcr_train.training.train_ind import with_cached_condition


def val_crops(data: str, blocks: set[str], pixel_cr: str, cache: str, n: int = 24, size: int = 128):
    """(condition, clear) crops, (n, bands, size, size) each, fixed by seed 0."""
    _, val = split_by_block(load_rice(data), blocks)
    val = with_cached_condition(val, pixel_cr, cache)
    rng = np.random.default_rng(0)
    conds, clears = [], []
    for i in range(n):
        p = val[i * len(val) // n]
        h, w = p.clear_raw.shape[1:]
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        conds.append(p.cloudy[:, y:y + size, x:x + size])
        clears.append(p.clear[:, y:y + size, x:x + size])
    return torch.from_numpy(np.stack(conds)), torch.from_numpy(np.stack(clears))


def val_images(data: str, blocks: set[str], pixel_cr: str, cache: str, n: int):
    """n whole validation images, evenly spaced over the blocks: (id,
    condition, clear), each (1, bands, H, W)."""
    _, val = split_by_block(load_rice(data), blocks)
    picks = with_cached_condition([val[i * len(val) // n] for i in range(n)], pixel_cr, cache)
    return [(p.id, torch.from_numpy(p.cloudy)[None], torch.from_numpy(p.clear)[None]) for p in picks]


def full_image_scores(path: str, images, ref_sharp: float, steps: int, sampler: str) -> dict:
    """One checkpoint on whole images: its own decoder, one fixed sampling
    seed per image, before and after the colour fix; `ref_sharp` is the
    clear images' summed sharpness (the ratio's denominator)."""
    st, ae, den = load_checkpoint(path)
    parts = {"decoded": [], "refined": []}
    for _, cond_img, clear in images:
        z = sample(den, ae.encode(cond_img), steps, sampler, torch.Generator().manual_seed(2))
        dec = ae.decode(z).clamp(0, 1)
        parts["decoded"].append(dec)
        parts["refined"].append(colour_fix(dec, cond_img).clamp(0, 1))
    clears = [c for _, _, c in images]
    out = {"k": st["meta"]["k_iters"], "seed": st["meta"].get("seed"), "control_steps": st["steps"].get("control", 0),
           "control_hours": round(st["wall_s"].get("control", 0) / 3600, 3)}
    for name, preds in parts.items():
        out[name] = {**image_scores(torch.cat(preds), torch.cat(clears)),
                     "sharpness_ratio": round(sum(sharpness(p.numpy()) for p in preds) / ref_sharp, 3)}
    return out


def by_k(results: dict) -> dict:
    """Mean and sample standard deviation over the checkpoints of each K."""
    groups: dict[int, list[dict]] = {}
    for r in results.values():
        groups.setdefault(r["k"], []).append(r)
    summary = {}
    for k, rs in sorted(groups.items()):
        row = {"runs": len(rs), "control_steps": sorted({r["control_steps"] for r in rs})}
        for name in ("decoded", "refined"):
            for metric in ("psnr", "ssim", "sharpness_ratio"):
                v = np.array([r[name][metric] for r in rs])
                row[f"{name}_{metric}"] = {"mean": round(float(v.mean()), 4),
                                           "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)}
        summary[str(k)] = row
    return summary


def full_mode(args: argparse.Namespace) -> dict:
    images = val_images(args.data, set(args.val_blocks.split(",")), args.pixel_cr, args.cond_cache, args.full)
    clears = torch.cat([c for _, _, c in images])
    conds = torch.cat([c for _, c, _ in images])
    ref_sharp = sum(sharpness(c.numpy()) for c in clears)
    out = {"images": [i for i, _, _ in images], "val_blocks": args.val_blocks,
           "sampler": f"{args.sampler}-{args.steps}", "pixel_cr_ckpt": args.pixel_cr,
           "pixel_cr": {**image_scores(conds, clears),
                        "sharpness_ratio": round(sum(sharpness(c.numpy()) for c in conds) / ref_sharp, 3)},
           "checkpoints": {}}
    for path in args.ckpts:
        out["checkpoints"][path] = full_image_scores(path, images, ref_sharp, args.steps, args.sampler)
        print(path, out["checkpoints"][path], flush=True)
    out["by_k"] = by_k(out["checkpoints"])
    return out


def image_scores(pred: torch.Tensor, ref: torch.Tensor) -> dict:
    p, r = pred.clamp(0, 1).numpy(), ref.numpy()
    return {"psnr": round(float(np.mean([psnr(a, b) for a, b in zip(p, r)])), 3),
            "ssim": round(float(np.mean([ssim(a, b) for a, b in zip(p, r)])), 4)}


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--data", default="../../shared/data/rice2_3s")
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--pixel-cr", default="checkpoints/pixel_cr_rgb.pt")
    ap.add_argument("--cond-cache", default="/tmp/idfcr_ind_rgb_val_cond.npz")
    ap.add_argument("--decoder", default="checkpoints/ind_rgb.pt", help="checkpoint whose decoder decodes every sample")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--full", type=int, default=0, help="score N whole validation images and group by K")
    ap.add_argument("--out", default="models/ind_rgb.ablation.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.full:
        out = full_mode(args)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"wrote {args.out}: {json.dumps(out['by_k'])}")
        return
    cond_img, clear = val_crops(args.data, set(args.val_blocks.split(",")), args.pixel_cr, args.cond_cache)
    _, decoder, _ = load_checkpoint(args.decoder)
    ac = alphas_cumprod()
    t = torch.randint(0, len(ac), (len(clear),), generator=torch.Generator().manual_seed(0))
    out = {"crops": len(clear), "val_blocks": args.val_blocks, "sampler": f"{args.sampler}-{args.steps}",
           "decoder": args.decoder, "pixel_cr": image_scores(cond_img, clear), "checkpoints": {}}
    for path in args.ckpts:
        st, ae, den = load_checkpoint(path)
        z0, c = ae.encode(clear), ae.encode(cond_img)
        eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(1))
        mse = float(torch.nn.functional.mse_loss(den(q_sample(z0, t, eps, ac), t, c), eps))
        z = sample(den, c, args.steps, args.sampler, torch.Generator().manual_seed(2))
        out["checkpoints"][path] = {
            "k": st["meta"]["k_iters"] if st["steps"].get("control") else None,
            "control_steps": st["steps"].get("control", 0),
            "control_hours": round(st["wall_s"].get("control", 0) / 3600, 3),
            "val_eps_mse": round(mse, 5),
            "sampled": image_scores(decoder.decode(z), clear),
        }
        print(path, out["checkpoints"][path], flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} (Pixel-CR condition: {out['pixel_cr']})")


if __name__ == "__main__":
    main()
