"""Score a Sentinel-2 group model per band on the validation scenes, next to
the do-nothing baseline, and write its model card.

    python -m idfcr_train.reports.s2_report --ckpt checkpoints/s2_10m.pt \\
        --data ../../shared/data/sen12mscr_oriolac --ts-data ../../shared/data/sen12mscr_ts_oriolac \\
        --onnx models/s2_10m.onnx --scores models/s2_10m.scores.json --card models/s2_10m.md

Metrics on reflectance (DN / 10000), data range 1: PSNR, SSIM (see
metrics.py), RMSE per band, averaged over images; the validation scenes are
the ones stored in the checkpoint (split by scene, never at random).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import numpy as np
import torch

from idfcr_train.data.pairs import split_by_block
from idfcr_train.reports.metrics import psnr, rmse, ssim
from idfcr_train.models.pixel_cr import PixelCR, load_checkpoint
from idfcr_train.reports.card_blend import blend_section
from idfcr_train.data.s2 import GROUPS, load_s2

# An independent retrain of IDF-CR's pixel stage on WHUS2-CRv (13 bands).
ANCHOR = {"psnr": 29.0, "ssim": 0.858}


@torch.no_grad()
def score(model: PixelCR, val, bands: list[str]) -> dict:
    model.eval()
    win = model.cfg.window
    rows = []
    for p in val:
        h, w = p.cloudy.shape[-2:]
        cloudy = p.cloudy[:, : h - h % win, : w - w % win]
        clear = p.clear[:, : h - h % win, : w - w % win]
        pred = model(torch.from_numpy(np.ascontiguousarray(cloudy))[None])[0][0].clamp(min=0).numpy()
        for b, name in enumerate(bands):
            rows.append({
                "id": p.id, "scene": p.block, "band": name,
                "psnr": psnr(pred[b], clear[b]), "ssim": ssim(pred[b], clear[b]), "rmse": rmse(pred[b], clear[b]),
                "baseline_psnr": psnr(cloudy[b], clear[b]), "baseline_ssim": ssim(cloudy[b], clear[b]),
                "baseline_rmse": rmse(cloudy[b], clear[b]),
            })
    keys = ["psnr", "ssim", "rmse", "baseline_psnr", "baseline_ssim", "baseline_rmse"]

    def mean(sel):
        return {k: round(float(np.mean([r[k] for r in sel])), 4) for k in keys}

    per_band = {name: mean([r for r in rows if r["band"] == name]) for name in bands}
    scenes = sorted({r["scene"] for r in rows})
    per_scene = {s: mean([r for r in rows if r["scene"] == s]) for s in scenes}
    summary = mean(rows)
    summary.update({"images": len(val), "scenes": scenes, "bands": bands})
    return {"summary": summary, "per_band": per_band, "per_scene": per_scene, "per_image_band": rows}


def intro_section(name: str, group: str, s: dict) -> list[str]:
    """Title, what the model is for, and its data and scene split."""
    bands = s["bands"]
    return [
        f"# {name}: Pixel-CR for the Sentinel-2 {group.replace('_l2a', '')} group ({' '.join(bands)})",
        "",
        "Stage 1 of IDF-CR (coarse cloud removal in pixel space) for one Sentinel-2 resolution",
        f"group, trained by us on CPU. `idfcr s2` uses it by default for the bands {' '.join(bands)}",
        "of a product or band stack, and so does `idfcr remove` on a `SENTINEL2_*` subdataset or a",
        "band stack given with `--s2-bands`" + (" (L2A products carry no B10)." if group == "60m_l2a" else "."),
        "",
        "## Data",
        "",
        "- SEN12MS-CR pairs (`sen12mscr_oriolac`: cloudy and clear Sentinel-2 L1C patches of the same",
        "  ground, days to weeks apart) and the SEN12MS-CR-TS time series (`sen12mscr_ts_oriolac`:",
        "  each cloudy or hazy date paired with the nearest clear date, and the clear dates as",
        "  (clear, clear) pairs), plus synthetic clouds over the clear images.",
        f"- Bands {' '.join(bands)} as reflectance (DN / 10000); the 20 m and 60 m groups are derived",
        "  from the 10 m patches by area averaging (2 x 2 and 6 x 6).",
        f"- Validation: scenes {', '.join(s['scenes'])} ({s['images']} pairs), held out whole (split by",
        "  scene, never at random). Training: every other scene.",
        "",
    ]


def model_section(state: dict, onnx_path: str, command: str) -> list[str]:
    """The configuration, the training recipe and budget from the checkpoint,
    the graph's file and hash, and its input convention."""
    meta, cfg = state.get("meta", {}), state["config"]
    with open(onnx_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    return [
        "## Model",
        "",
        f"- Config: `{json.dumps(cfg)}`",
        f"- Training: {state['step']} steps, {state['wall_s'] / 3600:.2f} h of wall time in all, on one or two CPU threads",
        f"  beside other training (each leg's command and threads are in CHANGELOG.md), crop {meta.get('crop')},",
        f"  batch {meta.get('batch')}, synthetic share {meta.get('synthetic')},",
        "  loss 100 x L1 + MSE(attention, target) with the L1 term the geometric mean of the",
        "  per-band L1s (so that dark bands such as B10 count as much as bright ones), each band",
        "  standardised inside the network by the clear training images' mean and deviation;",
        "  B10 labels of 'clear' dates that carry cirrus themselves (mean B10 above 0.01, the",
        "  clear dates of ROIs1970_fall_136) get no loss. Adam(0.5, 0.999), lr 4e-4 (or cosine-decayed",
        "  within a run with `--lr-end`: each run's schedule is in CHANGELOG.md).",
        *([f"- Weights: an exponential moving average of the training weights (decay {meta['ema']}, "
           "`--ema`, since the run that set it) is what ships; training resumes from the raw weights."]
          if meta.get("ema") else []),
        f"- Command (from `onnx/`): `{command}`",
        f"- File: `{onnx_path.split('/')[-1]}`, SHA-256 `{sha}`",
        "- Input: reflectance = (DN + offset) / 10000; the runtime applies the product's",
        "  RADIO_ADD_OFFSET / BOA_ADD_OFFSET (baseline 04.00 and later) before the model and",
        "  takes it off again after, so outputs keep the product's DN convention.",
        "",
    ]


def scores_section(scores: dict) -> list[str]:
    """The raw model against doing nothing, per band (with the mean), per
    scene, and set against the published anchor."""
    s = scores["summary"]
    lines = [
        "## Validation scores of the raw model (reflectance, data range 1)",
        "",
        "| band | PSNR | do nothing | SSIM | do nothing | RMSE | do nothing |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in s["bands"]:
        r = scores["per_band"][b]
        lines.append(f"| {b} | {r['psnr']:.2f} | {r['baseline_psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['baseline_ssim']:.4f} | {r['rmse']:.4f} | {r['baseline_rmse']:.4f} |")
    lines.append(f"| **mean** | **{s['psnr']:.2f}** | {s['baseline_psnr']:.2f} | **{s['ssim']:.4f}** | "
                 f"{s['baseline_ssim']:.4f} | **{s['rmse']:.4f}** | {s['baseline_rmse']:.4f} |")
    lines += ["", "Per scene:", "", "| scene | PSNR | do nothing | SSIM | do nothing |", "|---|---|---|---|---|"]
    for sc, r in scores["per_scene"].items():
        lines.append(f"| {sc} | {r['psnr']:.2f} | {r['baseline_psnr']:.2f} | {r['ssim']:.4f} | {r['baseline_ssim']:.4f} |")
    beats = s["psnr"] > s["baseline_psnr"]
    lines += [
        "",
        f"Mean PSNR {'above' if beats else 'NOT above'} the do-nothing baseline by "
        f"{s['psnr'] - s['baseline_psnr']:+.2f} dB.",
        "Anchor: an independent retrain of IDF-CR's pixel stage on WHUS2-CRv reports PSNR "
        f"{ANCHOR['psnr']} dB and SSIM {ANCHOR['ssim']} over 13 bands; our mean is "
        f"{s['psnr'] - ANCHOR['psnr']:+.2f} dB PSNR and {s['ssim'] - ANCHOR['ssim']:+.4f} SSIM from it.",
        "The data differ (our 6 validation pairs are real pairs days to weeks apart, and bands such",
        "as B10 that barely change between dates lift mean PSNR), so this is indicative only; the",
        "comparison that counts here is against doing nothing on the same pairs.",
        "",
    ]
    return lines


def limits_section(onnx_path: str, hours: float) -> list[str]:
    """What the model cannot do, and where its scores file is."""
    return [
        "## Limits",
        "",
        "- Very little training data (about 20 real pairs from 4 scenes plus one time series) and",
        f"  {hours:.2f} h of CPU: expect blurred ground under thick cloud.",
        "- Groups are cleaned independently; the 10 m model never sees the 20 m or 60 m bands.",
        "",
        "Scores: `" + onnx_path.replace(".onnx", ".scores.json").split("/")[-1] + "`.",
        "",
    ]


def version_line(name: str, onnx_path: str) -> list[str]:
    """The graph's version and the contact sheet `scripts/contact_sheets.py` draws."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(onnx_path, load_external_data=False).metadata_props}
    return [
        f"Version **{meta.get('idfcr.version', '?')}** (the `idfcr.version` of `{name}.onnx`). Contact sheet "
        f"(cloudy | output | reference | p, fixed validation images): [{name}.sheet.png]({name}.sheet.png).",
        "",
    ]


def card(name: str, group: str, state: dict, scores: dict, onnx_path: str, command: str) -> str:
    """The model card (Markdown) of one group model: one function per section."""
    lines = intro_section(name, group, scores["summary"])
    lines[lines.index("## Data"):lines.index("## Data")] = version_line(name, onnx_path)
    lines += model_section(state, onnx_path, command)
    lines += scores_section(scores)
    lines += blend_section(onnx_path.replace(".onnx", ".calibration.json"))
    lines += limits_section(onnx_path, state["wall_s"] / 3600)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ts-data", default=None)
    ap.add_argument("--onnx", help="exported model (for the card)")
    ap.add_argument("--scores", required=True, help="write the scores JSON here")
    ap.add_argument("--card", help="write the model card here (needs --onnx)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, state = load_checkpoint(args.ckpt)
    meta = state.get("meta", {})
    group = meta["s2_group"]
    _, val = split_by_block(load_s2(args.data, args.ts_data, group), set(meta["val_blocks"].split(",")))
    t0 = time.time()
    res = score(model, val, GROUPS[group][0])
    res["summary"].update({"group": group, "checkpoint_step": state["step"],
                           "training_hours": round(state["wall_s"] / 3600, 2),
                           "eval_seconds": round(time.time() - t0, 1)})
    with open(args.scores, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps(res["summary"], indent=1))
    if args.card:
        c = state["config"]
        cmd = (f"python -m idfcr_train.training.train_pixel_cr --s2-group {group} --data ../../shared/data/sen12mscr_oriolac "
               f"--ts-data ../../shared/data/sen12mscr_ts_oriolac --ckpt {args.ckpt} --config cpu --dim {c['dim']} "
               f"--heads {c['heads']} --window {c['window']} --shifted-windows --crop {meta.get('crop')} "
               f"--batch {meta.get('batch')}"
               + (f" --ema {meta['ema']}" if meta.get("ema") else "") + " --hours H --resume")
        name = args.onnx.split("/")[-1].removesuffix(".onnx")
        with open(args.card, "w") as f:
            f.write(card(name, group, state, res, args.onnx, cmd))


if __name__ == "__main__":
    main()
