#!/usr/bin/env python3
"""Contact sheets of what the shipped RGB model does, made with the shipped
runtime (the `idfcr` binary), to be looked at, not only scored:

    .venv-ci/bin/python scripts/contact_sheets.py [--binary target/release/idfcr]

Rows: fixed validation images of RICE2 blocks 3 and 9 (scenes no training
saw: the first and middle id of each block, as listed in pairs.csv) and the
bundled Landsat 8 demo; columns: cloudy input | output (default, blended by
the cloud probability) | clear reference | cloud probability p (the
`--mask` output, white = 1). Writes onnx/models/pixel_cr_rgb.sheet.png and,
for the README, onnx/models/demo_before_after.png (demo input | output |
clear).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import tempfile

import numpy as np
from osgeo import gdal
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 192


def read(path: str) -> np.ndarray:
    ds = gdal.Open(path)
    a = ds.ReadAsArray().astype(np.float32)
    return a[None] if a.ndim == 2 else a


def to_img(a: np.ndarray, scale: float) -> Image.Image:
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    a = np.clip(a[:3] * scale, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(a).resize((SIZE, SIZE), Image.BILINEAR)


def sheet(rows: list[tuple[str, list[Image.Image]]], head: list[str], path: str) -> None:
    gap, top, left = 4, 18, 0
    cols = len(head)
    w = cols * SIZE + (cols - 1) * gap
    h = top + len(rows) * (SIZE + 14 + gap)
    im = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for c, t in enumerate(head):
        d.text((c * (SIZE + gap) + 4, 3), t, fill=(0, 0, 0))
    y = top
    for label, tiles in rows:
        d.text((4, y), label, fill=(0, 0, 0))
        for c, t in enumerate(tiles):
            im.paste(t, (left + c * (SIZE + gap), y + 14))
        y += SIZE + 14 + gap
    im.save(path, optimize=True)
    print(path)


def run(binary: str, src: str, out: str, mask: str) -> None:
    cmd = [binary, "remove", src, out, "--mask", mask, "--overwrite", "-q", "--device", "cpu"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {p.stderr.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "idfcr"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "rice2_3s"))
    ap.add_argument("--blocks", default="3,9")
    args = ap.parse_args()
    with open(os.path.join(args.data, "pairs.csv")) as f:
        pairs = [r for r in csv.DictReader(f) if r["scene_block"] in args.blocks.split(",")]
    chosen = []
    for b in args.blocks.split(","):
        ids = [r for r in pairs if r["scene_block"] == b]
        chosen += [ids[0], ids[len(ids) // 2]]
    head = ["cloudy input", "output (blended)", "clear reference", "cloud probability p"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in chosen:
            out, mask = os.path.join(tmp, f"{r['id']}.tif"), os.path.join(tmp, f"{r['id']}_p.tif")
            src = os.path.join(args.data, r["cloudy"])
            run(args.binary, src, out, mask)
            tiles = [to_img(read(src), 1), to_img(read(out), 1), to_img(read(os.path.join(args.data, r["clear"])), 1),
                     to_img(read(mask), 255)]
            rows.append((f"RICE2 id {r['id']} (validation block {r['scene_block']})", tiles))
        demo = os.path.join(ROOT, "testdata", "demo")
        out, mask = os.path.join(tmp, "demo.tif"), os.path.join(tmp, "demo_p.tif")
        run(args.binary, os.path.join(demo, "landsat8_cloudy.tif"), out, mask)
        demo_tiles = [to_img(read(os.path.join(demo, "landsat8_cloudy.tif")), 1), to_img(read(out), 1),
                      to_img(read(os.path.join(demo, "landsat8_clear.tif")), 1), to_img(read(mask), 255)]
        rows.append(("Landsat 8 demo (testdata/demo)", demo_tiles))
        sheet(rows, head, os.path.join(ROOT, "onnx", "models", "pixel_cr_rgb.sheet.png"))
        sheet([("Landsat 8 demo: README's first command", demo_tiles[:3])], head[:3],
              os.path.join(ROOT, "onnx", "models", "demo_before_after.png"))


if __name__ == "__main__":
    main()
