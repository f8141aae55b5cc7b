#!/usr/bin/env python3
"""The straightforward Python pipeline we compare idfcr against (run by
`scripts/bench.py --compare-python`): GDAL reads the scene in strips,
onnxruntime runs the same model on the same tiles with the same threads,
numpy blends with the same raised-cosine weights (accumulate and divide),
GDAL writes a DEFLATE GTiff.

    python3 scripts/bench_python.py MODEL INPUT OUTPUT --tile 512 --threads 2

It prints one JSON line: seconds, inference_seconds. It is deliberately
the code a GIS analyst would write, not a tuned one, but it shares idfcr's
tile grid so that both do the same inference work.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import onnxruntime as ort
from osgeo import gdal


def axis_starts(scene: int, tile: int, overlap: int, margin: int, window: int) -> tuple[int, list[int]]:
    single = math.ceil((scene + 2 * margin) / window) * window
    if single <= tile:
        return single, [-margin]
    stride, interior = tile - overlap, tile - 2 * margin
    n = 1 + math.ceil((scene - interior) / stride)
    return tile, [-margin + k * stride for k in range(n)]


def axis_weights(tile: int, overlap: int, margin: int, k: int, n: int) -> np.ndarray:
    w = np.ones(tile, np.float32)
    ramp = overlap - 2 * margin
    rise = lambda p: 0.5 - 0.5 * np.cos(np.pi * (p + 0.5) / ramp)
    if k > 0:
        w[:margin] = 0
        if ramp > 0:
            w[margin:overlap - margin] = rise(np.arange(ramp))
    if k < n - 1:
        w[tile - margin:] = 0
        if ramp > 0:
            w[tile - overlap + margin:tile - margin] *= 1 - rise(np.arange(ramp))
    return w


def mirror(idx: np.ndarray, n: int) -> np.ndarray:
    m = np.mod(idx, 2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t_start = time.time()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    window, halo = int(meta["idfcr.window_px"]), int(meta["idfcr.halo_px"])
    scale, offset = float(meta["idfcr.input_scale"]), float(meta.get("idfcr.input_offset", 0))
    margin = math.ceil(halo / window) * window
    overlap = 2 * margin + 2 * window
    src = gdal.Open(args.input)
    w, h, bands = src.RasterXSize, src.RasterYSize, src.RasterCount
    th, ys = axis_starts(h, args.tile, overlap, margin, window)
    tw, xs = axis_starts(w, args.tile, overlap, margin, window)
    wx = [axis_weights(tw, overlap, margin, k, len(xs)) for k in range(len(xs))]
    dst = gdal.GetDriverByName("GTiff").Create(args.output, w, h, bands, src.GetRasterBand(1).DataType,
                                               ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER"])
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    dmax = 255 if src.GetRasterBand(1).DataType == gdal.GDT_Byte else 65535
    infer = 0.0
    acc = np.zeros((bands, th, w), np.float32)
    wsum = np.zeros((th, w), np.float32)
    for ky, s in enumerate(ys):
        rows = mirror(np.arange(s, s + th), h)
        r0, r1 = rows.min(), rows.max() + 1
        block = src.ReadAsArray(0, int(r0), w, int(r1 - r0)).astype(np.float32).reshape(bands, r1 - r0, w)
        block = (block + offset) * scale
        strip = block[:, rows - r0, :]
        wy = axis_weights(th, overlap, margin, ky, len(ys))
        for kx, x0 in enumerate(xs):
            cols = mirror(np.arange(x0, x0 + tw), w)
            tile = strip[:, :, cols][None]
            t0 = time.time()
            clear = sess.run(["clear"], {"cloudy": np.ascontiguousarray(tile)})[0][0]
            infer += time.time() - t0
            wgt = wy[:, None] * wx[kx][None, :]
            lo, hi = max(x0, 0), min(x0 + tw, w)
            acc[:, :, lo:hi] += clear[:, :, lo - x0:hi - x0] * wgt[None, :, lo - x0:hi - x0]
            wsum[:, lo:hi] += wgt[:, lo - x0:hi - x0]
        f0 = max(s, 0) if ky > 0 else 0
        f1 = min(ys[ky + 1], h) if ky + 1 < len(ys) else h
        if f1 > f0:
            out = acc[:, f0 - s:f1 - s] / np.maximum(wsum[f0 - s:f1 - s], 1e-12)
            out = np.clip(np.round(out / scale - offset), 0, dmax)
            for b in range(bands):
                dst.GetRasterBand(b + 1).WriteArray(out[b], 0, int(f0))
        if ky + 1 < len(ys):
            shift = ys[ky + 1] - s
            acc = np.concatenate([acc[:, shift:], np.zeros((bands, shift, w), np.float32)], 1)
            wsum = np.concatenate([wsum[shift:], np.zeros((shift, w), np.float32)], 0)
    dst = None
    print(json.dumps({"seconds": time.time() - t_start, "inference_seconds": infer}))


if __name__ == "__main__":
    main()
