"""Score a Pixel-CR checkpoint on the validation scene blocks, next to the
do-nothing baseline (the cloudy image as output).

    python -m idfcr_train.reports.evaluate --ckpt checkpoints/pixel_cr_rgb.pt \
        --data ../../shared/data/rice2_3s --out models/pixel_cr_rgb.scores.json

Metrics on values in 0..1 (8-bit / 255), data range 1: PSNR, SSIM (Gaussian
11x11, sigma 1.5, see metrics.py), RMSE; averaged per image, then over images.

`--blend-p GRAPH` also scores the output as the default blend would keep it
with GRAPH's cloud probability (the shipped graph's p): p x output +
(1 - p) x input, rounded to 8 bit (`blend_psnr`). A raw gain can sit where
p is 0, which the default output never shows (stop 45: 0.7's graph with a
better shifted network gained 0.07 dB raw on block 3 and lost 0.03 dB
blended); this screens candidates on what ships in the same pass, p cached
per image with `--p-cache DIR`. It matches `blend_all`'s blended figure for
the graph itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import numpy as np
import torch

from idfcr_train.data.pairs import check_held_out, load_rice, split_by_block
from idfcr_train.reports.metrics import psnr, rmse, ssim, to_byte
from idfcr_train.models import ensemble
from idfcr_train.models.ensemble import ShiftEnsemble
from idfcr_train.models.pixel_cr import PixelCR, load_checkpoint


class OnnxPixelCR:
    """An exported Pixel-CR graph called like the PyTorch model: (N, C, H, W)
    tensor in, (clear, second output) tensors out."""

    def __init__(self, path: str, threads: int = 0):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.shifts = meta.get("idfcr.shift_ensemble")
        self.half_scale = meta.get("idfcr.half_scale")

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clear, second = self.session.run(None, {"cloudy": x.numpy()})
        return torch.from_numpy(clear), torch.from_numpy(second)


class ShippedP:
    """The cloud probability of an exported graph (its second output) for a
    validation image, cached as .npy per image id when `cache` is given (the
    maps do not depend on the network being scored; float32, 1 MB a 512 px
    image, so that a cached run scores exactly as the first)."""

    def __init__(self, graph: str, cache: str | None = None, threads: int = 0):
        self.graph, self.cache, self.threads = graph, cache, threads
        self.session = None
        if cache:
            # One folder per graph: maps of another graph would be scored silently.
            os.makedirs(cache, exist_ok=True)
            with open(graph, "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            stamp = os.path.join(cache, "graph.sha256")
            if os.path.exists(stamp):
                with open(stamp) as f:
                    if f.read().strip() != sha:
                        raise SystemExit(f"--p-cache {cache} holds the maps of another graph than {graph}")
            else:
                with open(stamp, "w") as f:
                    f.write(sha + "\n")

    def __call__(self, pair_id: str, cloudy: np.ndarray) -> np.ndarray:
        path = os.path.join(self.cache, f"{pair_id}.npy") if self.cache else None
        if path and os.path.exists(path):
            return np.load(path).astype(np.float32)
        if self.session is None:
            self.session = OnnxPixelCR(self.graph, self.threads)
        _, prob = self.session(torch.from_numpy(cloudy)[None])
        p = prob[0].numpy().astype(np.float32)
        if path:
            np.save(path, p)
        return p


@torch.no_grad()
def evaluate(model: PixelCR | ShiftEnsemble | OnnxPixelCR, val, blend_p=None) -> dict:
    """Per-image and mean scores; `blend_p(id, cloudy) -> p` adds
    `blend_psnr`, the output blended by that p as the runtime does."""
    model.eval()
    rows = []
    for p in val:
        cloudy, clear = p.cloudy, p.clear
        out, _ = model(torch.from_numpy(cloudy)[None])
        pred = out[0].clamp(0, 1).numpy()
        rows.append({
            "id": p.id, "block": p.block,
            "psnr": psnr(pred, clear), "ssim": ssim(pred, clear), "rmse": rmse(pred, clear),
            "baseline_psnr": psnr(cloudy, clear), "baseline_ssim": ssim(cloudy, clear),
            "baseline_rmse": rmse(cloudy, clear),
        })
        if blend_p is not None:
            prob = blend_p(p.id, cloudy)
            rows[-1]["blend_psnr"] = psnr(to_byte(prob * pred + (1 - prob) * cloudy), clear)
    keys = ["psnr", "ssim", "rmse", "baseline_psnr", "baseline_ssim", "baseline_rmse"]
    if blend_p is not None:
        keys.append("blend_psnr")
    summary = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    summary["images"] = len(rows)
    summary["blocks"] = sorted({r["block"] for r in rows})
    per_block = {}
    for b in summary["blocks"]:
        sel = [r for r in rows if r["block"] == b]
        per_block[b] = {k: round(float(np.mean([r[k] for r in sel])), 4) for k in keys}
    return {"summary": summary, "per_block": per_block, "per_image": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default=None, help="default: the blocks stored in the checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--shifts", default=None, metavar="DY,DX;...",
                    help="score the shift ensemble the export builds with the same option (models/ensemble.py)")
    ap.add_argument("--shifted-ckpt", default=None, metavar="CKPT",
                    help="with --shifts: the network run at the shifts (default: --ckpt's own), as the export's option")
    ap.add_argument("--onnx", default=None, metavar="GRAPH",
                    help="score this exported graph's clear output (what ships, ensemble included) with ONNX Runtime "
                         "instead of the checkpoint's network in PyTorch (several times faster on CPU); the checkpoint "
                         "still gives the step and validation blocks")
    ap.add_argument("--blend-p", default=None, metavar="GRAPH",
                    help="also score the output blended by this exported graph's cloud probability (blend_psnr: "
                         "what the default output keeps of it; the shipped graph for candidates)")
    ap.add_argument("--p-cache", default=None, metavar="DIR", help="with --blend-p: keep the p maps here")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N validation images (quick checks)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.p_cache and not args.blend_p:
        raise SystemExit("--p-cache keeps --blend-p's maps: name the graph with --blend-p")
    if args.onnx and args.shifts:
        raise SystemExit("--shifts and --onnx: a graph carries its own shifts (idfcr.shift_ensemble)")
    ensemble.check_options(args.shifts, args.shifted_ckpt)
    model, state = load_checkpoint(args.ckpt)
    blocks = args.val_blocks or state.get("meta", {}).get("val_blocks", "3,9")
    if args.shifts:
        model, other = ensemble.from_options(model, args.shifts, args.shifted_ckpt)
        if other is not None:
            check_held_out(other, blocks, args.shifted_ckpt, args.data)
    if args.onnx:
        model = OnnxPixelCR(args.onnx, args.threads)
    check_held_out(state, blocks, args.ckpt, args.data)
    _, val = split_by_block(load_rice(args.data), set(blocks.split(",")))
    if args.limit:
        val = val[: args.limit]
    t0 = time.time()
    res = evaluate(model, val, ShippedP(args.blend_p, args.p_cache, args.threads) if args.blend_p else None)
    res["summary"].update({"checkpoint_step": state["step"], "training_hours": round(state["wall_s"] / 3600, 2),
                           "scored": os.path.basename(args.onnx) if args.onnx else "checkpoint",
                           "shift_ensemble": getattr(model, "shifts", args.shifts),
                           "half_scale": getattr(model, "half_scale", None),
                           "shifted_ckpt": args.shifted_ckpt,
                           "blend_p": args.blend_p,
                           "eval_seconds": round(time.time() - t0, 1)})
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps(res["summary"], indent=1))


if __name__ == "__main__":
    main()
