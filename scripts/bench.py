#!/usr/bin/env python3
"""Benchmark `idfcr remove` (run by hand, not in CI): throughput, time
outside ONNX Runtime, and peak memory for several scene sizes.

    python3 scripts/bench.py                                 # shipped model, 1024/2048/4096
    python3 scripts/bench.py --model testdata/models/tiny_conv.onnx --sizes 1024,4096,10980
    python3 scripts/bench.py --refine                        # diffusion stage: DDPM-50, DDIM-20, DDIM-10
    python3 scripts/bench.py --refine ddpm:20 --refine-size 2048   # the same on a generated 2048 px scene
    python3 scripts/bench.py --sizes 1024 --tiles 256,384,512,default   # memory and time per tile size
    python3 scripts/bench.py --s2 10980                      # a whole Sentinel-2 L2A product, all groups
    python3 scripts/bench.py --s2 1098 --s2-level L1C        # L1C: s2cloudless's map, clear tiles not run

Scenes are generated (3-band Byte GeoTIFF, image-like pattern) in a temp
folder. Peak RSS comes from the kernel's accounting of the child process
(wait4), so it includes ONNX Runtime's allocations. "outside ORT" is
1 - (seconds inside Session::run) / (wall seconds) with one worker.
Needs GDAL's Python bindings and numpy (Debian python3-gdal).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from osgeo import gdal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_scene(path: str, size: int) -> None:
    ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 3, gdal.GDT_Byte,
                                              ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform([600000, 10, 0, 5000000, 0, -10])
    srs = gdal.osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    x = np.arange(size, dtype=np.float32)[None, :]
    for y0 in range(0, size, 512):
        y = np.arange(y0, min(size, y0 + 512), dtype=np.float32)[:, None]
        for b in range(3):
            v = 120 + 60 * np.sin(x / 37 + b) * np.cos(y / 53) + 25 * np.sin(x * y / 4099)
            ds.GetRasterBand(b + 1).WriteArray(np.clip(v, 1, 255).astype(np.uint8), 0, y0)
    ds = None


def run_usage(cmd: list[str]):
    """(JSON summary, wall seconds, the child's resource usage from wait4)."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.decode()}")
    return json.loads(out), wall, usage


def run(cmd: list[str]) -> tuple[dict, float, float]:
    summary, wall, usage = run_usage(cmd)
    return summary, wall, usage.ru_maxrss / 1024.0


def bench_s2(args) -> None:
    """A whole Sentinel-2 product (`make_s2_fixture.py --size N --cloud`, L2A
    or --s2-level L1C,
    all groups, the shipped models): wall time, CPU time, peak RSS, and the
    seconds and megapixels of each group. The product is written once into
    --s2-dir (kept: writing 10980 px JPEG 2000 bands takes minutes)."""
    size = args.s2
    level = args.s2_level
    folder = os.path.join(args.s2_dir, f"s2_{size}" + ("" if level == "L2A" else f"_{level}"))
    products = [p for p in os.listdir(folder) if p.endswith(".SAFE")] if os.path.isdir(folder) else []
    if not products:
        t0 = time.time()
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_s2_fixture.py"), "--out", folder,
                        "--level", level, "--size", str(size), "--cloud"], check=True, stdout=subprocess.DEVNULL)
        products = [p for p in os.listdir(folder) if p.endswith(".SAFE")]
        print(f"wrote the {size} px product in {time.time() - t0:.0f} s")
    out = os.path.join(args.s2_dir, f"out_{size}_{level}")
    summary, wall, usage = run_usage([args.binary, "s2", os.path.join(folder, products[0]), out, "--device", "cpu",
                                      "--threads", str(args.threads), "--json", "-q", "--overwrite"])
    cpu = usage.ru_utime + usage.ru_stime
    print(f"Sentinel-2 {level} product, 10 m grid {size} x {size}, {args.threads} threads, device cpu; "
          f"cloud probability: {summary.get('cloud_probability', '?')}")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s ({cpu / wall:.2f} cores busy), peak RSS {usage.ru_maxrss / 1024:.0f} MB")
    print(f"{'group':>6} {'model':>16} {'bands':>5} {'MPix':>7} {'tiles':>6} {'clear':>6} {'seconds':>8} {'MPix/s':>7} "
          f"{'in ORT':>7}")
    for g in summary["groups"]:
        mp = g["width"] * g["height"] / 1e6
        print(f"{g['group']:>6} {g['model']:>16} {g['bands']:>5} {mp:>7.1f} {g['tiles_run']:>6} {g.get('tiles_clear', 0):>6} "
              f"{g['seconds']:>8.1f} "
              f"{mp / g['seconds']:>7.2f} {g['inference_seconds'] / g['seconds']:>7.1%}", flush=True)


def bench_refine(args) -> None:
    """Seconds of each part of the diffusion stage for each sampler setting
    in --refine (e.g. ddpm:50,ddim:20,ddim:10), on the demo scene or a
    generated --refine-size scene."""
    tmp_scene = tempfile.TemporaryDirectory()
    if args.refine_size:
        src = os.path.join(tmp_scene.name, f"scene_{args.refine_size}.tif")
        make_scene(src, args.refine_size)
        label = f"a generated {args.refine_size} x {args.refine_size} scene"
    else:
        src = os.path.join(ROOT, "testdata", "demo", "landsat8_cloudy.tif")
        label = f"{os.path.relpath(src, ROOT)} (512 x 512)"
    print(f"IND refinement of {label}, {args.threads} threads, device cpu, default tiles")
    print(f"{'sampler':>9} {'steps':>5} {'total s':>8} {'stage 1':>8} {'encode':>7} {'sample':>7} "
          f"{'s/step':>7} {'decode':>7} {'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.refine.split(","):
            sampler, steps = spec.split(":")
            summary, wall, rss = run([args.binary, "remove", src, os.path.join(tmp, "out.tif"), "--refine",
                                      "--sampler", sampler, "--steps", steps, "--device", "cpu",
                                      "--threads", str(args.threads), "--json", "-q", "--overwrite"])
            r = summary["refine"]
            stage1 = summary["seconds"] - r["encode_seconds"] - r["sample_seconds"] - r["decode_seconds"]
            print(f"{sampler:>9} {steps:>5} {wall:>8.1f} {stage1:>8.1f} {r['encode_seconds']:>7.2f} "
                  f"{r['sample_seconds']:>7.1f} {r['sample_seconds'] / int(steps):>7.2f} "
                  f"{r['decode_seconds']:>7.2f} {rss:>11.0f}", flush=True)
    tmp_scene.cleanup()


def bench_tiles(args) -> None:
    """Wall time and peak RSS of one scene for each tile size, and the time
    relative to tile 256 (issue 15's target: default <= 0.75 x tile 256 at
    <= 2 GB)."""
    size = int(args.sizes.split(",")[0])
    print(f"model {os.path.relpath(args.model, ROOT)}, {size} x {size}, {args.threads} threads, device cpu")
    print(f"{'tile':>8} {'seconds':>8} {'vs 256':>7} {'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, f"scene_{size}.tif")
        make_scene(src, size)
        base = None
        for t in args.tiles.split(","):
            cmd = [args.binary, "remove", src, os.path.join(tmp, "out.tif"), "--model", args.model,
                   "--device", "cpu", "--threads", str(args.threads), "--json", "-q", "--overwrite"]
            if t != "default":
                cmd += ["--tile", t]
            _, wall, rss = run(cmd)
            base = wall if t == "256" else base
            rel = f"{wall / base:>7.2f}" if base else f"{'-':>7}"
            print(f"{t:>8} {wall:>8.1f} {rel} {rss:>11.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "onnx", "models", "pixel_cr_rgb.onnx"))
    ap.add_argument("--sizes", default="1024,2048,4096")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "idfcr"))
    ap.add_argument("--compare-python", action="store_true",
                    help="also run scripts/bench_python.py (GDAL + onnxruntime + numpy) on the same scenes")
    ap.add_argument("--refine", nargs="?", const="ddpm:50,ddim:20,ddim:10",
                    help="benchmark the diffusion stage instead: SAMPLER:STEPS,... (default ddpm:50,ddim:20,ddim:10)")
    ap.add_argument("--refine-size", type=int, default=0, metavar="SIZE",
                    help="with --refine: a generated SIZE x SIZE scene instead of the demo")
    ap.add_argument("--tiles", default=None,
                    help="compare tile sizes on the first --sizes scene: e.g. 256,384,512,default "
                         "(default: the binary's own tile choice)")
    ap.add_argument("--s2", type=int, default=0, metavar="SIZE",
                    help="benchmark `idfcr s2` on a whole L2A product of this 10 m size instead (e.g. 10980)")
    ap.add_argument("--s2-level", choices=["L1C", "L2A"], default="L2A",
                    help="--s2 product level (L1C: blended by s2cloudless, tiles with p = 0 everywhere not run)")
    ap.add_argument("--s2-dir", default=os.path.join(tempfile.gettempdir(), "idfcr_bench"),
                    help="where the --s2 product is written once and kept, and the outputs go")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if args.s2:
        bench_s2(args)
        return
    if args.refine:
        bench_refine(args)
        return
    if args.tiles:
        bench_tiles(args)
        return
    print(f"model {os.path.relpath(args.model, ROOT)}, {args.threads} threads, tile {args.tile}, device cpu")
    head = f"{'scene':>13} {'MPix':>7} {'seconds':>8} {'MPix/s':>7} {'outside ORT':>11} {'peak RSS MB':>11}"
    if args.compare_python:
        head += f" {'python s':>9} {'py outside':>10} {'py RSS MB':>9} {'speed-up':>8}"
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            src = os.path.join(tmp, f"scene_{size}.tif")
            make_scene(src, size)
            dst = os.path.join(tmp, "out.tif")
            summary, wall, rss = run([args.binary, "remove", src, dst, "--model", args.model, "--device", "cpu",
                                      "--threads", str(args.threads), "--tile", str(args.tile), "--json", "-q",
                                      "--overwrite"])
            mp = size * size / 1e6
            outside = 1 - summary["inference_seconds"] / summary["seconds"]
            line = f"{size:>6} x {size:<6}{mp:>7.1f} {wall:>8.1f} {mp / wall:>7.2f} {outside:>10.1%} {rss:>11.0f}"
            if args.compare_python:
                py, pwall, prss = run([sys.executable, os.path.join(ROOT, "scripts", "bench_python.py"), args.model,
                                       src, os.path.join(tmp, "py.tif"), "--tile", str(args.tile),
                                       "--threads", str(args.threads)])
                pout = 1 - py["inference_seconds"] / py["seconds"]
                line += f" {pwall:>9.1f} {pout:>9.1%} {prss:>9.0f} {pwall / wall:>7.2f}x"
                os.remove(os.path.join(tmp, "py.tif"))
            print(line)
            os.remove(src)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
