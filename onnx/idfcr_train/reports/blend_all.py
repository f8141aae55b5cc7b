"""The default (blended) output of an exported RGB graph on every validation
image, next to its raw output and doing nothing, and every clear reference
given as input. `calibrate.py` chooses the calibration on a subset (every
`--stride`-th image: every second for 0.7); this scores all of them, and
`card_blend.py` reports the images the calibration saw apart from those it
did not (the same scenes' other tiles: not an independent test).

    python -m idfcr_train.reports.blend_all --onnx models/pixel_cr_rgb.onnx \
        --data ../../shared/data/rice2_3s --out models/pixel_cr_rgb.blend_all.json

Runs the graph as the runtime does (input in model units, whole 512 px
images: the tiled result equals the whole-image one) and writes outputs as
a Byte raster would hold them: out = p x model + (1 - p) x input, clipped
and rounded to 8 bit; raw = the model's output, the same way.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort

from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.reports.metrics import psnr, ssim, to_byte


def summarise(rows: list[dict]) -> dict:
    mean = lambda k: float(np.mean([r[k] for r in rows]))
    return {
        "n": len(rows), "blend": mean("blend"), "raw": mean("raw"), "nothing": mean("nothing"),
        "blend_ssim": mean("blend_ssim"),
        "blend_below_nothing_0_5": int(sum(r["blend"] < r["nothing"] - 0.5 for r in rows)),
        "raw_below_nothing_0_5": int(sum(r["raw"] < r["nothing"] - 0.5 for r in rows)),
        "blend_worst_vs_nothing": float(min(r["blend"] - r["nothing"] for r in rows)),
        "clear_in_min": float(min(r["clear_in"] for r in rows)),
        "clear_in_below_40": int(sum(r["clear_in"] < 40.0 for r in rows)),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stride", type=int, default=1,
                    help="every n-th validation image (a cheaper check of another model's safety on these blocks)")
    args = ap.parse_args(argv)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.onnx, so)
    _, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    val = val[:: max(1, args.stride)]
    rows = []
    for p in val:
        x, y = p.cloudy.astype(np.float32), p.clear.astype(np.float32)
        model, prob = (o[0] for o in session.run(None, {"cloudy": x[None]}))
        blend = to_byte(prob * model + (1 - prob) * x)
        model_c, prob_c = (o[0] for o in session.run(None, {"cloudy": y[None]}))
        clear_in = to_byte(prob_c * model_c + (1 - prob_c) * y)
        rows.append({"id": p.id, "block": p.block, "blend": psnr(blend, y), "raw": psnr(to_byte(model), y),
                     "nothing": psnr(x, y), "blend_ssim": ssim(blend, y), "clear_in": psnr(clear_in, y),
                     "clear_p_mean": float(prob_c.mean())})
        print(f"{p.id}: blend {rows[-1]['blend']:.2f} raw {rows[-1]['raw']:.2f} clear in {rows[-1]['clear_in']:.1f}",
              flush=True)
    out = {"onnx": args.onnx, "all": summarise(rows)}
    for b in sorted({r["block"] for r in rows}):
        out[f"block{b}"] = summarise([r for r in rows if r["block"] == b])
    out["command"] = ("python -m idfcr_train.reports.blend_all --onnx " + args.onnx + " --data " + args.data
                      + " --val-blocks " + args.val_blocks + (f" --stride {args.stride}" if args.stride > 1 else "")
                      + " --out " + args.out)
    out["rows"] = rows
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
