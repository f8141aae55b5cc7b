"""Train the RGB cloud detector (`models/detector.py`: what it is and why).

    python -m idfcr_train.training.train_detector --data ../../shared/data/rice2_3s \
        --extra-data ../../shared/data/rice1_xj --s2-data ../../shared/data/sen12mscr_oriolac \
        --ckpt checkpoints/detector_rgb.pt --hours 0.5 --threads 1 --resume
        [--s2-teacher ../../shared/data/sen12mscr_oriolac --s2-teacher-ts ../../shared/data/sen12mscr_ts_oriolac
         --teacher-share 0.3 --stretch 0.3]

Data: synthetic clouds over colour-augmented clear images (RICE2 and RICE1
training images, the RGB bands of the SEN12MS-CR training scenes), clear
images as they are (target 0), and real RICE pairs (target from the
colour-aligned difference). Validation scene blocks are held out.
With `--s2-teacher`: real clouds in Sentinel-2 true-colour quick-looks,
labelled by s2cloudless from all their bands (`data.s2_teacher`). With
`--stretch`: a share of all samples percentile-stretched as users stretch
their crops (`data.pairs.random_stretch`; a monotone map per band, so the
target does not change).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from idfcr_train.checkpoint import held_out_on_resume, load_state, save_atomic
from idfcr_train.data.bright_ground import add_bright_fields
from idfcr_train.data.pairs import (Pair, align_label, load_rice, random_crop_pair, random_lift, random_stretch,
                                   split_by_block)
from idfcr_train.data.s2_teacher import TeacherImage
from idfcr_train.data.synth_clouds import add_clouds
from idfcr_train.models.detector import CloudDetector
from idfcr_train.training.run_options import add_run_options


# --- training data ----------------------------------------------------------

def colour_augment(img: np.ndarray, rng: np.random.Generator, saturate: bool = False) -> np.ndarray:
    """Another sensor, stretch or season: permuted bands, per-band gain,
    gamma and a global brightness. (bands, H, W) in 0..1."""
    if rng.uniform() < 0.5:
        img = img[rng.permutation(img.shape[0])]
    if saturate and rng.uniform() < 0.5:
        # More saturated colours (pink or teal fields of other stretches):
        # bright but coloured ground must stay p = 0. Off by default: 0.35 h
        # of it made the detector flag more clear ground, not less.
        mean = img.mean(axis=0, keepdims=True)
        img = mean + rng.uniform(1.0, 2.0) * (img - mean)
    gain = rng.uniform(0.75, 1.3, size=(img.shape[0], 1, 1)) * rng.uniform(0.6, 1.5)
    gamma = rng.uniform(0.6, 1.6)
    return np.clip(np.clip(img * gain, 0.0, 1.0) ** gamma, 0.0, 1.0).astype(np.float32)


def real_target(cloudy: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Opacity estimate for a real pair: the signed mean difference over
    bands (cloud and haze brighten every band; a field changing crop between
    the two dates changes bands in different directions), its size also
    counting shadows, from 0.03 (noise, small date changes) to 0.15. It stays
    an opacity with `--target-scale`: a steeper ramp (0.03 -> 0.054) turned
    date changes into cloud and the detector flagged 27-40 % of clear
    validation images at times."""
    d = np.abs((cloudy - label).mean(axis=0))
    return np.clip((d - 0.03) / 0.12, 0.0, 1.0).astype(np.float32)


def target(alpha: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """What the detector learns for a synthetic cloud of opacity `alpha`.
    scale 1: the opacity itself. Smaller: presence, min(1, alpha / scale).
    The runtime blends output = p x model + (1 - p) x input, so a haze of
    opacity 0.1 that the model removes well wants p near 1, not 0.1: with
    opacity targets, thin haze (RICE2 block 9) stayed under any threshold
    that also left clear ground alone."""
    return np.minimum(alpha / scale, 1.0).astype(np.float32)


def s2_rgb_clear(root: str, val_scenes: str | None) -> list[np.ndarray]:
    """The clear true-colour quick-looks (`data.s2.quicklook`) of SEN12MS-CR
    training scenes: other sensors and palettes."""
    from idfcr_train.data.s2 import DEFAULT_VAL_SCENES, load_s2_rgb

    train, _ = split_by_block(load_s2_rgb(root), set((val_scenes or DEFAULT_VAL_SCENES).split(",")))
    return [p.clear for p in train]


def clear_rasters(paths: str) -> list[np.ndarray]:
    """Clear 8-bit rasters (their first three bands as RGB, / 255) as extra
    ground for synthetic clouds: other sensors' palettes."""
    from osgeo import gdal

    out = []
    for path in [p for p in paths.split(",") if p]:
        ds = gdal.Open(path)
        assert ds is not None and ds.RasterCount >= 3, f"{path}: need a raster with 3+ bands"
        arr = np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(3)]).astype(np.float32)
        out.append(np.clip(arr / 255.0, 0.0, 1.0))
    return out


def teacher_crop(images: list[TeacherImage], crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of a random quick-look and its target, reflect-padded
    to `crop` when the image is smaller (SEN12MS-CR patches are 256 px)."""
    im = images[int(rng.integers(0, len(images)))]
    h, w = im.target.shape
    c = min(crop, h, w)
    y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
    rgb, t = im.rgb[:, y : y + c, x : x + c], im.target[y : y + c, x : x + c]
    if c < crop:
        rgb = np.pad(rgb, ((0, 0), (0, crop - c), (0, crop - c)), mode="reflect")
        t = np.pad(t, ((0, crop - c), (0, crop - c)), mode="reflect")
    # Mild colour changes only, as for RICE pairs: a strong gain would tint the cloud.
    g = rng.uniform(0.9, 1.1, size=(rgb.shape[0], 1, 1))
    return np.clip(rgb * g, 0.0, 1.0).astype(np.float32), t.astype(np.float32)


def synthetic_sample(rice: list[Pair], extra_clear: list[np.ndarray], crop: int, rng: np.random.Generator,
                     with_cloud: bool, *, saturate: bool, bright: float, lift: float,
                     target_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour-augmented clear ground (RICE or the extra clear images), with
    a synthetic cloud (target from its opacity) or without (target 0)."""
    if extra_clear and rng.uniform() < 0.3:
        img = extra_clear[int(rng.integers(0, len(extra_clear)))]
        c = min(crop, img.shape[1], img.shape[2])
        y, x = rng.integers(0, img.shape[1] - c + 1), rng.integers(0, img.shape[2] - c + 1)
        clear = img[:, y : y + c, x : x + c]
        if c < crop:
            clear = np.pad(clear, ((0, 0), (0, crop - c), (0, crop - c)), mode="reflect")
    else:
        p = rice[int(rng.integers(0, len(rice)))]
        _, clear = random_crop_pair(p.clear_raw, p.clear_raw, crop, rng)
        clear = clear.astype(np.float32) * p.scale
    clear = colour_augment(clear, rng, saturate)
    # No draw at --bright-fields 0, so that older recipes keep their random stream.
    if bright > 0 and rng.uniform() < bright:
        clear = add_bright_fields(clear, rng)
    # Likewise no draw at --lift 0.
    if lift > 0 and rng.uniform() < lift:
        clear = random_lift(clear.shape[0], rng)(clear)
    if with_cloud:
        x_img, alpha = add_clouds(clear, rng)
        return x_img, target(alpha, target_scale)
    return clear, np.zeros(clear.shape[1:], np.float32)


def real_pair_sample(rice: list[Pair], aligned: list[np.ndarray], crop: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A crop of a real cloudy image, target from its colour-aligned label."""
    i = int(rng.integers(0, len(rice)))
    p, label = rice[i], aligned[i]
    a, b = random_crop_pair(p.cloudy_raw, label, crop, rng)
    a = a.astype(np.float32) * p.scale
    b = b.astype(np.float32) * (1.0 if b.dtype == np.float32 else p.scale)
    t = real_target(a, b)
    # Mild colour changes only: a strong gain would tint the cloud.
    g = rng.uniform(0.9, 1.1, size=(a.shape[0], 1, 1))
    return np.clip(a * g, 0.0, 1.0).astype(np.float32), t


def make_batch(rice: list[Pair], aligned: list[np.ndarray], extra_clear: list[np.ndarray], batch: int, crop: int,
               rng: np.random.Generator, *, synthetic: float = 0.6, identity: float = 0.1, saturate: bool = False,
               bright: float = 0.0, target_scale: float = 1.0, lift: float = 0.0,
               teacher: list[TeacherImage] | None = None, teacher_share: float = 0.0, stretch: float = 0.0):
    """`bright`: share of the synthetic and identity samples whose ground
    gets bright, pale, sharp-edged patches (`data.bright_ground`; target 0
    there) before any cloud is added. `target_scale`: see `target`.
    `lift`: share of the synthetic and identity samples whose ground is
    squeezed per band into a higher range (`data.random_lift`: a colour
    cast with raised floors, which is not haze; target 0 there) before any
    cloud is added. `teacher_share`: share of samples that are Sentinel-2
    quick-looks with s2cloudless targets (the rest split as before).
    `stretch`: share of all samples percentile-stretched (fitted on the
    sample itself, clouds included, as a user stretches a cloudy scene)."""
    xs, ts = [], []
    for _ in range(batch):
        # No draw at --teacher-share 0 or --stretch 0, so that older recipes keep their random stream.
        if teacher and teacher_share > 0 and rng.uniform() < teacher_share:
            x_img, t = teacher_crop(teacher, crop, rng)
        else:
            u = rng.uniform()
            if u < synthetic + identity:
                x_img, t = synthetic_sample(rice, extra_clear, crop, rng, u < synthetic, saturate=saturate,
                                            bright=bright, lift=lift, target_scale=target_scale)
            else:
                x_img, t = real_pair_sample(rice, aligned, crop, rng)
        if stretch > 0 and rng.uniform() < stretch:
            x_img = random_stretch(x_img, rng)(x_img)
        xs.append(x_img)
        ts.append(t[None])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts).astype(np.float32))


@torch.no_grad()
def synthetic_score(det: CloudDetector, clear_imgs: list[np.ndarray], seed: int = 3) -> dict:
    """Precision/recall (p > 0.5 vs opacity > 0.1) on synthetic clouds over
    held-out clear images, and the share of pixels flagged on the clear
    images themselves (false alarms), and with bright sharp-edged fields
    painted in (`data.bright_ground`: bright ground that is not cloud)."""
    rng = np.random.default_rng(seed)
    tp = fp = fn = 0.0
    false_alarm, bright_alarm, lift_alarm = [], [], []
    rng_fields = np.random.default_rng(seed + 1)  # its own stream: the cloud draws stay as they were
    rng_lift = np.random.default_rng(seed + 2)
    det.eval()
    for img in clear_imgs:
        img = img[:, : img.shape[1] // 8 * 8, : img.shape[2] // 8 * 8]
        syn, alpha = add_clouds(img, rng)
        pred = det(torch.from_numpy(syn)[None])[0, 0].numpy() > 0.5
        truth = alpha > 0.1
        tp += float((pred & truth).sum())
        fp += float((pred & ~truth).sum())
        fn += float((~pred & truth).sum())
        false_alarm.append(float((det(torch.from_numpy(np.ascontiguousarray(img))[None])[0, 0] > 0.5).float().mean()))
        fields = add_bright_fields(np.ascontiguousarray(img), rng_fields)
        bright_alarm.append(float((det(torch.from_numpy(fields)[None])[0, 0] > 0.5).float().mean()))
        cast = random_lift(img.shape[0], rng_lift)(np.ascontiguousarray(img))
        lift_alarm.append(float((det(torch.from_numpy(cast)[None])[0, 0] > 0.5).float().mean()))
    det.train()
    return {"precision": tp / max(tp + fp, 1.0), "recall": tp / max(tp + fn, 1.0),
            "clear_flagged_share": float(np.mean(false_alarm)),
            "bright_fields_flagged_share": float(np.mean(bright_alarm)),
            "colour_cast_flagged_share": float(np.mean(lift_alarm))}


def percentile_stretch(img: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> np.ndarray:
    """Each band's lo..hi percentiles onto 0..1: how the Landsat 8 demo and
    many users' true-colour crops are made."""
    a = np.percentile(img, lo, axis=(1, 2), keepdims=True)
    b = np.percentile(img, hi, axis=(1, 2), keepdims=True)
    return np.clip((img - a) / np.maximum(b - a, 1e-3), 0.0, 1.0).astype(np.float32)


@torch.no_grad()
def teacher_score(det: CloudDetector, images: list[TeacherImage]) -> dict:
    """On held-out Sentinel-2 quick-looks: precision/recall of p > 0.5
    against s2cloudless's target > 0.5, as they are and after a 1-99 %
    per-band stretch; and the share of pixels flagged on the images that
    s2cloudless calls clear (target > 0.5 on under 1 % of them), stretched."""
    det.eval()
    out = {}
    for name, prep in (("", lambda x: x), ("stretched_", percentile_stretch)):
        tp = fp = fn = 0.0
        clear_flagged = []
        for im in images:
            x = prep(im.rgb)
            pred = det(torch.from_numpy(np.ascontiguousarray(x))[None])[0, 0].numpy() > 0.5
            truth = im.target > 0.5
            tp += float((pred & truth).sum())
            fp += float((pred & ~truth).sum())
            fn += float((~pred & truth).sum())
            if truth.mean() < 0.01:
                clear_flagged.append(float(pred.mean()))
        out[f"s2_{name}precision"] = tp / max(tp + fp, 1.0)
        out[f"s2_{name}recall"] = tp / max(tp + fn, 1.0)
        out[f"s2_{name}clear_flagged_share"] = float(np.mean(clear_flagged)) if clear_flagged else None
    det.train()
    return out


# --- training run -------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="RICE2 folder (split by scene block)")
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--extra-data", default=None, help="more RICE-layout pairs (RICE1), all for training")
    ap.add_argument("--s2-data", default=None, help="SEN12MS-CR pairs: clear training scenes' RGB, synthetic clouds")
    ap.add_argument("--clear-rasters", default="",
                    help="comma-separated clear 8-bit rasters (first 3 bands RGB): more ground for synthetic clouds")
    ap.add_argument("--saturation-boost", action="store_true",
                    help="also oversaturate the ground's colours in augmentation (did not help so far)")
    ap.add_argument("--bright-fields", type=float, default=0.0,
                    help="share of synthetic and clear samples with bright, sharp-edged ground patches (hard negatives)")
    ap.add_argument("--lift", type=float, default=0.0,
                    help="share of synthetic and clear samples whose ground gets a colour cast with raised floors "
                         "(data.random_lift; hard negatives)")
    ap.add_argument("--target-scale", type=float, default=1.0,
                    help="learn min(1, opacity / S) on synthetic clouds: presence of thin haze, not its opacity (1: opacity)")
    ap.add_argument("--s2-teacher", default=None,
                    help="SEN12MS-CR pairs: true-colour quick-looks of every date with s2cloudless targets (data.s2_teacher)")
    ap.add_argument("--s2-teacher-ts", default=None, help="SEN12MS-CR-TS time series, the same way")
    ap.add_argument("--s2cloudless", default="models/s2cloudless.onnx", help="the converted s2cloudless graph")
    ap.add_argument("--teacher-share", type=float, default=0.3, help="share of samples from --s2-teacher")
    ap.add_argument("--stretch", type=float, default=0.0,
                    help="share of all samples percentile-stretched as users stretch crops (data.pairs.random_stretch)")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--width", type=int, default=16)
    add_run_options(ap, crop=192, lr=1e-3, hours=0.5, threads=1)
    return ap.parse_args(argv)


@dataclass
class DetectorData:
    """What a run trains and checks on. The labels are a list by position
    because RICE1 and RICE2 ids overlap; the held-out check puts synthetic
    clouds over every 8th validation clear image (scene blocks no training
    saw) and, with a teacher, scores the validation scenes' quick-looks."""
    train: list[Pair]
    aligned: list[np.ndarray]
    extra: list[np.ndarray]
    val_clear: list[np.ndarray]
    teacher: list[TeacherImage]
    teacher_val: list[TeacherImage]

    def score(self, det: CloudDetector) -> dict:
        rec = synthetic_score(det, self.val_clear)
        if self.teacher_val:
            rec.update(teacher_score(det, self.teacher_val))
        return rec


def load_detector_data(args: argparse.Namespace) -> DetectorData:
    pairs = load_rice(args.data)
    train, val = split_by_block(pairs, set(args.val_blocks.split(",")))
    if args.extra_data:
        train = train + load_rice(args.extra_data)
    aligned = [align_label(p.cloudy, p.clear) for p in train]
    extra = (s2_rgb_clear(args.s2_data, None) if args.s2_data else []) + clear_rasters(args.clear_rasters)
    teacher, teacher_val = [], []
    if args.s2_teacher:
        from idfcr_train.data.s2_teacher import load_teacher_images

        teacher, teacher_val = load_teacher_images(args.s2_teacher, args.s2_teacher_ts, args.s2cloudless,
                                                   threads=args.threads)
    return DetectorData(train, aligned, extra, [p.clear for p in val[::8]], teacher, teacher_val)


@dataclass
class DetectorRun:
    """What a run updates and what its checkpoint holds."""
    det: CloudDetector
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    meta: dict
    step: int = 0
    wall_s: float = 0.0


def start_run(args: argparse.Namespace) -> DetectorRun:
    """Build the detector, optimiser and random stream from the seed, or
    restore them from the checkpoint with --resume. The torch seed comes
    right before the detector's initialisation, so a seed is reproducible."""
    state = load_state(args.ckpt) if args.resume and os.path.exists(args.ckpt) else None
    torch.manual_seed(args.seed)
    det = CloudDetector(3, args.width)
    opt = torch.optim.Adam(det.parameters(), lr=args.lr)
    step, wall_s = 0, 0.0
    rng = np.random.default_rng(args.seed)
    if state:
        det.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step, wall_s = state["step"], state["wall_s"]
        rng.bit_generator.state = state["rng"]
    meta = {"data": os.path.basename(os.path.normpath(args.data)),
            "val_blocks": held_out_on_resume(state, args.val_blocks),
            "extra_data": args.extra_data and os.path.basename(os.path.normpath(args.extra_data)),
            "s2_data": args.s2_data and os.path.basename(os.path.normpath(args.s2_data)),
            "clear_rasters": [os.path.basename(p) for p in args.clear_rasters.split(",") if p],
            "crop": args.crop, "batch": args.batch, "bright_fields": args.bright_fields,
            "target_scale": args.target_scale, "lift": args.lift,
            "s2_teacher": args.s2_teacher and os.path.basename(os.path.normpath(args.s2_teacher)),
            "teacher_share": args.teacher_share if args.s2_teacher else 0.0, "stretch": args.stretch}
    return DetectorRun(det=det, opt=opt, rng=rng, meta=meta, step=step, wall_s=wall_s)


def save_checkpoint(run: DetectorRun, path: str) -> None:
    """Write everything needed to resume (atomically)."""
    save_atomic({"model": run.det.state_dict(), "optim": run.opt.state_dict(), "config": run.det.config(),
                 "step": run.step, "wall_s": run.wall_s, "rng": run.rng.bit_generator.state, "meta": run.meta},
                path)


def train_until_stopped(args: argparse.Namespace, run: DetectorRun, data: DetectorData) -> None:
    """Train until SIGINT/SIGTERM or the --hours budget, the learning rate
    cosine-decayed over this run's budget (a detector trains in well under an
    hour); log every 50 steps (with the held-out score every 200) and save
    every --save-minutes."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    log_path = args.ckpt + ".log.jsonl"
    t_start = t_prev = t_save = time.time()
    losses = []
    while not stop["now"] and time.time() - t_start < args.hours * 3600:
        frac = (time.time() - t_start) / (args.hours * 3600)
        for g in run.opt.param_groups:
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        x, t = make_batch(data.train, data.aligned, data.extra, args.batch, args.crop, run.rng,
                          saturate=args.saturation_boost, teacher=data.teacher, teacher_share=args.teacher_share,
                          stretch=args.stretch,
                          bright=args.bright_fields, target_scale=args.target_scale, lift=args.lift)
        logit = run.det.logits(x)
        loss = F.binary_cross_entropy_with_logits(logit, t)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.step += 1
        now = time.time()
        run.wall_s += now - t_prev
        t_prev = now
        losses.append(float(loss))
        if run.step % 50 == 0:
            rec = {"step": run.step, "wall_s": round(run.wall_s, 1), "bce": round(float(np.mean(losses)), 5)}
            losses = []
            if run.step % 200 == 0:
                rec.update(data.score(run.det))
            print(json.dumps(rec), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if now - t_save > args.save_minutes * 60:
            save_checkpoint(run, args.ckpt)
            t_save = now


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_detector_data(args)
    run = start_run(args)
    print(f"detector {run.det.config()} params={sum(p.numel() for p in run.det.parameters())} "
          f"train={len(data.train)} (+{len(data.extra)} S2 clear, {len(data.teacher)} teacher quick-looks) "
          f"start step={run.step}", flush=True)
    train_until_stopped(args, run, data)
    save_checkpoint(run, args.ckpt)
    print(json.dumps({"final": data.score(run.det), "step": run.step}), flush=True)


if __name__ == "__main__":
    main()
