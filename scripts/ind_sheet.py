#!/usr/bin/env python3
"""Contact sheet of the IND refinement stage for its model card, made with the
shipped runtime (the `idfcr` binary) and graphs, to be looked at, not only
scored:

    .venv-ci/bin/python scripts/ind_sheet.py [--ind-model PREFIX] [--steps 20]

Rows: the fixed RICE2 validation images of `contact_sheets.py` (first and
middle id of blocks 3 and 9, scenes no training saw) and the Landsat 8 demo.
Each image gets two rows: the whole image (downscaled), then a 128 px crop
at the image's centre shown at 1.5x with nearest-neighbour pixels, where
blur, blotches and window blocks are visible. Columns: cloudy input |
stage 1 (Pixel-CR, `idfcr remove`) | refined (`--refine`) | clear reference.
Both outputs are the default ones a user gets (blended by the cloud
probability). Writes onnx/models/ind_rgb.sheet.png unless --out says
otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contact_sheets import SIZE, fixed_validation_pairs, read, run, sheet, to_img  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 128


def crop_img(a: np.ndarray) -> Image.Image:
    """The centre CROP x CROP pixels, enlarged to the sheet's tile size with
    nearest-neighbour sampling (every pixel stays visible)."""
    h, w = a.shape[1:]
    y0, x0 = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    c = a[:3, y0:y0 + CROP, x0:x0 + CROP]
    c = np.clip(c, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(c).resize((SIZE, SIZE), Image.NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "idfcr"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "rice2_3s"))
    ap.add_argument("--blocks", default="3,9")
    ap.add_argument("--ind-model", help="prefix of the IND graphs (default: the bundled ind_rgb)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(ROOT, "onnx", "models", "ind_rgb.sheet.png"))
    args = ap.parse_args()

    images = [(f"RICE2 id {r['id']} (validation block {r['scene_block']})",
               os.path.join(args.data, r["cloudy"]), os.path.join(args.data, r["clear"]))
              for r in fixed_validation_pairs(args.data, args.blocks)]
    demo = os.path.join(ROOT, "testdata", "demo")
    images.append(("Landsat 8 demo", os.path.join(demo, "landsat8_cloudy.tif"), os.path.join(demo, "landsat8_clear.tif")))

    refine = ["--refine", "--steps", str(args.steps), "--seed", str(args.seed)]
    if args.ind_model:
        refine += ["--ind-model", args.ind_model]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, cloudy, clear) in enumerate(images):
            stage1, refined = os.path.join(tmp, f"{i}_s1.tif"), os.path.join(tmp, f"{i}_ref.tif")
            run(args.binary, cloudy, stage1, None)
            run(args.binary, cloudy, refined, None, refine)
            arrays = [read(p) for p in (cloudy, stage1, refined, clear)]
            rows.append((label, [to_img(a, 1) for a in arrays]))
            rows.append((f"{label}: centre {CROP} px, 1.5x", [crop_img(a) for a in arrays]))
            print(f"{i + 1}/{len(images)} {label}", flush=True)
    head = ["cloudy input", "stage 1 (Pixel-CR)", f"refined (DDPM-{args.steps})", "clear reference"]
    sheet(rows, head, args.out)


if __name__ == "__main__":
    main()
