#!/usr/bin/env python3
"""One command for a machine with an NVIDIA GPU: is the CUDA execution
provider right, how fast is it, and (optionally) train there.

    scripts/device_check.sh --out /tmp/check                 # on the GPU machine
    scripts/device_check.sh --out /tmp/check --train-minutes 5
    scripts/device_check.sh --smoke --out /tmp/check         # tiny, CPU: what the test suite runs

1. parity: every shipped graph (onnx/models/*.onnx; with --smoke the test
   fixtures) on random input of its contract's shape, CUDA execution
   provider against CPU: max |difference| per output;
2. throughput: `idfcr remove` on a generated scene at tile 512 and 1024
   (--smoke: 64 and 128), with --device cuda (cpu without a GPU or with
   --smoke), and one session per GPU (tiles are not batched: the runtime runs
   one tile per session call);
3. refine: `idfcr remove --refine` DDPM-20 on the demo (--smoke: the tiny IND
   fixture, 2 steps, on a crop);
4. training (--train-minutes N): Pixel-CR RGB from the committed checkpoint
   for N minutes on the GPU, the checkpoint written to --out (--smoke: 2 steps
   of the tiny configuration on two generated pairs).

Everything lands in OUT/device_check.json and is printed. Without a GPU the
CUDA columns say why they are empty; the command still runs end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def graph_inputs(sess, meta: dict[str, str], size: int) -> dict[str, np.ndarray]:
    """Random inputs of the shapes the graph's contract implies."""
    rng = np.random.default_rng(0)
    win = int(meta.get("idfcr.window_px", "16"))
    s = max(win, size // win * win)
    feeds = {}
    for i in sess.get_inputs():
        if i.name == "t":
            feeds[i.name] = np.array([500.0], np.float32)
        elif i.name in ("z_t", "cond", "latent"):
            ch = int(meta["idfcr.latent_channels"])
            ls = s if meta.get("idfcr.kind") != "ind_decoder" else max(1, s // int(meta["idfcr.factor"]))
            feeds[i.name] = rng.standard_normal((1, ch, ls, ls)).astype(np.float32)
        else:
            feeds[i.name] = rng.random((1, int(meta["idfcr.bands"]), s, s)).astype(np.float32)
    return feeds


def parity(graphs: list[str], size: int, have_cuda: bool) -> list[dict]:
    import onnxruntime as ort

    rows = []
    for g in graphs:
        cpu = ort.InferenceSession(g, providers=["CPUExecutionProvider"])
        meta = cpu.get_modelmeta().custom_metadata_map
        feeds = graph_inputs(cpu, meta, size)
        t0 = time.time()
        ref = cpu.run(None, feeds)
        row = {"graph": os.path.relpath(g, ROOT), "input": {k: list(v.shape) for k, v in feeds.items()},
               "cpu_seconds": round(time.time() - t0, 3)}
        if have_cuda:
            gpu = ort.InferenceSession(g, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            gpu.run(None, feeds)  # warm-up (kernel selection)
            t0 = time.time()
            got = gpu.run(None, feeds)
            row["cuda_seconds"] = round(time.time() - t0, 3)
            row["max_abs_diff"] = [float(np.abs(a - b).max()) for a, b in zip(ref, got)]
        else:
            row["max_abs_diff"] = "no CUDA execution provider in this onnxruntime"
        rows.append(row)
    return rows


def make_scene(path: str, size: int) -> None:
    from osgeo import gdal

    ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 3, gdal.GDT_Byte, ["TILED=YES"])
    x = np.arange(size, dtype=np.float32)[None, :]
    y = np.arange(size, dtype=np.float32)[:, None]
    for b in range(3):
        v = 120 + 60 * np.sin(x / 37 + b) * np.cos(y / 53) + 25 * np.sin(x * y / 4099)
        ds.GetRasterBand(b + 1).WriteArray(np.clip(v, 1, 255).astype(np.uint8))
    ds = None


def run_idfcr(binary: str, args: list[str]) -> tuple[dict, float, float]:
    t0 = time.time()
    proc = subprocess.Popen([binary, *args, "--json", "-q", "--overwrite"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # peak RSS of the child, from the kernel
    if status != 0:
        raise SystemExit(f"idfcr {' '.join(args)} failed: {err.decode().strip()}")
    return json.loads(out), time.time() - t0, round(usage.ru_maxrss / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for device_check.json (and a trained checkpoint)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and fixture models, on CPU (the test suite)")
    ap.add_argument("--train-minutes", type=float, default=0.0)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "idfcr"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(args.binary):
        raise SystemExit(f"{args.binary} is missing: cargo build --release (or pass --binary)")
    have_cuda = "CUDAExecutionProvider" in providers() and not args.smoke
    device = "cuda" if have_cuda else "cpu"
    report: dict = {"smoke": args.smoke, "device": device, "onnxruntime_providers": providers()}
    smi = shutil.which("nvidia-smi")
    report["gpus"] = (subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.strip().splitlines()
                      if smi else [])

    models = os.path.join(ROOT, "testdata" if args.smoke else "onnx", "models")
    graphs = sorted(os.path.join(models, f) for f in os.listdir(models) if f.endswith(".onnx"))
    report["parity"] = parity(graphs, 32 if args.smoke else 256, have_cuda)

    rgb = os.path.join(ROOT, "testdata", "models", "tiny_conv.onnx") if args.smoke else \
        os.path.join(ROOT, "onnx", "models", "pixel_cr_rgb.onnx")
    size, tiles = (96, [64, 128]) if args.smoke else (2048, [512, 1024])
    report["throughput"] = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = os.path.join(tmp, "scene.tif")
        make_scene(scene, size)
        for tile in tiles:
            summary, wall, rss = run_idfcr(args.binary, ["remove", scene, os.path.join(tmp, "out.tif"), "--model", rgb,
                                                         "--device", device, "--tile", str(tile)])
            report["throughput"].append({"scene": f"{size}x{size}", "tile": tile, "seconds": round(wall, 2),
                                         "mpix_per_s": round(size * size / 1e6 / wall, 3),
                                         "inference_seconds": summary.get("inference_seconds"),
                                         "peak_rss_mb": rss})
        demo = os.path.join(ROOT, "testdata", "demo", "landsat8_cloudy.tif")
        refine = ["remove", demo, os.path.join(tmp, "refined.tif"), "--refine", "--device", device]
        if args.smoke:
            crop = os.path.join(tmp, "crop.tif")
            subprocess.run(["gdal_translate", "-q", "-srcwin", "0", "0", "64", "64", demo, crop], check=True)
            refine = ["remove", crop, os.path.join(tmp, "refined.tif"), "--refine", "--device", device,
                      "--model", rgb, "--ind-model", os.path.join(ROOT, "testdata", "models", "ind_tiny"),
                      "--steps", "2"]
        else:
            refine += ["--steps", "20"]
        summary, wall, rss = run_idfcr(args.binary, refine)
        report["refine"] = {"seconds": round(wall, 2), "peak_rss_mb": rss, **(summary.get("refine") or {})}

        if args.train_minutes > 0 or args.smoke:
            report["training"] = train(args, tmp, have_cuda)

    path = os.path.join(args.out, "device_check.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(json.dumps(report, indent=1))
    print(f"written {path}")


def train(args, tmp: str, have_cuda: bool) -> dict:
    """Pixel-CR RGB training on this machine; the checkpoint goes to --out."""
    ckpt = os.path.join(args.out, "pixel_cr_rgb.pt")
    cmd = [sys.executable, "-m", "idfcr_train.training.train_pixel_cr", "--ckpt", ckpt, "--save-minutes", "2"]
    if args.smoke:
        from PIL import Image

        data = os.path.join(tmp, "pairs")
        os.makedirs(os.path.join(data, "cloudy_image"))
        os.makedirs(os.path.join(data, "ground_truth"))
        rng = np.random.default_rng(1)
        with open(os.path.join(data, "pairs.csv"), "w") as f:
            f.write("id,scene_block,cloudy,clear\n")
            for i in range(2):
                clear = (rng.random((64, 64, 3)) * 200).astype(np.uint8)
                cloudy = np.clip(clear.astype(int) + 60, 0, 255).astype(np.uint8)
                Image.fromarray(cloudy).save(os.path.join(data, "cloudy_image", f"{i}.png"))
                Image.fromarray(clear).save(os.path.join(data, "ground_truth", f"{i}.png"))
                f.write(f"{i},{i},cloudy_image/{i}.png,ground_truth/{i}.png\n")
        cmd += ["--data", data, "--val-blocks", "1", "--config", "tiny", "--crop", "32", "--batch", "2",
                "--max-steps", "2", "--hours", "0.05", "--eval-every", "1000"]
    else:
        shutil.copy(os.path.join(ROOT, "onnx", "checkpoints", "pixel_cr_rgb.pt"), ckpt)
        cmd += ["--data", os.path.join(ROOT, "..", "shared", "data", "rice2_3s"), "--config", "cpu",
                "--shifted-windows", "--crop", "128", "--batch", "8", "--align-labels", "--identity", "0.1",
                "--synthetic", "0.25", "--opacity-target", "4", "--ema", "0.995", "--lr", "1e-4",
                "--hours", str(args.train_minutes / 60), "--resume"]
    t0 = time.time()
    subprocess.run(cmd, cwd=os.path.join(ROOT, "onnx"), check=True)
    import torch

    state = torch.load(ckpt, map_location="cpu")
    return {"checkpoint": ckpt, "steps": state["step"], "seconds": round(time.time() - t0, 1), "cuda": have_cuda}


if __name__ == "__main__":
    main()
