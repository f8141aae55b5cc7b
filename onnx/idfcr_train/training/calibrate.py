"""Choose the cloud-probability calibration (see probability.py) of a
Pixel-CR checkpoint on validation images from scenes no training saw, and
measure it.

    python -m idfcr_train.training.calibrate --ckpt checkpoints/pixel_cr_rgb.pt \
        --data ../../shared/data/rice2_3s --out models/pixel_cr_rgb.calibration.json --write-ckpt

For every candidate (t0, t1, dilate, blur) on a grid, on the validation
blocks (full images): PSNR of the blend against the clear reference, and
the clear reference given as input (it must come back unchanged: >= 40 dB).
The chosen one maximises mean validation PSNR among those whose clear-input
PSNR is >= 40 dB on every clear reference and on the Landsat 8 demo's clear
image (and, with --ring R, whose blur is at most R times the dilation, which
keeps cloud edges out of the feathering ramp). Reported next to the raw model and doing nothing, plus the
detector's precision and recall (p > 0.5 against cloud opacity > 0.1) on
data with known cloud: the demo's synthetic clouds and synthetic clouds
over the validation clear images.
`--write-ckpt` stores the chosen calibration in the checkpoint, where
`export/pixel_cr.py` picks it up.

`--detector CKPT` takes the attention map from a dedicated cloud detector
(models/detector.py) instead of the model's attention head, with round feathering
(models/probability.py); `--write-ckpt` then stores the detector's weights in the
Pixel-CR checkpoint too, so the export embeds it. `--with-attention` (with
`--detector`) also tries the model's own attention as a second cue, joined
with the detector's by max (ATT_GRID; models/probability.py says why), and
`--cloudy-refs` leaves out of the clear-input constraint the references that
hold cloud themselves (looked at).

`--dark-channel MIN_PX,MEAN_PX` takes the map from the local dark channel
(models/haze.py: no weights, a haze cue) with round feathering; `--write-ckpt`
stores it as the checkpoint's detector entry, which the export embeds. For
the RICE1 haze model, whose attention does not separate hazy scenes from
clear ones.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import time

import numpy as np
import torch

from idfcr_train.checkpoint import load_state
from idfcr_train.reports.clear_fidelity import load_demo
from idfcr_train.data import load_pairs
from idfcr_train.data.pairs import check_held_out, split_by_block
from idfcr_train.reports.metrics import psnr
from idfcr_train.models.detector import detector_map
from idfcr_train.models.pixel_cr import load_checkpoint
from idfcr_train.models.probability import Calibration, blend, cloud_probability
from idfcr_train.data.synth_clouds import add_clouds

GRID = {
    "t0": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    "width": [0.1, 0.3],
    "dilate_px": [0, 4, 8, 16],
    "blur_px": [4, 8, 16],
}


ATT_GRID = {"att_t0": [0.3, 0.4, 0.5, 0.6], "att_width": [0.1, 0.3]}


@torch.no_grad()
def run(model, img: np.ndarray, hi: float | None = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model output clipped as the runtime writes it (8-bit: 0..1 in model
    units; reflectance: >= 0), the map p is made from (the raw attention
    here; `with_detector` swaps in a detector's or gate's) and the model's
    own attention (the second cue)."""
    x = torch.from_numpy(np.ascontiguousarray(img))[None]
    out, att = model(x)
    return out.clamp(0, hi), att, att


@torch.no_grad()
def with_detector(cases: list[dict], demo: dict | None, detector) -> None:
    """Swap the map in every (output, map, attention) triple for the
    detector's. The cache holds the model's outputs only (the expensive
    part), so any detector or gate is scored on them in a minute."""
    def swap(img: np.ndarray, res: tuple) -> tuple:
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        return res[0], detector_map(detector, x, res[0], res[2]), res[2]

    for c in cases:
        c["out"], c["ident"], c["syn_out"] = (swap(c["cloudy"], c["out"]), swap(c["clear"], c["ident"]),
                                              swap(c["syn"], c["syn_out"]))
    if demo is not None:
        demo["out"], demo["ident"] = swap(demo["cloudy"], demo["out"]), swap(demo["clear"], demo["ident"])


def precision_recall(p: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    pred = p > 0.5
    tp = float((pred & truth).sum())
    return tp / max(float(pred.sum()), 1.0), tp / max(float(truth.sum()), 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-blocks", default=None, help="default: RICE blocks 3,9; Sentinel-2 validation scenes")
    ap.add_argument("--s2-group", choices=["10m", "20m", "60m", "60m_l2a"],
                    help="a Sentinel-2 group model: SEN12MS-CR pairs (--data) and time series (--ts-data)")
    ap.add_argument("--ts-data", default=None)
    ap.add_argument("--stride", type=int, default=1, help="every n-th validation image")
    ap.add_argument("--out", required=True)
    ap.add_argument("--write-ckpt", action="store_true", help="store the chosen calibration in the checkpoint")
    ap.add_argument("--ring", type=float, default=0.0,
                    help="largest blur / dilation ratio allowed, against cloud-edge rings (0: no limit)")
    ap.add_argument("--no-demo-constraint", action="store_true",
                    help="leave the Landsat 8 demo's clear image out of the 40 dB constraint (reported still)")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="narrow a grid axis (t0, width, dilate_px, blur_px, att_t0, att_width) to these values; "
                         "t0=1 leaves the detector out (the attention alone)")
    ap.add_argument("--max-clear-below-40", type=int, default=0,
                    help="admit calibrations that give up to K clear references back below 40 dB (default 0)")
    ap.add_argument("--max-below-nothing", type=int, default=None,
                    help="and at most B validation images more than 0.5 dB below doing nothing (default: no limit)")
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help="keep the model outputs here (GBs for the full validation set): a later grid over the "
                         "same weights and images skips the forward passes")
    ap.add_argument("--with-attention", action="store_true",
                    help="with --detector: also try the model's attention as a second cue (ATT_GRID, joined by max)")
    ap.add_argument("--cloudy-refs", default="",
                    help="comma-separated validation ids whose clear reference holds cloud (looked at): "
                         "left out of the clear-input constraint")
    ap.add_argument("--detector", default=None,
                    help="cloud detector checkpoint (training/train_detector.py) as the source of p")
    ap.add_argument("--dark-channel", default=None, metavar="MIN_PX,MEAN_PX",
                    help="take the map from the local dark channel (models/haze.py: band minimum, minimum filter "
                         "of radius MIN_PX, box mean of radius MEAN_PX) instead of the attention head; a haze cue "
                         "for the RICE1 model, whose attention does not separate hazy from clear scenes")
    ap.add_argument("--threads", type=int, default=0)
    return ap.parse_args(argv)


def validation_pairs(args: argparse.Namespace, state: dict):
    """(validation pairs, every --stride-th; synthetic-cloud band brightness
    or None); fills in the default validation blocks."""
    stored = state.get("meta", {}).get("val_blocks") if args.s2_group else None
    pairs, args.val_blocks, band_brightness = load_pairs(args.data, args.s2_group, args.ts_data,
                                                         args.val_blocks or stored)
    _, val = split_by_block(pairs, set(args.val_blocks.split(",")))
    return val[:: args.stride], band_brightness


def model_outputs(model, val, band_brightness, s2: bool) -> list[dict]:
    """Model outputs once per image: cloudy in, clear reference in, and a
    synthetic-cloud version of the reference (exact opacity)."""
    win = model.cfg.window
    crop = lambda a: np.ascontiguousarray(a[..., : a.shape[-2] - a.shape[-2] % win, : a.shape[-1] - a.shape[-1] % win])  # noqa: E731
    rng = np.random.default_rng(7)
    cases = []
    hi = None if s2 else 1.0
    for p in val:
        cloudy, clear = crop(p.cloudy), crop(p.clear)
        if np.array_equal(cloudy, clear):
            continue  # a clear date paired with itself: no cloud to score
        syn, alpha = add_clouds(clear, rng, band_brightness=band_brightness)
        cases.append({
            "id": p.id, "block": p.block, "cloudy": cloudy, "clear": clear,
            "out": run(model, cloudy, hi), "ident": run(model, clear, hi), "syn": syn,
            "alpha": alpha, "syn_out": run(model, syn, hi),
        })
    return cases


def demo_outputs(model) -> dict:
    """The Landsat 8 demo: cloudy and clear through the model, and the true
    opacity of its synthetic clouds."""
    import os

    from osgeo import gdal

    from idfcr_train.reports.clear_fidelity import DEMO

    cloudy_demo, clear_demo, _ = load_demo()
    alpha_demo = gdal.Open(os.path.join(DEMO, "landsat8_cloud_alpha.tif")).ReadAsArray().astype(np.float32)
    if alpha_demo.max() > 1.5:
        alpha_demo = alpha_demo / 255.0
    return {"cloudy": cloudy_demo, "clear": clear_demo, "out": run(model, cloudy_demo),
            "ident": run(model, clear_demo), "alpha": alpha_demo}


def cached(args: argparse.Namespace, nets: list, ids: list[str], compute):
    """`compute()`'s model outputs, kept under --cache keyed by the
    networks' weights and the images, so another grid over the same weights
    (a --write-ckpt run only adds a calibration, or another detector) skips
    the forward passes."""
    if not args.cache:
        return compute()
    h = hashlib.sha256(json.dumps([args.data, args.s2_group, ids]).encode())
    for net in [n for n in nets if n is not None]:
        for k, v in sorted(net.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
    path = os.path.join(args.cache, f"calibrate-{h.hexdigest()[:20]}.pt")
    if os.path.exists(path):
        print(f"model outputs from {path}", flush=True)
        return torch.load(path, weights_only=False)
    out = compute()
    os.makedirs(args.cache, exist_ok=True)
    torch.save(out, path + ".tmp")
    os.replace(path + ".tmp", path)
    return out


class Scorer:
    """PSNR of the blended (or raw, `cal=None`) output on the cases and the
    demo, for one calibration; feathered maps are cached per (t0, width)."""

    def __init__(self, cases: list[dict], demo: dict | None, s2: bool, cloudy_refs: frozenset = frozenset()):
        self.cases, self.demo, self.s2 = cases, demo, s2
        # Ids whose "clear" reference holds cloud itself: left out of the
        # clear-input figures, where p rightly fires.
        self.cloudy_refs = cloudy_refs
        self.feather_cache: dict = {}
        self._sums_cache: dict = {}
        # Doing nothing per case, once: every grid point compares against it.
        self.nothing_psnr = [self.img_psnr(c["cloudy"], c["clear"]) for c in cases]

    def img_psnr(self, a, b) -> float:
        # Sentinel-2: mean of per-band PSNR (reflectance, range 1), as the
        # cards report; RGB: over all bands.
        if self.s2:
            return float(np.mean([psnr(a[k], b[k]) for k in range(a.shape[0])]))
        return psnr(a, b)

    def probability(self, att: torch.Tensor, cal: Calibration, attention: torch.Tensor | None = None) -> torch.Tensor:
        """The blend's p from a map (reports/s2_detectors.py overrides this)."""
        return cloud_probability(att, cal, self.feather_cache, attention)

    def per_band(self, images: list[np.ndarray]) -> list[float]:
        """Sentinel-2: each band's PSNR against the clear references, the
        mean over the cases (the cards' per-band table)."""
        return [float(np.mean([psnr(o[k], c["clear"][k]) for o, c in zip(images, self.cases)]))
                for k in range(images[0].shape[0])]

    def nothing(self) -> dict:
        res = {"val_psnr": float(np.mean(self.nothing_psnr))}
        if self.s2:
            res["val_psnr_per_band"] = self.per_band([c["cloudy"] for c in self.cases])
        if self.demo is not None:
            res["demo_psnr"] = psnr(self.demo["cloudy"], self.demo["clear"])
        return res

    def _sums(self, img: np.ndarray, pred: torch.Tensor, ref: np.ndarray) -> tuple:
        """|e|^2, A = sum over bands of e x D and B = sum of D^2 (e = img -
        ref, D = pred - img, float64), cached per image: then the blend's
        squared error is |e|^2 + 2 p.A + p^2.B summed over pixels."""
        key = (id(img), id(pred))
        if key not in self._sums_cache:
            x = torch.from_numpy(img).double()
            e, d = x - torch.from_numpy(ref).double(), pred[0].double() - x
            self._sums_cache[key] = (float((e * e).sum()), (e * d).sum(0), (d * d).sum(0), e.numel())
        return self._sums_cache[key]

    def blended_psnr(self, img: np.ndarray, res: tuple, ref: np.ndarray, cal: Calibration | None) -> float:
        """PSNR against `ref` of p x model + (1 - p) x img (the raw model
        output with `cal` None). RGB without a blended image per grid point
        (`_sums`); Sentinel-2 (a mean over bands) by blending."""
        pred, att = res[0], res[1]
        if cal is None:
            return self.img_psnr(pred[0].numpy(), ref)
        pb = self.probability(att, cal, *res[2:3])
        if self.s2:
            return self.img_psnr(blend(torch.from_numpy(img)[None], pred, pb)[0].numpy(), ref)
        e2, a, b, n = self._sums(img, pred, ref)
        p = pb[0, 0].double()
        mse = (e2 + 2.0 * float((p * a).sum()) + float((p * p * b).sum())) / n
        return float("inf") if mse <= 0.0 else 10.0 * np.log10(1.0 / mse)

    def blended_image(self, img: np.ndarray, res: tuple, cal: Calibration | None) -> np.ndarray:
        """p x model + (1 - p) x img (the raw output with `cal` None)."""
        pred, att = res[0], res[1]
        if cal is None:
            return pred[0].numpy()
        pb = self.probability(att, cal, *res[2:3])
        return blend(torch.from_numpy(img)[None], pred, pb)[0].numpy()

    def __call__(self, cal: Calibration | None) -> dict:
        cases = self.cases
        val_psnr = [self.blended_psnr(c["cloudy"], c["out"], c["clear"], cal) for c in cases]
        ident = [self.blended_psnr(c["clear"], c["ident"], c["clear"], cal) for c in cases
                 if c["id"] not in self.cloudy_refs]
        res = {
            "val_psnr": float(np.mean(val_psnr)),
            "val_psnr_per_block": {b: float(np.mean([v for v, c in zip(val_psnr, cases) if c["block"] == b]))
                                   for b in sorted({c["block"] for c in cases})},
            "val_worst_vs_nothing": float(min(v - n for v, n in zip(val_psnr, self.nothing_psnr))),
            "clear_in_psnr_min": float(min(ident)),
            "clear_in_psnr_mean": float(np.mean([min(v, 99.0) for v in ident])),
            "clear_in_below_40": int(sum(v < 40.0 for v in ident)),
            "val_below_nothing_0_5": int(sum(v < n - 0.5 for v, n in zip(val_psnr, self.nothing_psnr))),
        }
        if self.s2:
            # Per band too: an atmospheric band (B9 water vapour, B10 cirrus)
            # can lose to doing nothing while the mean gains.
            res["val_psnr_per_band"] = self.per_band([self.blended_image(c["cloudy"], c["out"], cal)
                                                      for c in cases])
        if self.demo is not None:
            d = self.demo
            res["demo_psnr"] = self.blended_psnr(d["cloudy"], d["out"], d["clear"], cal)
            res["demo_clear_in_psnr"] = self.blended_psnr(d["clear"], d["ident"], d["clear"], cal)
        return res


def narrowed_grid(overrides: list[str]) -> dict:
    """GRID and ATT_GRID with `KEY=V1,V2` overrides (--grid)."""
    grid = {**GRID, **ATT_GRID}
    for item in overrides:
        key, _, values = item.partition("=")
        if key not in grid or not values:
            raise SystemExit(f"--grid {item}: want KEY=V1,V2 with KEY one of {', '.join(grid)}")
        cast = int if key.endswith("_px") else float
        try:
            grid[key] = [cast(v) for v in values.split(",")]
        except ValueError:
            raise SystemExit(f"--grid {item}: {key} takes {cast.__name__} values") from None
    return grid


def grid_search(score: Scorer, with_detector: bool, with_attention: bool = False, grid: dict | None = None) -> list[dict]:
    """Every calibration of the grid (GRID; with `with_attention` also
    ATT_GRID's second cue, or none) scored on the cases."""
    g = grid or {**GRID, **ATT_GRID}
    rows = []
    second = [(None, None)]
    if with_attention:
        second += [(a, a + w) for a, w in itertools.product(g["att_t0"], g["att_width"])]
    for t0, width, (a0, a1), d, s in itertools.product(g["t0"], g["width"], second, g["dilate_px"], g["blur_px"]):
        if d == g["dilate_px"][0] and s == g["blur_px"][0]:
            score.feather_cache.clear()  # new thresholds: earlier maps are not asked again
        cal = Calibration(t0=t0, t1=t0 + width, dilate_px=d, blur_px=s, att_t0=a0, att_t1=a1,
                          **({"shape": "round", "source": "detector"} if with_detector else {}))
        rows.append({"calibration": cal.to_dict(), **score(cal)})
    return rows


def choose(rows: list[dict], args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """The best validation PSNR among the calibrations that give clear
    images back at >= 40 dB (all of them when none does); also returns
    those that do. `--max-clear-below-40 K` lets up to K clear references
    come back below 40 dB, and `--max-below-nothing B` then also admits at
    most B validation images more than 0.5 dB below doing nothing."""
    # --ring: the feathering should start outside the detected cloud; with a
    # blur wider than `ring` times the dilation, cloud edges fall inside the
    # ramp and can stay as bright rings (seen on the contact sheets). Off by
    # default: on the Sentinel-2 10 m model it costs 4 dB (recall 0.90 ->
    # 0.11), a worse picture than the rings.
    demo_ok = (lambda r: True) if args.no_demo_constraint else (lambda r: r.get("demo_clear_in_psnr", 99.0) >= 40.0)
    max_clear = getattr(args, "max_clear_below_40", 0)
    max_below = getattr(args, "max_below_nothing", None)
    clear_ok = ((lambda r: r["clear_in_psnr_min"] >= 40.0) if max_clear == 0
                else (lambda r: r["clear_in_below_40"] <= max_clear))
    below_ok = (lambda r: True) if max_below is None else (lambda r: r["val_below_nothing_0_5"] <= max_below)
    ok = [r for r in rows if clear_ok(r) and below_ok(r) and demo_ok(r)
          and (args.ring <= 0 or r["calibration"]["blur_px"] <= args.ring * r["calibration"]["dilate_px"])]
    return max(ok or rows, key=lambda r: r["val_psnr"]), ok


def selection_rule(args: argparse.Namespace, n_refs: int) -> str:
    """What `choose` admitted, in words for the card."""
    if args.max_clear_below_40 == 0:
        rule = "whose clear references, given as input, all come back at 40 dB or better"
    else:
        rule = (f"that give at most {args.max_clear_below_40} of the {n_refs} clear references, given as input, "
                "back below 40 dB")
    if args.max_below_nothing is not None:
        rule += f" and leave at most {args.max_below_nothing} images more than 0.5 dB below doing nothing"
    return rule


def detector_quality(score: Scorer, cal: Calibration) -> tuple[dict, dict]:
    """Precision/recall of the chosen p (demo and synthetic clouds on the
    validation clear images) and what the blend gains on the latter."""
    cases, demo = score.cases, score.demo
    pr = {}
    if demo is not None:
        pr_demo = precision_recall(cloud_probability(demo["out"][1], cal, None, demo["out"][2])[0, 0].numpy(),
                                   demo["alpha"] > 0.1)
        pr["demo (synthetic clouds on Landsat 8, opacity > 0.1)"] = {"precision": pr_demo[0], "recall": pr_demo[1]}
    ps, ts = [], []
    for c in cases:
        ps.append(cloud_probability(c["syn_out"][1], cal, None, *c["syn_out"][2:3])[0, 0].numpy().ravel())
        ts.append((c["alpha"] > 0.1).ravel())
    pr_syn = precision_recall(np.concatenate(ps), np.concatenate(ts))
    pr["val clear images + synthetic clouds (opacity > 0.1)"] = {"precision": pr_syn[0], "recall": pr_syn[1]}
    syn_gain = {
        "nothing": float(np.mean([score.img_psnr(c["syn"], c["clear"]) for c in cases])),
        "raw": float(np.mean([score.img_psnr(c["syn_out"][0][0].numpy(), c["clear"]) for c in cases])),
        "blend": float(np.mean([score.img_psnr(blend(torch.from_numpy(c["syn"])[None], c["syn_out"][0],
                                                   cloud_probability(c["syn_out"][1], cal, None,
                                                                     *c["syn_out"][2:3]))[0].numpy(), c["clear"])
                                for c in cases])),
    }
    return pr, syn_gain


def dark_channel_state(text: str, state: dict) -> dict:
    """The weightless dark-channel cue as a detector entry of the
    checkpoint (`models/haze.py`; `load_detector` rebuilds it)."""
    try:
        min_px, mean_px = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--dark-channel {text}: want MIN_PX,MEAN_PX (e.g. 7,64)") from None
    if not (0 <= min_px <= 32 and 0 <= mean_px <= 128):
        raise SystemExit(f"--dark-channel {text}: radii 0..32 and 0..128 px")
    cfg = {"kind": "dark_channel", "in_bands": state["config"]["in_bands"], "min_px": min_px, "mean_px": mean_px}
    return {"model": {}, "config": cfg, "step": 0, "wall_s": 0.0,
            "meta": {"what": "local dark channel, no weights (models/haze.py)"}}


def store_in_checkpoint(state: dict, cal: Calibration, det_state: dict | None, path: str) -> None:
    """The chosen calibration (and the detector it was made for) go into
    the Pixel-CR checkpoint, where the exporter reads them."""
    from idfcr_train.checkpoint import save_atomic

    state["probability"] = cal.to_dict()
    # Measured on this network now (no longer its --init network's, see
    # train_pixel_cr --freeze-body): the exporter takes it.
    state.pop("probability_carried_from", None)
    if det_state is not None:
        state["detector"] = {"model": det_state["model"], "config": det_state["config"],
                             "step": det_state["step"], "wall_s": det_state["wall_s"],
                             "meta": det_state.get("meta")}
    else:
        state.pop("detector", None)
    save_atomic(state, path)
    print(f"calibration stored in {path}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.with_attention and not args.detector:
        raise SystemExit("--with-attention needs --detector (the attention is the second cue)")
    grid = narrowed_grid(args.grid)  # a bad --grid fails before half an hour of model outputs
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    model, state = load_checkpoint(args.ckpt)
    detector, det_state = None, None
    if args.detector and args.dark_channel:
        raise SystemExit("--detector and --dark-channel are two sources of the map: give one")
    if args.detector or args.dark_channel:
        from idfcr_train.models.detector import load_detector

        det_state = (load_state(args.detector) if args.detector
                     else dark_channel_state(args.dark_channel, state))
        detector = load_detector(det_state)
    val, band_brightness = validation_pairs(args, state)
    check_held_out(state, args.val_blocks, args.ckpt, args.data)
    if det_state is not None and args.detector:
        check_held_out(det_state, args.val_blocks, args.detector, args.data)
    cases, demo = cached(args, [model], [p.id for p in val], lambda: (
        model_outputs(model, val, band_brightness, bool(args.s2_group)),
        None if args.s2_group else demo_outputs(model)))
    if detector is not None:
        with_detector(cases, demo, detector)
    print(f"model outputs for {len(cases)} validation images: {time.time() - t_start:.0f} s", flush=True)

    score = Scorer(cases, demo, bool(args.s2_group), frozenset(i for i in args.cloudy_refs.split(",") if i))
    nothing = score.nothing()
    raw = score(None)
    rows = grid_search(score, detector is not None, args.with_attention, grid)
    best, ok = choose(rows, args)
    cal = Calibration.from_dict(best["calibration"])
    pr, syn_gain = detector_quality(score, cal)
    res = {
        "checkpoint_step": state["step"],
        "val_images": len(cases),
        "val_ids": [c["id"] for c in cases],
        "val_blocks": args.val_blocks,
        "chosen": best,
        "candidates_meeting_40db": len(ok),
        "selection_rule": selection_rule(args, len(cases) - len(score.cloudy_refs & {c["id"] for c in cases})),
        "raw_model": raw,
        "do_nothing": nothing,
        "synthetic_clouds_on_val_clear": syn_gain,
        "precision_recall": pr,
        "grid": {k: v for k, v in grid.items() if args.with_attention or k in GRID},
        "cloudy_refs_left_out_of_clear_input": sorted(score.cloudy_refs),
        "candidates": rows,
        "seconds": round(time.time() - t_start, 1),
        "command": "python -m idfcr_train.training.calibrate " + " ".join(argv or __import__("sys").argv[1:]),
    }
    if args.no_demo_constraint:
        best_demo = max(rows, key=lambda r: r.get("demo_clear_in_psnr", 0.0))
        res["selection_note"] = (
            "The clear-input rule applies to the validation clear references only: no grid point "
            "gives the Landsat 8 demo's clear image back at 40 dB (best "
            f"{best_demo.get('demo_clear_in_psnr', 0.0):.1f} dB), because p fires on its bright fields, a "
            "palette and stretch unlike RICE2's.")
    if det_state is not None:
        res["detector"] = {"step": det_state["step"], "wall_s": det_state["wall_s"], "meta": det_state.get("meta"),
                           "config": det_state.get("config")}
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in res.items() if k != "grid"}, indent=1))
    if args.write_ckpt:
        store_in_checkpoint(state, cal, det_state, args.ckpt)


if __name__ == "__main__":
    main()
