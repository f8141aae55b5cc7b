"""Compare Pixel-CR checkpoints the way a user would judge them: full
validation images from scenes no training saw (split by scene block), the
bundled Landsat 8 demo, a clear image given as input (it must come back
unchanged), window blockiness, the validation images under other colour
maps (`palette_*`) and under a user's percentile stretch (`stretch_*`),
Sentinel-2 validation scenes as true-colour quick-looks (`s2rgb_*`, with
`--s2-rgb ../../shared/data/sen12mscr_oriolac`), another dataset's held-out
pairs (`extra_*`, e.g. RICE1's ids 300-399 with
`--extra-data ../../shared/data/rice1_xj --extra-val 300-399`: a run of
consecutive ids that training leaves out with the same flags), and a contact
sheet to look at.

    python -m idfcr_train.reports.compare --data ../../shared/data/rice2_3s \
        --out runs/compare A=path/a.pt B=path/b.pt [--stride 3]

Writes `<out>/compare.json` (a table row per checkpoint) and
`<out>/<label>.png` (rows of cloudy | output | reference | attention for
fixed validation images and the demo). Blockiness: see metrics.blockiness.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from idfcr_train.checkpoint import load_state
from idfcr_train.reports.clear_fidelity import load_demo
from idfcr_train.data.pairs import (check_held_out, in_id_range, load_rice, random_palette, random_stretch,
                                    split_by_block)
from idfcr_train.reports.metrics import blockiness, psnr, ssim
from idfcr_train.models.pixel_cr import load_checkpoint


@torch.no_grad()
def run(model, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out, attn = model(torch.from_numpy(np.ascontiguousarray(img))[None])
    return out[0].clamp(0, 1).numpy(), attn[0, 0].clamp(0, 1).numpy()


def to_rgb8(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        x = np.repeat(x[None], 3, axis=0)
    return (np.clip(x[:3], 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def contact_sheet(rows: list[list[np.ndarray]], path: str, size: int = 256) -> None:
    """Rows of (cloudy, output, reference, probability), each resized to `size`."""
    from PIL import Image

    gap = 4
    sheet = Image.new("RGB", (4 * size + 3 * gap, len(rows) * size + (len(rows) - 1) * gap), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            tile = Image.fromarray(to_rgb8(img)).resize((size, size), Image.BILINEAR)
            sheet.paste(tile, (c * (size + gap), r * (size + gap)))
    sheet.save(path)


def mapped_scores(model, images, make_map, prefix: str, seed: int) -> tuple[dict, list]:
    """Score images whose cloudy and clear versions both go through one fixed
    map (`make_map(clear, rng)`, seeded by position so every checkpoint sees
    the same maps): PSNR against doing nothing, blockiness, every fourth
    clear image as input; and the first image's contact-sheet row."""
    ps, base, block, ident, row = [], [], [], [], []
    for i, p in enumerate(images):
        f = make_map(p.clear, np.random.default_rng(seed + i))
        cloudy, clear = f(p.cloudy), f(p.clear)
        pred, attn = run(model, cloudy)
        row = row or [cloudy, pred, clear, attn]
        ps.append(psnr(pred, clear))
        base.append(psnr(cloudy, clear))
        block.append(blockiness(pred))
        if i % 4 == 0:
            ident.append(psnr(run(model, clear)[0], clear))
    return {f"{prefix}_images": len(ps), f"{prefix}_psnr": float(np.mean(ps)),
            f"{prefix}_base_psnr": float(np.mean(base)),
            f"{prefix}_worst_vs_base": float(min(a - b for a, b in zip(ps, base))),
            f"{prefix}_blockiness": float(np.mean(block)),
            f"{prefix}_clear_in_psnr": float(np.mean(ident))}, row


def palette_scores(model, val) -> dict:
    """Other stretches of unseen scenes: every other validation image through
    one fixed random colour map (`data.random_palette`). A model that learnt
    RICE2's palette repaints these."""
    return mapped_scores(model, val[::2], lambda clear, rng: random_palette(clear.shape[0], rng), "palette", 1000)[0]


def stretch_scores(model, val) -> tuple[dict, list]:
    """Unseen scenes as a user who stretched them would give them: the other
    half of the validation images through one fixed percentile stretch
    fitted on the clear image (`data.random_stretch`). RICE2's tiles are dim
    and flat; users' stretched crops span 0..1 and show what contrast does to
    the windows. Also returns the first image's contact-sheet row."""
    return mapped_scores(model, val[1::2], random_stretch, "stretch", 2000)


def extra_scores(model, pairs, prefix: str = "extra") -> dict:
    """Held-out pairs of another dataset (another sensor or haze type): PSNR,
    SSIM and blockiness against doing nothing, and every clear image given
    as input; keys `<prefix>_*`."""
    ps, ss, base, block, ident = [], [], [], [], []
    for p in pairs:
        pred, _ = run(model, p.cloudy)
        ps.append(psnr(pred, p.clear))
        ss.append(ssim(pred, p.clear))
        base.append(psnr(p.cloudy, p.clear))
        block.append(blockiness(pred))
        ident.append(psnr(run(model, p.clear)[0], p.clear))
    res = {"images": len(ps), "psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)),
           "base_psnr": float(np.mean(base)), "worst_vs_base": float(min(a - b for a, b in zip(ps, base))),
           "blockiness": float(np.mean(block)), "clear_in_psnr": float(np.mean(ident))}
    return {f"{prefix}_{k}": v for k, v in res.items()}


def score(model, val, demo, sheet_ids: list[str]) -> tuple[dict, list]:
    rows, sheet = [], []
    for p in val:
        cloudy, clear = p.cloudy, p.clear
        pred, attn = run(model, cloudy)
        rows.append({"id": p.id, "block": p.block, "psnr": psnr(pred, clear), "ssim": ssim(pred, clear),
                     "base": psnr(cloudy, clear), "blockiness": blockiness(pred)})
        if p.id in sheet_ids:
            sheet.append([cloudy, pred, clear, attn])
    cloudy, clear, _free = demo
    pred, attn = run(model, cloudy)
    sheet.append([cloudy, pred, clear, attn])
    ident, _ = run(model, clear)
    stretched, row = stretch_scores(model, val)
    sheet.append(row)
    res = {
        "val_images": len(rows),
        "val_psnr": float(np.mean([r["psnr"] for r in rows])),
        "val_ssim": float(np.mean([r["ssim"] for r in rows])),
        "val_base_psnr": float(np.mean([r["base"] for r in rows])),
        "val_worst_vs_base": float(min(r["psnr"] - r["base"] for r in rows)),
        "val_blockiness": float(np.mean([r["blockiness"] for r in rows])),
        "demo_psnr": psnr(pred, clear),
        "demo_base_psnr": psnr(cloudy, clear),
        "demo_blockiness": blockiness(pred),
        "clear_in_psnr": psnr(ident, clear),
        # Per image, so two checkpoints can be compared pairwise (ablation).
        "per_image": [{"id": r["id"], "block": r["block"], "psnr": r["psnr"], "base": r["base"]} for r in rows],
        **palette_scores(model, val),
        **stretched,
    }
    for b in sorted({r["block"] for r in rows}):
        sel = [r for r in rows if r["block"] == b]
        res[f"block{b}_psnr"] = float(np.mean([r["psnr"] for r in sel]))
        res[f"block{b}_base_psnr"] = float(np.mean([r["base"] for r in sel]))
    return res, sheet


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+", help="LABEL=checkpoint.pt")
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--stride", type=int, default=1, help="every n-th validation image (1: all)")
    ap.add_argument("--raw", action="store_true", help="raw weights, not the EMA")
    ap.add_argument("--extra-data", default=None, help="another RICE-layout folder to score held-out pairs of")
    ap.add_argument("--extra-val", default=None, metavar="LO-HI", help="its held-out ids (inclusive)")
    ap.add_argument("--s2-rgb", default=None, metavar="SEN12MSCR",
                    help="also score the validation scenes of this SEN12MS-CR folder as true-colour quick-looks "
                         "(`s2rgb_*`; data.s2.load_s2_rgb)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    val = val[:: args.stride]
    # Fixed sheet images: the first and the middle of each validation block.
    sheet_ids = []
    for b in sorted({p.block for p in val}):
        ids = [p.id for p in val if p.block == b]
        sheet_ids += [ids[0], ids[len(ids) // 2]]
    demo = load_demo()
    extra = ([p for p in load_rice(args.extra_data) if in_id_range(p.id, args.extra_val)]
             if args.extra_data else [])
    s2_val = []
    if args.s2_rgb:
        from idfcr_train.data.s2 import DEFAULT_VAL_SCENES, load_s2_rgb

        s2_val = split_by_block(load_s2_rgb(args.s2_rgb), set(DEFAULT_VAL_SCENES.split(",")))[1]
    # Every checkpoint is checked before any is scored (scoring one takes minutes).
    for spec in args.ckpts:
        path = spec.split("=", 1)[1]
        check_held_out(load_state(path), args.val_blocks, path, args.data)
    table = {}
    for spec in args.ckpts:
        label, path = spec.split("=", 1)
        model, state = load_checkpoint(path, ema=not args.raw)
        t0 = time.time()
        res, sheet = score(model, val, demo, sheet_ids)
        if extra:
            res.update(extra_scores(model, extra))
        if s2_val:
            res.update(extra_scores(model, s2_val, "s2rgb"))
        res.update({"step": state["step"], "hours": round(state["wall_s"] / 3600, 2),
                    "recipe": state.get("meta", {}), "eval_s": round(time.time() - t0, 1)})
        contact_sheet(sheet, os.path.join(args.out, f"{label}.png"))
        table[label] = res
        print(label, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()
                                 if k not in ("recipe", "per_image")}), flush=True)
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
