#!/usr/bin/env python3
"""Contact sheets of what the shipped RGB model does, made with the shipped
runtime (the `idfcr` binary), to be looked at, not only scored:

    .venv-ci/bin/python scripts/contact_sheets.py [--binary target/release/idfcr]

RGB rows: fixed validation images of RICE2 blocks 3 and 9 (scenes no
training saw: the first and middle id of each block, as listed in
pairs.csv) and the bundled Landsat 8 demo. Sentinel-2 rows (one sheet per
group model): the SEN12MS-CR pairs of the validation scenes, shown as a
colour composite of the group's bands. Columns: cloudy input | output
(default, blended by the cloud probability) | clear reference | cloud
probability p (the `--mask` output, white = 1). Writes
onnx/models/{pixel_cr_rgb,s2_10m,s2_20m,s2_60m,s2_60m_l2a}.sheet.png and,
for the README, onnx/models/demo_before_after.png (demo input | output |
clear). The group sheets show each model's own p (what L2A products get);
onnx/models/s2cloudless.sheet.png shows what `idfcr s2` does by default
with an L1C band stack (10 m group, blended by s2cloudless's map), for the
validation scenes and sen12mscr_glfcr (scenes no model trained on).
onnx/models/pixel_cr_rice1.sheet.png: the RICE1 haze model (`--model
pixel_cr_rice1`) on fixed RICE1 validation pairs, default and --raw, and
two clear references given as input (dark sea, where its p stays shut, and
bright sea, where it opens). `--only rgb,s2,s2cloudless,rice1` makes some
of them.
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


S2_ALL = "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12"
# group: (its bands' 1-based numbers in SEN12MS-CR order, display channels
# of the group output for R, G, B)
S2_GROUPS = {
    "s2_10m": ([2, 3, 4, 8], [2, 1, 0], 1),          # B4 B3 B2
    "s2_20m": ([5, 6, 7, 9, 12, 13], [5, 3, 0], 2),  # B12 B8A B5
    "s2_60m": ([1, 10, 11], [0, 1, 2], 6),           # B1 B9 B10
    "s2_60m_l2a": ([1, 10], [0, 1, 0], 6),           # B1 B9 B1
}
S2_NAMES = S2_ALL.split(",")
S2_VAL_SCENES = ("ROIs1158_spring_39", "ROIs1868_summer_100")


def fixed_validation_pairs(data: str, blocks: str) -> list[dict]:
    """The sheets' RICE2 rows: the first and the middle pair of each
    validation block, in pairs.csv order (fixed, so sheets of different
    versions show the same images)."""
    with open(os.path.join(data, "pairs.csv")) as f:
        pairs = [r for r in csv.DictReader(f) if r["scene_block"] in blocks.split(",")]
    chosen = []
    for b in blocks.split(","):
        ids = [r for r in pairs if r["scene_block"] == b]
        chosen += [ids[0], ids[len(ids) // 2]]
    return chosen


def run(binary: str, src: str, out: str, mask: str | None, extra: list[str] | None = None) -> None:
    """`idfcr remove` on the CPU (with `--mask` when given); exits with its message on failure."""
    cmd = [binary, "remove", src, out, *(["--mask", mask] if mask else []), "--overwrite", "-q", "--device", "cpu",
           *(extra or [])]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {p.stderr.strip()}")


HEAD = ["cloudy input", "output (blended)", "clear reference", "cloud probability p"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "idfcr"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "rice2_3s"))
    ap.add_argument("--blocks", default="3,9")
    ap.add_argument("--s2-data", default=os.path.join(ROOT, "..", "shared", "data", "sen12mscr_oriolac"))
    ap.add_argument("--s2-extra", default=os.path.join(ROOT, "..", "shared", "data", "sen12mscr_glfcr"))
    ap.add_argument("--rice1-data", default=os.path.join(ROOT, "..", "shared", "data", "rice1_xj"))
    ap.add_argument("--rice1-model", default="pixel_cr_rice1",
                    help="the haze model for the rice1 sheet (a file or a bundled name)")
    ap.add_argument("--only", default="rgb,s2,s2cloudless,rice1")
    args = ap.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        if "rgb" in only:
            rgb_sheets(args, tmp)
        if "s2" in only:
            s2_group_sheets(args, tmp)
        if "s2cloudless" in only:
            s2cloudless_sheet(args, tmp)
        if "rice1" in only:
            rice1_sheet(args, tmp)


def rgb_sheets(args, tmp: str) -> None:
    """The RGB model on fixed RICE2 validation images and the demo."""
    chosen = fixed_validation_pairs(args.data, args.blocks)
    head = HEAD
    rows = []
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


# RICE1's validation ids (a run of consecutive ids, 300-399): the first, the
# middle and the last of the 21 in rice1_xj, and two clear references as input.
RICE1_ROWS = ("301", "341", "394")
RICE1_CLEAR_IN = ("357", "305")


def rice1_sheet(args, tmp: str) -> None:
    """The haze model (`--model pixel_cr_rice1`) on fixed RICE1 validation
    pairs, default and `--raw`, and on one of their clear references given
    as input (the default must give it back as it went in)."""
    rows = []
    for i in (*RICE1_ROWS, *RICE1_CLEAR_IN):
        clear_in = i in RICE1_CLEAR_IN
        src = os.path.join(args.rice1_data, "ground_truth" if clear_in else "cloudy_image", f"{i}.png")
        out, mask = os.path.join(tmp, f"rice1_{i}.tif"), os.path.join(tmp, f"rice1_{i}_p.tif")
        run(args.binary, src, out, mask, ["--model", args.rice1_model])
        raw = os.path.join(tmp, f"rice1_{i}_raw.tif")
        run(args.binary, src, raw, None, ["--model", args.rice1_model, "--raw"])
        tiles = [to_img(read(src), 1), to_img(read(out), 1), to_img(read(raw), 1),
                 to_img(read(os.path.join(args.rice1_data, "ground_truth", f"{i}.png")), 1), to_img(read(mask), 255)]
        label = f"RICE1 id {i} (validation)" + (": its clear reference as input" if clear_in else "")
        rows.append((label, tiles))
    # Its raw output is what it is for (on scenes known to be hazy): shown too.
    head = [HEAD[0], HEAD[1], "output (--raw)", HEAD[2], HEAD[3]]
    sheet(rows, head, os.path.join(ROOT, "onnx", "models", "pixel_cr_rice1.sheet.png"))


def s2_group_sheets(args, tmp: str) -> None:
    """Each Sentinel-2 group model with its own p (`idfcr remove` on the group's bands)."""
    head = HEAD
    with open(os.path.join(args.s2_data, "pairs.csv")) as f:
        s2_pairs = [r for r in csv.DictReader(f) if any(s in r["clear"].replace("_s2_", "_") for s in S2_VAL_SCENES)]
    for name, (band_nos, show, f) in S2_GROUPS.items():
        rows = []
        for r in s2_pairs:
            # The group's bands at the group's resolution (area average, as
            # in training), as the model would get them from a product.
            def group_raster(path: str, tag: str) -> str:
                ds = gdal.Open(path)
                dst = os.path.join(tmp, f"{name}_{tag}.tif")
                gdal.Translate(dst, ds, bandList=band_nos, width=ds.RasterXSize // f,
                               height=ds.RasterYSize // f, resampleAlg="average")
                return dst
            src = group_raster(os.path.join(args.s2_data, r["cloudy"]), "cloudy")
            ref = group_raster(os.path.join(args.s2_data, r["clear"]), "clear")
            out, mask = os.path.join(tmp, f"{name}.tif"), os.path.join(tmp, f"{name}_p.tif")
            run(args.binary, src, out, mask, ["--s2-bands", ",".join(S2_NAMES[b - 1] for b in band_nos)])
            # Reflectance x 10000 -> 8-bit, brightened x 3 (as common for true colour).
            k = 255 * 3 / 10000
            tiles = [to_img(read(src)[show], k), to_img(read(out)[show], k), to_img(read(ref)[show], k),
                     to_img(read(mask), 255)]
            rows.append((os.path.basename(r["cloudy"]).replace("_s2_cloudy", ""), tiles))
        sheet(rows, head, os.path.join(ROOT, "onnx", "models", f"{name}.sheet.png"))


def s2cloudless_sheet(args, tmp: str) -> None:
    """`idfcr s2` on 13-band L1C stacks (the default: p from s2cloudless),
    the 10 m group shown in true colour."""
    pairs = []
    for root in (args.s2_data, args.s2_extra):
        with open(os.path.join(root, "pairs.csv")) as f:
            for r in csv.DictReader(f):
                if root == args.s2_extra or any(s in r["clear"].replace("_s2_", "_") for s in S2_VAL_SCENES):
                    pairs.append((root, r))
    rows = []
    k = 255 * 3 / 10000
    for i, (root, r) in enumerate(pairs):
        src, ref = os.path.join(root, r["cloudy"]), os.path.join(root, r["clear"])
        out_dir = os.path.join(tmp, f"s2c_{i}")
        cmd = [args.binary, "s2", src, out_dir, "--s2-bands", S2_ALL, "--groups", "10m", "--mask-name",
               "{product}_p_{group}.tif", "-q", "--device", "cpu", "--overwrite"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)}: {p.stderr.strip()}")
        stem = os.path.splitext(os.path.basename(src))[0]
        out = read(os.path.join(out_dir, f"{stem}_idfcr_10m.tif"))
        mask = read(os.path.join(out_dir, f"{stem}_p_10m.tif"))
        rgb = [3, 2, 1]  # B4 B3 B2 of the 13 bands; the output holds B2 B3 B4 B8
        tiles = [to_img(read(src)[rgb], k), to_img(out[[2, 1, 0]], k), to_img(read(ref)[rgb], k), to_img(mask, 255)]
        rows.append((os.path.basename(r["cloudy"]).replace("_s2_cloudy", ""), tiles))
    sheet(rows, HEAD, os.path.join(ROOT, "onnx", "models", "s2cloudless.sheet.png"))


if __name__ == "__main__":
    main()
