"""Image-by-image comparison of two `reports.evaluate` results: the ship
decision for a candidate against the shipped model on the same validation
images (the candidate's JSON first).

    python -m idfcr_train.reports.paired /tmp/candidate.scores.json models/pixel_cr_rgb.scores.json

Prints, overall and per scene block: both means, the paired difference with
a bootstrap 95 % interval (reports.ablation.paired), how many images each
wins, and how many fall more than 0.5 dB below doing nothing. Refuses two
results that did not score the same images. `--json OUT` writes the same.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from idfcr_train.reports.ablation import paired


def load_rows(path: str) -> list[dict]:
    with open(path) as f:
        rows = json.load(f).get("per_image")
    if not rows:
        raise SystemExit(f"{path}: no per_image rows (a reports.evaluate result is needed)")
    return rows


def compare_rows(a: list[dict], b: list[dict]) -> dict:
    """{"all": ..., "block <b>": ...}: a against b on the images both scored."""
    if sorted(r["id"] for r in a) != sorted(r["id"] for r in b):
        only_a = sorted({r["id"] for r in a} - {r["id"] for r in b})
        only_b = sorted({r["id"] for r in b} - {r["id"] for r in a})
        raise SystemExit(f"the two results scored different images (only in the first: {only_a[:5]}, "
                         f"only in the second: {only_b[:5]})")
    by_id = {r["id"]: r for r in b}
    pairs = [(r, by_id[r["id"]]) for r in a]
    out = {}
    groups = {"all": pairs}
    for blk in sorted({r["block"] for r in a}):
        groups[f"block {blk}"] = [p for p in pairs if p[0]["block"] == blk]
    for name, ps in groups.items():
        ra, rb = [p[0] for p in ps], [p[1] for p in ps]
        below = lambda rows: int(sum(r["psnr"] < r["baseline_psnr"] - 0.5 for r in rows))
        out[name] = {
            "images": len(ps),
            "a_psnr": float(np.mean([r["psnr"] for r in ra])), "b_psnr": float(np.mean([r["psnr"] for r in rb])),
            "a_ssim": float(np.mean([r["ssim"] for r in ra])), "b_ssim": float(np.mean([r["ssim"] for r in rb])),
            "nothing_psnr": float(np.mean([r["baseline_psnr"] for r in ra])),
            "a_below_nothing_0_5": below(ra), "b_below_nothing_0_5": below(rb),
            "a_worst_vs_nothing": float(min(r["psnr"] - r["baseline_psnr"] for r in ra)),
            "b_worst_vs_nothing": float(min(r["psnr"] - r["baseline_psnr"] for r in rb)),
            "a_minus_b": paired([r["psnr"] for r in ra], [r["psnr"] for r in rb]),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="the candidate's reports.evaluate JSON")
    ap.add_argument("b", help="the reference's (e.g. the shipped model's scores.json)")
    ap.add_argument("--json", default=None, metavar="OUT")
    args = ap.parse_args(argv)
    table = compare_rows(load_rows(args.a), load_rows(args.b))
    for name, r in table.items():
        d = r["a_minus_b"]
        print(f"{name:>8} ({r['images']}): {r['a_psnr']:.2f} / {r['a_ssim']:.4f} against {r['b_psnr']:.2f} / "
              f"{r['b_ssim']:.4f} (nothing {r['nothing_psnr']:.2f}); paired {d['mean_db']:+.2f} dB "
              f"(95 % {d['ci95_db'][0]:+.2f}..{d['ci95_db'][1]:+.2f}), wins {d['a_wins']}/{d['images']}; "
              f"> 0.5 dB below nothing {r['a_below_nothing_0_5']} against {r['b_below_nothing_0_5']}; "
              f"worst {r['a_worst_vs_nothing']:+.2f} against {r['b_worst_vs_nothing']:+.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"a": args.a, "b": args.b, **table}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
