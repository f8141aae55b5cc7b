"""Train Pixel-CR; resumable across sessions.

    python -m idfcr_train.training.train_pixel_cr --data ../../shared/data/rice2_3s \
        --ckpt checkpoints/pixel_cr_rgb.pt --config cpu --hours 2 --resume

Sentinel-2 group models (reflectance in, SEN12MS-CR pairs, split by scene):

    python -m idfcr_train.training.train_pixel_cr --s2-group 10m \
        --data ../../shared/data/sen12mscr_oriolac --ts-data ../../shared/data/sen12mscr_ts_oriolac \
        --ckpt checkpoints/s2_10m.pt --config cpu --dim 32 --hours 0.5 --resume

The checkpoint holds model, optimiser, step count, wall time so far, the
config and the RNG state; it is rewritten atomically every few minutes and at
the end, so killing the process loses at most that much. A JSON-lines log
(`<ckpt>.log.jsonl`) records the training loss and a quick validation score.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import signal
import time
from dataclasses import dataclass

import numpy as np
import torch

from idfcr_train.checkpoint import save_atomic, still_held_out
from idfcr_train.data.pairs import (Pair, align_label, in_id_range, load_rice, random_crop_pair, random_palette,
                                    random_lift, random_stretch, split_by_block)
from idfcr_train.reports.metrics import psnr
from idfcr_train.models.pixel_cr import (
    PixelCR, PixelCRConfig, count_params, pixel_cr_loss, thick_cloud_weight)
from idfcr_train.data import load_pairs
from idfcr_train.data.synth_clouds import add_clouds
from idfcr_train.training.run_options import add_run_options


def make_batch(train: list[Pair], batch: int, crop: int, synthetic: float, rng: np.random.Generator,
               band_brightness: np.ndarray | None = None, identity: float = 0.0,
               aligned: dict[str, np.ndarray] | None = None, opacity_target: float = 0.0,
               palette: float = 0.0, weights: np.ndarray | None = None, stretch: float = 0.0,
               lift: float = 0.0, coarse: float = 0.0):
    """`weights`: probability of drawing each training pair (None: uniform).

    `identity`: share of samples whose input is the clear image itself (the
    model must give it back unchanged). `aligned`: per pair id, the label with
    its colours fitted to the input's date (see `align_label`), used for real
    pairs; synthetic and identity samples use the clear image as it is.

    `opacity_target` > 0: also return the cloudy-attention target per sample,
    so the attention head learns to be a cloud detector (its output becomes
    the blending probability): the synthetic cloud's exact opacity x
    `opacity_target` (clipped to 1) for synthetic samples, 0 for identity
    samples, and for real pairs the paper's M (mean |label - input| above
    `threshold`, computed in the loss: marked NaN here). Otherwise the 4th
    value is None.

    `palette`: share of samples (of any kind) whose input and label both go
    through one random colour map (`data.random_palette`; clouds are added
    after it, so they stay cloud-coloured).

    `stretch`: share of samples whose input and label both go through one
    random percentile stretch fitted on the label crop
    (`data.random_stretch`: the contrast of a user's stretched scene, which
    RICE2's dim tiles lack), before any palette and before synthetic clouds.

    `lift`: share of samples whose input and label both go through one
    random per-band squeeze into a higher range (`data.random_lift`: a
    colour cast such as the demo's), after any stretch, before synthetic
    clouds (which stay white).

    `coarse`: share of samples cut at twice the crop and averaged down 2 x 2
    (input, label and attention target alike, after everything else): the
    ground at half resolution, as the half-scale run of an exported graph
    (`models/scales.py`) shows it to the network."""
    xs, ys, ws, ms = [], [], [], []
    for _ in range(batch):
        # Uniform draws keep integers() so that older recipes keep their random stream.
        p = train[int(rng.integers(0, len(train)) if weights is None else rng.choice(len(train), p=weights))]
        ws.append(np.ones(p.clear_raw.shape[0], np.float32) if p.band_weight is None else p.band_weight)
        label = aligned[p.id] if aligned is not None and p.id in aligned else p.clear_raw
        u = rng.uniform()
        if p.clear_only:
            # Synthetic or identity in their usual ratio, never a real pair
            # (no extra draw: other pairs keep their random stream).
            u *= synthetic + identity
        # No draw at --palette 0, so that older recipes keep their random stream.
        recolour = random_palette(p.clear_raw.shape[0], rng) if palette > 0 and rng.uniform() < palette else None
        restretch = stretch > 0 and rng.uniform() < stretch
        # No draw at --lift 0, so that older recipes keep their random stream.
        squeeze = random_lift(p.clear_raw.shape[0], rng) if lift > 0 and rng.uniform() < lift else None
        # No draw at --coarse 0, so that older recipes keep their random stream.
        shrink = coarse > 0 and rng.uniform() < coarse and min(p.clear_raw.shape[-2:]) >= 2 * crop
        cut = 2 * crop if shrink else crop
        if u < synthetic + identity:
            _, b = random_crop_pair(p.cloudy_raw, p.clear_raw, cut, rng)
            b = b.astype(np.float32) * p.scale
            if restretch:
                b = random_stretch(b, rng)(b)
            if squeeze is not None:
                b = squeeze(b)
            if recolour is not None:
                b = recolour(b)
            # A synthetic pair from the clear image: exact labels, more cloud
            # variety; or the clear image as its own input.
            if u < synthetic:
                a, alpha = add_clouds(b, rng, band_brightness=band_brightness)
                m = np.clip(alpha * opacity_target, 0.0, 1.0)
            else:
                a, m = b.copy(), np.zeros(b.shape[1:], np.float32)
        else:
            a, b = random_crop_pair(p.cloudy_raw, label, cut, rng)
            a = a.astype(np.float32) * p.scale
            b = b.astype(np.float32) * (1.0 if b.dtype == np.float32 else p.scale)
            if restretch:
                f = random_stretch(b, rng)
                a, b = f(a), f(b)
            if squeeze is not None:
                a, b = squeeze(a), squeeze(b)
            if recolour is not None:
                a, b = recolour(a), recolour(b)
            m = np.full(b.shape[1:], np.nan, np.float32)
        if shrink:
            a, b, m = half_resolution(a), half_resolution(b), half_resolution(m[None])[0]
        xs.append(a)
        ys.append(b)
        ms.append(m[None].astype(np.float32))
    m = torch.from_numpy(np.stack(ms)) if opacity_target > 0 else None
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), torch.from_numpy(np.stack(ws)), m


def half_resolution(x: np.ndarray) -> np.ndarray:
    """(C, H, W) averaged over 2 x 2 blocks (H and W even), as
    `F.avg_pool2d(x, 2)` does for the half-scale run; NaN stays NaN."""
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4)).astype(np.float32)


@torch.no_grad()
def quick_val(model: PixelCR, val: list[Pair], n: int) -> dict:
    """Model vs do-nothing PSNR on the first n validation images (full size,
    cropped to a multiple of the window)."""
    model.eval()
    ps, base = [], []
    win = model.cfg.window
    for p in val[:n]:
        cloudy, clear = crop_to_window(p.cloudy, win), crop_to_window(p.clear, win)
        out, _ = model(torch.from_numpy(cloudy)[None])
        pred = out[0].clamp(0, 1).numpy()
        ps.append(psnr(pred, clear))
        base.append(psnr(cloudy, clear))
    model.train()
    return {"val_psnr": float(np.mean(ps)), "val_baseline_psnr": float(np.mean(base)), "val_n": len(ps)}


def crop_to_window(x: np.ndarray, win: int) -> np.ndarray:
    h, w = x.shape[-2:]
    return x[..., : h - h % win, : w - w % win]


def dilations(text: str) -> tuple[int, ...]:
    """--context-dilations: '1,2,4,8' -> (1, 2, 4, 8)."""
    try:
        values = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every dilation must be 1 or more")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="RICE-layout folder (pairs.csv, cloudy_image/, ground_truth/)")
    ap.add_argument("--ckpt", required=True, help="checkpoint path (read with --resume, always written)")
    ap.add_argument("--config", default="cpu", choices=["paper", "cpu", "tiny"])
    ap.add_argument("--no-attention", action="store_true", help="ablation: switch the cloudy attention off")
    ap.add_argument("--side-attention", action="store_true",
                    help="one attention head on the last features, trained as a detector, gating nothing")
    for knob in ("dim", "heads", "window", "submodules", "blocks_per_submodule"):
        ap.add_argument("--" + knob.replace("_", "-"), type=int, default=None, help=f"override the preset's {knob}")
    ap.add_argument("--shifted-windows", action="store_true")
    ap.add_argument("--no-global-residual", action="store_true", help="the paper's plain output (no input + correction)")
    ap.add_argument("--val-blocks", default=None,
                    help="scene blocks held out for validation (RICE default 3,9; Sentinel-2: scenes)")
    ap.add_argument("--s2-group", choices=["10m", "20m", "60m", "60m_l2a"],
                    help="train a Sentinel-2 group model on SEN12MS-CR pairs (--data) and time series (--ts-data)")
    ap.add_argument("--ts-data", default=None, help="SEN12MS-CR-TS folder (with --s2-group)")
    ap.add_argument("--init", default=None, metavar="CKPT",
                    help="start a new run (step 0, fresh optimiser, this run's data and split) from CKPT's "
                         "network: its configuration and its EMA weights (or its weights without an EMA); "
                         "for a model of its own on other data, e.g. RICE1 from the RGB model")
    ap.add_argument("--band-balanced", action="store_true",
                    help="L1 as the geometric mean of per-band L1s (default with --s2-group)")
    add_run_options(ap, lr=4e-4)
    ap.add_argument("--lr-end", type=float, default=None,
                    help="cosine-decay the learning rate from --lr to this over this run's --hours, or up to "
                         "--max-steps when given (a cool-down at the end of a long run; default: constant --lr)")
    ap.add_argument("--synthetic", type=float, default=0.25, help="fraction of samples with synthetic clouds")
    ap.add_argument("--identity", type=float, default=0.0, help="fraction of samples whose input is the clear image")
    ap.add_argument("--palette", type=float, default=0.0,
                    help="fraction of samples recoloured by one random colour map on both sides (RGB: other stretches)")
    ap.add_argument("--stretch", type=float, default=0.0,
                    help="fraction of samples stretched on both sides by a random percentile stretch of the label "
                         "(the contrast of users' stretched scenes)")
    ap.add_argument("--lift", type=float, default=0.0,
                    help="fraction of samples squeezed on both sides into a higher range per band (colour casts "
                         "with raised floors, which RICE2 lacks)")
    ap.add_argument("--coarse", type=float, default=0.0,
                    help="fraction of samples cut at twice the crop and averaged down 2 x 2 on both sides (the "
                         "half-resolution ground an exported --half-scale graph shows the network)")
    ap.add_argument("--align-labels", action="store_true",
                    help="fit each real label's colours to its input on pixels clear in both (see data.align_label)")
    ap.add_argument("--opacity-target", type=float, default=0.0,
                    help="attention target of synthetic samples = opacity x this (0: the paper's M everywhere)")
    ap.add_argument("--cloud-weight", type=float, default=0.0,
                    help="draw main pairs with probability in proportion to 1 + this x their share of thick "
                         "cloud (pixels whose mean |cloudy - clear| is above 0.15): more thick-cloud filling "
                         "per step (0: uniform)")
    ap.add_argument("--pixel-cloud-weight", type=float, default=0.0,
                    help="weigh the L1 loss on thick-cloud pixels (mean |cloudy - clear| above 0.15) by 1 + this "
                         "(0: plain L1); the default blended output shows the network mostly there")
    ap.add_argument("--ema", type=float, default=0.0, help="keep an EMA of the weights with this decay (0: off)")
    ap.add_argument("--anchor", type=float, default=0.0,
                    help="L2-SP: add A x sum((w - w0)^2) to the loss, w0 the weights the fine-tuning started from "
                         "(kept in the checkpoint across legs), so a continuation cannot drift far from them (0: off)")
    ap.add_argument("--extra-data", default=None,
                    help="another RICE-layout folder mixed into training (e.g. RICE1)")
    ap.add_argument("--extra-val", default=None, metavar="LO-HI",
                    help="ids LO..HI (inclusive) of --extra-data held out of training: a run of consecutive "
                         "ids, since neighbouring ids may be pieces of one scene (reports.compare --extra-val "
                         "scores them)")
    ap.add_argument("--extra-share", type=float, default=None,
                    help="share of samples drawn from --extra-data (default: in proportion to its pairs)")
    ap.add_argument("--s2-rgb", default=None, metavar="SEN12MSCR",
                    help="RGB runs: also train on the Sentinel-2 pairs of this SEN12MS-CR folder as true-colour "
                         "quick-looks (their validation scenes left out)")
    ap.add_argument("--s2-rgb-ts", default=None, metavar="SEN12MSCR_TS", help="and on this time series' pairs")
    ap.add_argument("--s2-rgb-share", type=float, default=None,
                    help="share of samples drawn from --s2-rgb (default: in proportion to its pairs)")
    ap.add_argument("--s2-rgb-clear", action="store_true",
                    help="take only --s2-rgb's clear quick-looks, as ground for synthetic clouds and identity "
                         "samples (no real pairs, so no date changes to learn)")
    ap.add_argument("--context", type=int, default=0, metavar="CH",
                    help="add a coarse context branch of CH channels (models/context.py); with --init it starts "
                         "as a no-op on the --init network")
    ap.add_argument("--context-dilations", default=(1, 2, 4, 8), type=dilations,
                    help="the context branch's dilations at quarter scale (comma-separated, each 1 or more)")
    ap.add_argument("--freeze-body", action="store_true",
                    help="train only the context branch: the --init network (and its attention, so its calibrated "
                         "p and detector, which the checkpoint keeps) stays as it is")
    ap.add_argument("--threshold", type=float, default=0.08, help="attention target threshold (model units)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop at this total step count (0: no limit)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-n", type=int, default=8)
    args = ap.parse_args(argv)
    if args.s2_rgb_clear and not args.s2_rgb:
        ap.error("--s2-rgb-clear takes its images from --s2-rgb: name that folder too")
    if args.context < 0:
        ap.error("--context: give a number of channels above 0")
    return args


def sampling_weights(n_main: int, mixed: list[tuple[list, float | None]]) -> np.ndarray | None:
    """Per-pair draw probabilities for the main pairs followed by each mixed
    source: a source with a share gets that share of the samples, spread
    evenly over its pairs; the rest goes to the main pairs and to sources
    without a share, evenly per pair. None when no source has a share
    (uniform draws keep older recipes' random streams)."""
    if not any(share is not None for _, share in mixed):
        return None
    fixed = sum(share for _, share in mixed if share is not None)
    if not 0.0 <= fixed < 1.0:
        raise ValueError(f"the mixed sources' shares add up to {fixed}: they must leave some for the main data")
    free = n_main + sum(len(src) for src, share in mixed if share is None)
    parts = [np.full(n_main, (1.0 - fixed) / free)]
    for src, share in mixed:
        parts.append(np.full(len(src), (1.0 - fixed) / free if share is None else share / len(src)))
    return np.concatenate(parts)


THICK_CLOUD_DIFF = 0.15


def cloud_shares(pairs: list[Pair], thr: float = THICK_CLOUD_DIFF) -> np.ndarray:
    """Each pair's share of pixels whose mean |cloudy - clear| over bands is
    above `thr`: thick cloud (and its shadow) in RICE2 units; a date change
    alone rarely moves a pixel that far."""
    return np.array([float((np.abs(p.cloudy - p.clear).mean(axis=0) > thr).mean()) for p in pairs])


def cloud_weighted(weights: np.ndarray | None, shares: np.ndarray, cloud_weight: float) -> np.ndarray | None:
    """Draw probabilities with the first len(shares) pairs (the main data)
    reweighted by 1 + cloud_weight x share, their total share unchanged
    (mixed sources keep theirs). `weights` None: uniform over the main pairs
    only. cloud_weight 0: `weights` unchanged."""
    if cloud_weight <= 0:
        return weights
    n = len(shares)
    if weights is None:
        weights = np.full(n, 1.0 / n)
    main_total = weights[:n].sum()
    w = 1.0 + cloud_weight * shares
    out = weights.astype(np.float64).copy()
    out[:n] = w / w.sum() * main_total
    return out / out.sum()


def load_training_data(args: argparse.Namespace):
    """(train, val, band_brightness, aligned labels, sampling weights or
    None) for this run; fills in the default validation blocks (RICE 3 and
    9, or the Sentinel-2 scenes)."""
    pairs, args.val_blocks, band_brightness = load_pairs(args.data, args.s2_group, args.ts_data, args.val_blocks)
    train, val = split_by_block(pairs, set(args.val_blocks.split(",")))
    # Other sources mixed into an RGB run, each at its share of the samples
    # (None: in proportion to its pairs).
    mixed = []
    if args.extra_data:
        mixed.append((load_extra_pairs(args.extra_data, args.extra_val), args.extra_share))
    if args.s2_rgb:
        from idfcr_train.data.s2 import DEFAULT_VAL_SCENES, load_s2_rgb

        s2_train, _ = split_by_block(load_s2_rgb(args.s2_rgb, args.s2_rgb_ts), set(DEFAULT_VAL_SCENES.split(",")))
        if args.s2_rgb_clear:
            from idfcr_train.data.s2 import s2_rgb_clear

            s2_train = s2_rgb_clear(s2_train)
        mixed.append((s2_train, args.s2_rgb_share))
    weights = sampling_weights(len(train), mixed)
    if args.cloud_weight > 0:
        if args.s2_group:
            raise SystemExit("--cloud-weight is for RGB runs on RICE-layout pairs")
        if weights is None and mixed:
            raise SystemExit("--cloud-weight with mixed sources: give them their shares (--extra-share, --s2-rgb-share)")
        shares = cloud_shares(train)
        print(f"--cloud-weight {args.cloud_weight}: thick-cloud share of the main pairs, mean "
              f"{shares.mean():.3f}, max {shares.max():.3f}", flush=True)
        weights = cloud_weighted(weights, shares, args.cloud_weight)
    for more, _ in mixed:
        train += more
    aligned = aligned_labels(train) if args.align_labels else None
    return train, val, band_brightness, aligned, weights


def load_extra_pairs(path: str, held_out: str | None) -> list[Pair]:
    """More RICE-layout pairs (RICE1) for training, ids in `held_out`
    ("LO-HI") left out; ids and blocks prefixed so they cannot collide with
    RICE2's."""
    extra = [p for p in load_rice(path) if not in_id_range(p.id, held_out)]
    for p in extra:
        p.id, p.block = f"extra:{p.id}", f"extra:{p.block}"
    return extra


def aligned_labels(pairs: list[Pair]) -> dict[str, np.ndarray]:
    """Each pair's label with its colours fitted to the input's date
    (`align_label`), by id. Stored like the pairs (8-bit data stays 8-bit:
    4x less memory than float); make_batch scales integer labels and takes
    float ones as they are. Clear-only pairs are never drawn as real pairs,
    so they need no aligned label."""
    aligned = {}
    for p in pairs:
        if p.clear_only:
            continue
        lab = align_label(p.cloudy, p.clear)
        if p.clear_raw.dtype == np.uint8:
            lab = np.clip(np.round(lab / p.scale), 0, 255).astype(np.uint8)
        aligned[p.id] = lab
    return aligned


def network_config(args: argparse.Namespace, train: list[Pair]) -> tuple[PixelCRConfig, dict | None]:
    """The network configuration and the stored state: a resumed run keeps
    its checkpoint's configuration, a new one takes the preset and flags."""
    state = None
    if args.resume and os.path.exists(args.ckpt):
        state = torch.load(args.ckpt, map_location="cpu")
        cfg = PixelCRConfig.from_dict(state["config"])
    elif args.init:
        if os.path.exists(args.ckpt) and os.path.samefile(args.init, args.ckpt):
            raise SystemExit(f"--init {args.init} is --ckpt too: the new run would overwrite the network it starts from")
        shaping = [f for f in ("no_attention", "side_attention", "shifted_windows", "no_global_residual", "dim", "heads",
                               "window", "submodules", "blocks_per_submodule") if getattr(args, f) not in (None, False)]
        if shaping:
            raise SystemExit(f"--init takes the network's shape from {args.init}; drop "
                             + ", ".join("--" + f.replace("_", "-") for f in shaping))
        src = init_source(args.init)
        cfg = PixelCRConfig.from_dict(src["config"])
        if args.context:
            if cfg.context_ch:
                raise SystemExit(f"--context: {args.init} already has a context branch")
            cfg.context_ch = args.context
            cfg.context_dilations = args.context_dilations
        bands = train[0].cloudy_raw.shape[0] if train else cfg.in_bands
        if cfg.in_bands != bands or (args.s2_group is not None) != (cfg.band_mean is not None):
            raise SystemExit(f"--init {args.init}: its network reads {cfg.in_bands} band(s)"
                             f"{' standardised for Sentinel-2' if cfg.band_mean else ''}; this run's data does not")
    else:
        if args.freeze_body:
            raise SystemExit("--freeze-body trains a branch on a trained network: give it with --init and --context")
        cfg = getattr(PixelCRConfig, args.config)(in_bands=train[0].cloudy_raw.shape[0])
        if args.context:
            cfg.context_ch = args.context
            cfg.context_dilations = args.context_dilations
        cfg.cloudy_attention = not args.no_attention
        cfg.attention_gates = not args.side_attention
        cfg.shifted_windows = args.shifted_windows
        cfg.global_residual = not args.no_global_residual
        for knob in ("dim", "heads", "window", "submodules", "blocks_per_submodule"):
            if getattr(args, knob) is not None:
                setattr(cfg, knob, getattr(args, knob))
        if args.s2_group:
            # Standardise each band by the statistics of the clear training images.
            clear = np.concatenate([p.clear.reshape(p.clear.shape[0], -1) for p in train], axis=1)
            cfg.band_mean = [round(float(v), 6) for v in clear.mean(axis=1)]
            cfg.band_std = [round(float(max(v, 1e-4)), 6) for v in clear.std(axis=1)]
    return cfg, state


def recipe(args: argparse.Namespace, state: dict | None) -> dict:
    """What the checkpoint records about how it was trained."""
    meta = {
        "data": os.path.basename(os.path.normpath(args.data)),
        "ts_data": os.path.basename(os.path.normpath(args.ts_data)) if args.ts_data else None,
        "s2_group": args.s2_group,
        "band_balanced": bool(args.band_balanced or args.s2_group),
        "val_blocks": args.val_blocks,
        "crop": args.crop,
        "batch": args.batch,
        "synthetic": args.synthetic,
        "threshold": args.threshold,
        "identity": args.identity,
        "align_labels": args.align_labels,
        "ema": args.ema,
        "opacity_target": args.opacity_target,
        "palette": args.palette,
        "stretch": args.stretch,
        "lift": args.lift,
        "coarse": args.coarse,
        "extra_data": os.path.basename(os.path.normpath(args.extra_data)) if args.extra_data else None,
        "extra_val": args.extra_val,
        "extra_share": args.extra_share,
        "s2_rgb": os.path.basename(os.path.normpath(args.s2_rgb)) if args.s2_rgb else None,
        "s2_rgb_ts": os.path.basename(os.path.normpath(args.s2_rgb_ts)) if args.s2_rgb_ts else None,
        "s2_rgb_share": args.s2_rgb_share,
        "s2_rgb_clear": args.s2_rgb_clear,
        "cloud_weight": args.cloud_weight,
        "pixel_cloud_weight": args.pixel_cloud_weight,
        "anchor": args.anchor,
        "freeze_body": args.freeze_body,
        "init": init_record(args.init) if args.init and not state else None,
    }
    if state and "meta" in state:
        # The recipe can change between runs: record what this run used.
        changeable = ("synthetic", "identity", "align_labels", "ema", "extra_data", "extra_val", "extra_share",
                      "s2_rgb", "s2_rgb_ts", "s2_rgb_share", "s2_rgb_clear", "crop", "batch", "opacity_target",
                      "palette", "stretch", "lift", "coarse", "cloud_weight", "pixel_cloud_weight", "anchor")
        meta = {**state["meta"], **{k: v for k, v in meta.items() if k in changeable}}
        meta["val_blocks"] = still_held_out(state["meta"].get("val_blocks"), args.val_blocks)
    return meta


@functools.lru_cache(maxsize=1)
def init_source(path: str) -> dict:
    """The --init checkpoint, read once for its shape, its weights and the
    record of it (only read from, never changed)."""
    return torch.load(path, map_location="cpu")


def init_record(path: str) -> dict:
    """Which network a --init run started from (kept across its legs)."""
    src = init_source(path)
    meta = src.get("meta", {})
    # The source's whole recipe: whether this run's validation images were
    # in its training (RICE1 ids through --extra-data, say) is read there.
    return {"from": os.path.basename(path), "step": src.get("step"), "data": meta.get("data"),
            "val_blocks": meta.get("val_blocks"), "meta": meta}


def learning_rate(args: argparse.Namespace, step: int, start_step: int, elapsed_s: float) -> float:
    """--lr, or with --lr-end a cosine decay to it: by steps when the run is
    bounded by steps (equal-budget comparisons side by side), else by this
    run's wall-clock budget."""
    if args.lr_end is None:
        return args.lr
    if args.max_steps:
        frac = min(1.0, (step - start_step) / max(1, args.max_steps - start_step))
    else:
        frac = min(1.0, elapsed_s / (args.hours * 3600))
    return args.lr_end + (args.lr - args.lr_end) * 0.5 * (1 + math.cos(math.pi * frac))


@torch.no_grad()
def ema_update(ema: PixelCR, model: PixelCR, decay: float) -> None:
    for qe, qm in zip(ema.parameters(), model.parameters()):
        qe.lerp_(qm, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


@dataclass
class TrainingRun:
    """What a run updates and what its checkpoint holds. `prior` is the
    resumed checkpoint (None for a new run): its calibration stays."""
    model: PixelCR
    ema: PixelCR | None
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    cfg: PixelCRConfig
    meta: dict
    prior: dict | None
    step: int = 0
    wall_s: float = 0.0
    anchor: dict | None = None
    # The --init network's calibration and detector, kept when only a
    # context branch trains on it (its attention, so p, does not move).
    carried: dict | None = None


def start_run(args: argparse.Namespace, cfg: PixelCRConfig, state: dict | None, device: str) -> TrainingRun:
    """Build the model, optimiser, EMA and random stream, from the seed or
    from the resumed checkpoint. The order of the draws (torch seed, then
    the model's initialisation) is what makes a seed reproducible."""
    torch.manual_seed(args.seed)
    model = PixelCR(cfg).to(device)
    was_frozen = bool(state and state.get("meta", {}).get("freeze_body"))
    if state and args.freeze_body and not was_frozen:
        raise SystemExit(f"--freeze-body: {args.ckpt} trained its whole network; resume it without --freeze-body "
                         "(or start a new checkpoint with --init)")
    if state and args.context and not cfg.context_ch:
        raise SystemExit(f"--context: {args.ckpt} has no context branch, and a resumed run keeps its network's shape")
    frozen = bool(args.freeze_body or was_frozen)
    if frozen:
        if model.context is None:
            raise SystemExit("--freeze-body leaves nothing to train without a context branch (--context CH)")
        for name, q in model.named_parameters():
            q.requires_grad_(name.startswith("context."))
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr, betas=(0.5, 0.999),
                           weight_decay=1e-5)
    step, wall_s = 0, 0.0
    rng = np.random.default_rng(args.seed)
    carried = None
    if state is None and args.init:
        # A new run from another checkpoint's network: the weights that
        # shipped (the EMA when kept), nothing of its optimiser or split.
        src = init_source(args.init)
        weights = src["ema"] if src.get("ema") else src["model"]
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(not k.startswith("context.") for k in missing):
            raise SystemExit(f"--init {args.init}: weights do not fit (missing {missing}, unexpected {unexpected})")
        if frozen and src.get("probability"):
            # p does not move (the attention is frozen), but the calibration
            # was chosen by blended PSNR and by clear input coming back at
            # 40 dB, both of which read the network's output: kept for
            # reference, and the exporter refuses it until calibrate.py
            # --write-ckpt has measured it on this network.
            carried = {k: src[k] for k in ("probability", "detector") if src.get(k)}
            carried["probability_carried_from"] = os.path.basename(args.init)
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        for g in opt.param_groups:
            g["lr"] = args.lr
        step, wall_s = state["step"], state["wall_s"]
        rng.bit_generator.state = state["rng"]
    ema = None
    if args.ema > 0:
        ema = copy.deepcopy(model).eval()
        if state and state.get("ema"):
            ema.load_state_dict(state["ema"])
        for q in ema.parameters():
            q.requires_grad_(False)
    anchor = None
    if args.anchor > 0:
        # The first leg anchors to the weights it resumed from; later legs keep that anchor.
        src = state["anchor"] if state and state.get("anchor") else model.state_dict()
        anchor = {k: v.detach().clone().to(device) for k, v in src.items()}
    return TrainingRun(model=model, ema=ema, opt=opt, rng=rng, cfg=cfg, meta=recipe(args, state), prior=state,
                       step=step, wall_s=wall_s, anchor=anchor, carried=carried)


def anchor_penalty(model: PixelCR, anchor: dict) -> torch.Tensor:
    """sum((w - w0)^2) over the trainable weights (L2-SP)."""
    total = torch.zeros(())
    for name, q in model.named_parameters():
        if q.requires_grad and name in anchor:
            total = total + ((q - anchor[name]) ** 2).sum()
    return total


def save_checkpoint(run: TrainingRun, path: str) -> None:
    """Write everything needed to resume (atomically: a kill mid-write keeps
    the previous checkpoint)."""
    state = run.prior
    save_atomic(
        {"model": run.model.state_dict(), "ema": run.ema.state_dict() if run.ema is not None else None,
         "optim": run.opt.state_dict(), "step": run.step,
         "wall_s": run.wall_s, "config": run.cfg.to_dict(), "rng": run.rng.bit_generator.state, "meta": run.meta,
         "anchor": run.anchor,
         # A calibration (and the detector it was made for) written by
         # calibrate.py --write-ckpt stays until the next calibration.
         **(run.carried or {}),
         **({k: state[k] for k in ("probability", "detector", "probability_carried_from")
             if state and state.get(k)})},
        path,
    )


def stop_on_signals() -> dict:
    """SIGINT/SIGTERM: finish the current step, save, and exit cleanly, so a
    session can stop training at any moment without losing work. The
    returned flag's "now" turns True on a signal."""
    stop = {"now": False}

    def request_stop(signum, _frame):
        stop["now"] = True
        print(f"signal {signum}: saving and stopping after this step", flush=True)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def train_step(args: argparse.Namespace, run: TrainingRun, batch: tuple, device: str) -> dict:
    """One optimiser step on one batch, then the EMA; the loss parts."""
    x, y, bw, m = batch
    x, y, bw = x.to(device), y.to(device), bw.to(device)
    pred, maps = run.model.forward_all(x)
    loss, parts = pixel_cr_loss(pred, maps, x, y, threshold=args.threshold,
                                band_balanced=bool(run.meta.get("band_balanced")), band_weight=bw,
                                attn_target=m,
                                pixel_weight=thick_cloud_weight(x, y, args.pixel_cloud_weight, THICK_CLOUD_DIFF)
                                if args.pixel_cloud_weight > 0 else None)
    if run.anchor is not None:
        drift = anchor_penalty(run.model, run.anchor)
        loss = loss + args.anchor * drift
        parts = {**parts, "anchor_drift": float(drift)}
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    if run.ema is not None:
        ema_update(run.ema, run.model, args.ema)
    run.step += 1
    return parts


def log_progress(args: argparse.Namespace, run: TrainingRun, losses: list[dict], val: list[Pair],
                 log_path: str) -> None:
    """Print and append to the JSON-lines log the mean loss parts since the
    last record, with a quick validation (of the EMA when kept: it is what
    ships) every --eval-every steps."""
    avg = {k: float(np.mean([p[k] for p in losses])) for k in losses[0]}
    rec = {"step": run.step, "wall_s": round(run.wall_s, 1), **{k: round(v, 5) for k, v in avg.items()}}
    if run.step % args.eval_every == 0:
        rec.update(quick_val(run.ema if run.ema is not None else run.model, val, args.eval_n))
    print(json.dumps(rec), flush=True)
    with open(log_path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def train_until_stopped(args: argparse.Namespace, run: TrainingRun, train: list[Pair], val: list[Pair],
                        band_brightness: np.ndarray | None, aligned: dict[str, np.ndarray] | None,
                        device: str, stop: dict, weights: np.ndarray | None = None) -> None:
    """Train until a signal, the --hours budget or --max-steps; log every 25
    steps and save every --save-minutes (wall time counts training only, not
    the saves)."""
    log_path = args.ckpt + ".log.jsonl"
    t_start = time.time()
    start_step = run.step
    t_last_save = t_start
    t_prev = t_start
    run_losses = []
    while True:
        if stop["now"] or time.time() - t_start > args.hours * 3600 or (args.max_steps and run.step >= args.max_steps):
            break
        if args.lr_end is not None:
            for g in run.opt.param_groups:
                g["lr"] = learning_rate(args, run.step, start_step, time.time() - t_start)
        batch = make_batch(train, args.batch, args.crop, args.synthetic, run.rng, band_brightness,
                           identity=args.identity, aligned=aligned, opacity_target=args.opacity_target,
                           palette=args.palette, weights=weights, stretch=args.stretch,
                           lift=args.lift, coarse=args.coarse)
        parts = train_step(args, run, batch, device)
        now = time.time()
        run.wall_s += now - t_prev
        t_prev = now
        run_losses.append(parts)
        if run.step % 25 == 0:
            log_progress(args, run, run_losses, val, log_path)
            run_losses = []
        if now - t_last_save > args.save_minutes * 60:
            save_checkpoint(run, args.ckpt)
            t_last_save = now
            t_prev = time.time()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train, val, band_brightness, aligned, weights = load_training_data(args)
    cfg, state = network_config(args, train)
    assert args.crop % cfg.window == 0, f"--crop {args.crop} must be a multiple of the window {cfg.window}"
    run = start_run(args, cfg, state, device)
    print(f"Pixel-CR {cfg.to_dict()} params={count_params(run.model)} train={len(train)} val={len(val)} "
          f"start step={run.step} device={device}", flush=True)
    stop = stop_on_signals()
    train_until_stopped(args, run, train, val, band_brightness, aligned, device, stop, weights)
    save_checkpoint(run, args.ckpt)
    print(f"saved {args.ckpt} at step {run.step}, {run.wall_s / 3600:.2f} h of training in all", flush=True)


if __name__ == "__main__":
    main()
