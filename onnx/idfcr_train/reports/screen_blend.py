"""Screen a cloud detector or blend gate for the RGB blend on every
validation image, in minutes, before the half-hour calibration and export.

    python -m idfcr_train.reports.screen_blend --ckpt checkpoints/pixel_cr_rgb.pt \
        --data ../../shared/data/rice2_3s --maps /tmp/maps --detector checkpoints/gate_rgb.pt \
        --grid t0=0.05,0.1,0.3 --out /tmp/screen.json

The Pixel-CR outputs (cloudy and clear reference of every validation image
and the Landsat 8 demo) are computed once into --maps (float16 .npz per
image, about 25 min for 133 images at two threads) and reused for any
detector. The calibration is chosen as `calibrate.py --stride 2` chooses it
(same grid keys, same admission rule), on the even positions of the
validation list, and reported on all images and on the odd positions that
the choice did not see. `--detector shipped` scores the detector the
checkpoint carries with its shipped calibration (the reference row).
Float16 maps move PSNR by well under 0.01 dB against `calibrate.py`'s own
figures; `reports.blend_all` through an exported graph has the last word.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.models.detector import detector_map, load_detector
from idfcr_train.models.pixel_cr import load_checkpoint
from idfcr_train.models.probability import Calibration
from idfcr_train.reports.clear_fidelity import load_demo
from idfcr_train.training.calibrate import Scorer, choose, grid_search, narrowed_grid
from idfcr_train.training.train_pixel_cr import crop_to_window


@torch.no_grad()
def fill_maps(model, state: dict, val: list, maps: str) -> None:
    """Pixel-CR's output and attention (and the carried detector's map) for
    every validation image and the demo, cloudy and clear in; skips images
    already there, so an interrupted fill resumes."""
    det = load_detector(state["detector"]) if state.get("detector") else None
    win = model.cfg.window
    items = [(p.id, p.block, p.cloudy, p.clear) for p in val]
    cloudy, clear, _ = load_demo()
    items.append(("demo", "demo", cloudy, clear))
    os.makedirs(maps, exist_ok=True)
    for pid, block, c, g in items:
        path = os.path.join(maps, f"{pid}.npz")
        if os.path.exists(path):
            continue
        rec = {"block": block, "cloudy": np.ascontiguousarray(crop_to_window(c, win)),
               "clear": np.ascontiguousarray(crop_to_window(g, win))}
        for tag, img in (("c", rec["cloudy"]), ("g", rec["clear"])):
            x = torch.from_numpy(img)[None]
            out, att = model(x)
            rec[f"out_{tag}"] = out[0].clamp(0, 1).numpy().astype(np.float16)
            rec[f"att_{tag}"] = att[0, 0].numpy().astype(np.float16)
            if det is not None:
                rec[f"det_{tag}"] = det(x)[0, 0].numpy().astype(np.float16)
        np.savez(path + ".tmp.npz", **rec)
        os.replace(path + ".tmp.npz", path)
        print(pid, flush=True)


@torch.no_grad()
def load_cases(maps: str, ids: list[str], detector) -> tuple[list[dict], dict]:
    """Calibration cases (calibrate.py's layout) from the maps; the map slot
    holds `detector`'s output, or the carried detector's with None."""
    cases, demo = [], None
    for pos, pid in enumerate(ids + ["demo"]):
        d = np.load(os.path.join(maps, f"{pid}.npz"))
        rec = {"id": pid, "pos": pos, "block": str(d["block"]), "cloudy": d["cloudy"], "clear": d["clear"]}
        for tag, img, key in (("c", d["cloudy"], "out"), ("g", d["clear"], "ident")):
            x = torch.from_numpy(img)[None]
            out = torch.from_numpy(d["out_" + tag].astype(np.float32))[None]
            att = torch.from_numpy(d["att_" + tag].astype(np.float32))[None, None]
            m = (torch.from_numpy(d["det_" + tag].astype(np.float32))[None, None] if detector is None
                 else detector_map(detector, x, out, att))
            rec[key] = (out, m, att)
        if pid == "demo":
            demo = rec
        elif not np.array_equal(rec["cloudy"], rec["clear"]):
            cases.append(rec)
    return cases, demo


def rounded(res: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items() if k != "val_psnr_per_block"} | {
        "per_block": {b: round(v, 3) for b, v in res.get("val_psnr_per_block", {}).items()}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="the Pixel-CR checkpoint (its carried detector and calibration: "
                                                  "the reference)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--maps", required=True, help="folder of the model's outputs (filled when missing)")
    ap.add_argument("--detector", required=True, help="detector or gate checkpoint, or 'shipped'")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="as calibrate.py's --grid")
    ap.add_argument("--with-attention", action="store_true", help="also try the model's attention as a second cue")
    ap.add_argument("--max-clear-below-40", type=int, default=8)
    ap.add_argument("--max-below-nothing", type=int, default=4)
    ap.add_argument("--cloudy-refs", default="241,260")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, state = load_checkpoint(args.ckpt)
    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    fill_maps(model, state, val, args.maps)
    detector = None if args.detector == "shipped" else load_detector(args.detector)
    cases, demo = load_cases(args.maps, [p.id for p in val], detector)
    # calibrate.py --stride 2 takes every second validation pair, then drops
    # pairs whose two dates are the same image.
    seen, unseen = [c for c in cases if c["pos"] % 2 == 0], [c for c in cases if c["pos"] % 2 == 1]
    refs = frozenset(i for i in args.cloudy_refs.split(",") if i)
    rule = argparse.Namespace(no_demo_constraint=True, max_clear_below_40=args.max_clear_below_40,
                              max_below_nothing=args.max_below_nothing, ring=0)
    if detector is None:
        cal, n_ok = Calibration.from_dict(state["probability"]), None
    else:
        rows = grid_search(Scorer(seen, demo, False, refs), True, args.with_attention, narrowed_grid(args.grid))
        best, ok = choose(rows, rule)
        cal, n_ok = Calibration.from_dict(best["calibration"]), len(ok)
    every = Scorer(cases, demo, False, refs)
    res = {"detector": args.detector, "calibration": cal.to_dict(), "grid_points_meeting_rule": n_ok,
           "all": rounded(every(cal)), "unseen": rounded(Scorer(unseen, None, False, refs)(cal)),
           "raw": round(every(None)["val_psnr"], 3), "nothing": round(every.nothing()["val_psnr"], 3),
           "n_all": len(cases), "n_unseen": len(unseen)}
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
