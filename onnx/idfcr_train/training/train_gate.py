"""Train the RGB blend gate: where does the model's output beat the input?

    python -m idfcr_train.training.train_gate --data ../../shared/data/rice2_3s \
        --pixel-cr checkpoints/pixel_cr_rgb.pt --init-detector checkpoints/detector_rgb.pt \
        --ckpt checkpoints/gate_rgb.pt --hours 1 --threads 2 --resume

Why: the blend output = p x model + (1 - p) x input is only as good as p. A
cloud detector answers "is there cloud here?", which is not the question the
blend asks. It misses thin cirrus over dark sea (RICE2 block 9, where the
model's raw output is 3.7 dB better than the blended one) and fires on bright
clear fields (the Landsat 8 demo), where the model's output is a window mosaic.
The gate answers the blend's own question. It is the detector's network
(`models/detector.py`) reading, besides the input, what the model did: its
correction (output - input) and its cloudy-attention map; it starts as the
shipped detector (the extra inputs' weights start at zero) and learns p by
minimising the blended output's error itself:

    loss = 100 x mean |x + p (model(x) - x) - y|  +  sparsity x mean(p)

where the model's correction is small, p does not matter to the first term;
the second keeps it at 0 there, so that the feathering does not spread it.

Samples are drawn as Pixel-CR's training draws them (`train_pixel_cr.make_batch`):
real pairs (labels colour-aligned to the input's date, so a date change is not
mistaken for the model's fault), synthetic clouds over clear images, clear
images as their own input (the model's change can only hurt: p must be 0), and
shares of each with a user's stretch, a colour cast or another palette (where
the frozen model is least trustworthy). The Pixel-CR model is frozen; only the
gate trains. Validation scene blocks are held out.

The frozen model has seen RICE2's training pairs and partly remembers their
labels: on them it looks better than on a new scene, and a gate trained there
learns to trust it everywhere (measured: clear references given as input fell
from 49.6 to 34.4 dB in 420 steps). `--main-real 0` therefore takes from RICE2
only synthetic clouds and clear images (new every draw) and real pairs from
RICE1 (`--extra-data`), which the model never saw. `--s2-rgb` adds the
Sentinel-2 training scenes' real pairs as true-colour quick-looks, also never
seen by the model: real thick cloud over ground whose palette is not RICE2's
(top-of-atmosphere colours, like the Landsat 8 demo), where the model's fill
may or may not beat the input and its correction of clear ground recolours.

`--train-blocks` goes one step further: with a Pixel-CR trained with those
RICE2 blocks held out (`train_pixel_cr --val-blocks 3,9,4`), the gate learns
from real pairs of RICE2 itself on which the frozen model behaves as it will
on a new scene (the gate then ships beside the model trained on every block).

The gate goes into the Pixel-CR checkpoint like a detector
(`calibrate.py --detector GATE`), which calibrates its output into p.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import numpy as np
import torch

from idfcr_train.checkpoint import held_out_on_resume, load_state, save_atomic
from idfcr_train.data.pairs import load_rice, split_by_block
from idfcr_train.models.detector import GATE_EXTRA_IN, CloudDetector, gate_inputs, load_detector
from idfcr_train.models.pixel_cr import load_checkpoint
from idfcr_train.models.probability import blend
from idfcr_train.reports.metrics import psnr
from idfcr_train.training.run_options import add_run_options
from idfcr_train.training.train_pixel_cr import (aligned_labels, crop_to_window, load_extra_pairs, make_batch,
                                                 stop_on_signals)

def gate_loss(x: torch.Tensor, out: torch.Tensor, y: torch.Tensor, p: torch.Tensor,
              sparsity: float) -> tuple[torch.Tensor, dict]:
    """The blended output's L1 error (x100, as Pixel-CR's loss) plus a
    small pull of p towards 0."""
    l1 = (blend(x, out.clamp(0.0, 1.0), p) - y).abs().mean()
    total = 100.0 * l1 + sparsity * p.mean()
    return total, {"l1": float(l1.detach()), "p_mean": float(p.detach().mean())}


def draw(train: list, extra: list, args: argparse.Namespace, rng: np.random.Generator,
         aligned: dict, s2: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch (input, label). Without --main-real: Pixel-CR's draw over
    one pool. With it: --data's samples at the given share of real pairs
    (the rest synthetic and identity in their ratio), --extra-share of
    the batch from --extra-data and --s2-rgb-share from the Sentinel-2
    quick-looks, each with Pixel-CR's shares."""
    kw = dict(aligned=aligned, palette=args.palette, stretch=args.stretch, lift=args.lift)
    if args.main_real is None:
        x, y, _, _ = make_batch(train, args.batch, args.crop, args.synthetic, rng, identity=args.identity, **kw)
        return x, y
    n_extra = int(round(args.batch * args.extra_share)) if extra else 0
    n_s2 = int(round(args.batch * args.s2_rgb_share)) if s2 else 0
    if n_extra + n_s2 >= args.batch:
        raise ValueError(f"--extra-share and --s2-rgb-share leave no room for --data in a batch of {args.batch}")
    fake = 1.0 - args.main_real
    syn = fake * args.synthetic / max(args.synthetic + args.identity, 1e-9)
    xs, ys = [], []
    x, y, _, _ = make_batch(train, args.batch - n_extra - n_s2, args.crop, syn, rng, identity=fake - syn, **kw)
    xs.append(x), ys.append(y)
    for pool, n in ((extra, n_extra), (s2, n_s2)):
        if n:
            xe, ye, _, _ = make_batch(pool, n, args.crop, args.synthetic, rng, identity=args.identity, **kw)
            xs.append(xe), ys.append(ye)
    return torch.cat(xs), torch.cat(ys)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="RICE2 folder (split by scene block)")
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--train-blocks", default=None, metavar="B,...",
                    help="train only on these blocks of --data; each must be one the frozen --pixel-cr held out "
                         "(its checkpoint records them) and none a gate validation block")
    ap.add_argument("--extra-data", default=None, help="more RICE-layout pairs (RICE1) for training")
    ap.add_argument("--extra-val", default="300-399", metavar="LO-HI",
                    help="--extra-data ids held out (as Pixel-CR's RICE1 runs hold them out)")
    ap.add_argument("--pixel-cr", required=True, help="the frozen Pixel-CR checkpoint whose output the gate judges")
    ap.add_argument("--init-detector", default=None, help="start from this detector (extra inputs at zero)")
    ap.add_argument("--ckpt", required=True, help="gate checkpoint (read with --resume, always written)")
    ap.add_argument("--synthetic", type=float, default=0.25)
    ap.add_argument("--identity", type=float, default=0.2)
    ap.add_argument("--stretch", type=float, default=0.3)
    ap.add_argument("--lift", type=float, default=0.15)
    ap.add_argument("--palette", type=float, default=0.15)
    ap.add_argument("--main-real", type=float, default=None,
                    help="share of --data samples drawn from its real pairs (default: what --synthetic and --identity "
                         "leave). The frozen model was trained on those pairs and partly remembers their labels, so "
                         "there it looks better than it will on a new scene; 0 keeps only synthetic clouds and clear "
                         "images from --data (fresh every draw) and takes real pairs from --extra-data alone")
    ap.add_argument("--extra-share", type=float, default=0.25, help="share of each batch from --extra-data")
    ap.add_argument("--s2-rgb", default=None, metavar="SEN12MSCR",
                    help="with --main-real: real pairs of these Sentinel-2 training scenes as quick-looks (validation "
                         "scenes left out)")
    ap.add_argument("--s2-rgb-ts", default=None, metavar="SEN12MSCR_TS", help="and of this time series")
    ap.add_argument("--s2-rgb-share", type=float, default=0.25, help="share of each batch from --s2-rgb")
    ap.add_argument("--sparsity", type=float, default=0.5, help="weight of mean(p) in the loss")
    add_run_options(ap, lr=5e-4, threads=1)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--snapshot-every", type=int, default=0, metavar="STEPS",
                    help="also keep CKPT.stepN.pt every STEPS steps (a gate drifts as it trains: screen several)")
    return ap.parse_args(argv)


def unseen_training_blocks(train_blocks: str, model_val_blocks: str | None, gate_val_blocks: str) -> set[str]:
    """The blocks the gate may train on with `--train-blocks`: each must be
    held out by the frozen model (else the model remembers its labels there
    and the gate learns to trust it too much) and none may be a block the
    gate is validated on. Raises ValueError naming the offending blocks."""
    want = {b.strip() for b in train_blocks.split(",") if b.strip()}
    if not want:
        raise ValueError("--train-blocks names no block")
    model_held = {b.strip() for b in (model_val_blocks or "").split(",") if b.strip()}
    seen = sorted(want - model_held)
    if seen:
        raise ValueError(f"--train-blocks {','.join(seen)}: the frozen model trained on these blocks "
                         f"(it held out only {','.join(sorted(model_held)) or 'nothing recorded'})")
    gate_val = want & {b.strip() for b in gate_val_blocks.split(",")}
    if gate_val:
        raise ValueError(f"--train-blocks {','.join(sorted(gate_val))}: validation blocks of the gate")
    return want


@torch.no_grad()
def held_out(gate: CloudDetector, cases: list[dict]) -> dict:
    """On whole validation images (the model's outputs computed once by
    `held_out_cases`): PSNR of the gated blend (p as the gate gives it, no
    calibration) next to the raw model and doing nothing, and of each clear
    reference given as input."""
    gate.eval()
    gated, clear_in = [], []
    for c in cases:
        for tag, scores in (("c", gated), ("g", clear_in)):
            x = torch.from_numpy(c[tag])[None]
            out = c["out_" + tag]
            p = gate(x, gate_inputs(x, out, c["att_" + tag]))
            scores.append(psnr(blend(x, out, p)[0].numpy(), c["g"]))
    gate.train()
    mean = lambda k: round(float(np.mean([c[k] for c in cases])), 3)  # noqa: E731
    return {"val_raw": mean("raw"), "val_gated": round(float(np.mean(gated)), 3), "val_nothing": mean("nothing"),
            "val_clear_in": round(float(np.mean(clear_in)), 3), "val_clear_in_min": round(float(np.min(clear_in)), 2),
            "val_n": len(cases)}


@torch.no_grad()
def held_out_cases(model, val, every: int) -> list[dict]:
    """Every `every`-th validation image, cloudy and clear in, with the
    frozen model's outputs (clipped as written) and the scores that do not
    depend on the gate."""
    win = model.cfg.window
    cases = []
    for p in val[::every]:
        c, g = crop_to_window(p.cloudy, win), crop_to_window(p.clear, win)
        rec = {"c": np.ascontiguousarray(c), "g": np.ascontiguousarray(g)}
        for tag in ("c", "g"):
            out, att = model(torch.from_numpy(rec[tag])[None])
            rec["out_" + tag], rec["att_" + tag] = out.clamp(0.0, 1.0), att
        rec["raw"], rec["nothing"] = psnr(rec["out_c"][0].numpy(), g), psnr(c, g)
        cases.append(rec)
    return cases


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, model_state = load_checkpoint(args.pixel_cr)
    for q in model.parameters():
        q.requires_grad_(False)
    train, val = split_by_block(load_rice(args.data), set(args.val_blocks.split(",")))
    if args.train_blocks:
        model_val = model_state.get("meta", {}).get("val_blocks")
        try:
            blocks = unseen_training_blocks(args.train_blocks, model_val, args.val_blocks)
        except ValueError as e:
            raise SystemExit(f"{args.pixel_cr}: {e}")
        train = [p for p in train if p.block in blocks]
        if not train:
            raise SystemExit(f"{args.data}: no pairs in blocks {args.train_blocks}")
    extra = load_extra_pairs(args.extra_data, args.extra_val) if args.extra_data else []
    s2 = []
    if args.s2_rgb:
        if args.main_real is None:
            raise SystemExit("--s2-rgb needs --main-real (the quick-looks are drawn as their own share)")
        from idfcr_train.data.s2 import DEFAULT_VAL_SCENES, load_s2_rgb

        s2, _ = split_by_block(load_s2_rgb(args.s2_rgb, args.s2_rgb_ts), set(DEFAULT_VAL_SCENES.split(",")))
    if args.main_real is None:
        # One pool, each pair as likely as any other (the first gate's recipe).
        train, extra = train + extra, []
    aligned = aligned_labels(train + extra + s2)

    state = load_state(args.ckpt) if args.resume and os.path.exists(args.ckpt) else None
    torch.manual_seed(args.seed)
    if state:
        gate = load_detector(state)
    elif args.init_detector:
        gate = load_detector(args.init_detector).with_extra_inputs(GATE_EXTRA_IN)
    else:
        gate = CloudDetector(3, 16, GATE_EXTRA_IN)
    gate.train()
    opt = torch.optim.Adam(gate.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    step, wall_s = 0, 0.0
    if state:
        opt.load_state_dict(state["optim"])
        step, wall_s = state["step"], state["wall_s"]
        rng.bit_generator.state = state["rng"]
    meta = {"data": os.path.basename(os.path.normpath(args.data)),
            "val_blocks": held_out_on_resume(state, args.val_blocks),
            "train_blocks": args.train_blocks,
            "extra_data": args.extra_data and os.path.basename(os.path.normpath(args.extra_data)),
            "pixel_cr": os.path.basename(args.pixel_cr), "init_detector": args.init_detector and os.path.basename(args.init_detector),
            **{k: getattr(args, k) for k in ("synthetic", "identity", "stretch", "lift", "palette", "sparsity",
                                             "crop", "batch", "lr", "main_real", "extra_share", "s2_rgb_share")},
            "s2_rgb": args.s2_rgb and os.path.basename(os.path.normpath(args.s2_rgb)),
            "s2_rgb_ts": args.s2_rgb_ts and os.path.basename(os.path.normpath(args.s2_rgb_ts))}

    def save() -> None:
        save_atomic({"model": gate.state_dict(), "optim": opt.state_dict(), "config": gate.config(), "step": step,
                     "wall_s": wall_s, "rng": rng.bit_generator.state, "meta": meta}, args.ckpt)

    cases = held_out_cases(model, val, 16)
    print(f"gate params={sum(q.numel() for q in gate.parameters())} train={len(train)} extra={len(extra)} "
          f"s2={len(s2)} held-out={len(cases)} "
          f"start step={step} {json.dumps(held_out(gate, cases))}", flush=True)
    stop = stop_on_signals()
    log_path = args.ckpt + ".log.jsonl"
    t_start = t_prev = t_save = time.time()
    parts = []
    while not stop["now"] and time.time() - t_start < args.hours * 3600:
        frac = (time.time() - t_start) / (args.hours * 3600)
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        x, y = draw(train, extra, args, rng, aligned, s2)
        with torch.no_grad():
            out, att = model(x)
        p = gate(x, gate_inputs(x, out, att))
        loss, part = gate_loss(x, out, y, p, args.sparsity)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        now = time.time()
        wall_s += now - t_prev
        t_prev = now
        parts.append(part)
        if step % 25 == 0:
            rec = {"step": step, "wall_s": round(wall_s, 1),
                   **{k: round(float(np.mean([q[k] for q in parts])), 5) for k in parts[0]}}
            parts = []
            if step % args.eval_every == 0:
                rec.update(held_out(gate, cases))
            print(json.dumps(rec), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if args.snapshot_every and step % args.snapshot_every == 0:
            save()
            shutil.copyfile(args.ckpt, f"{args.ckpt[:-3] if args.ckpt.endswith('.pt') else args.ckpt}.step{step}.pt")
        if now - t_save > args.save_minutes * 60:
            save()
            t_save = now
    save()
    print(json.dumps({"final": held_out(gate, cases), "step": step}), flush=True)


if __name__ == "__main__":
    main()
