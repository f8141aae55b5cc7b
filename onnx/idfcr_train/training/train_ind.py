"""Train the IND stage in three resumable stages; one checkpoint file holds
them all.

    # 1. autoencoder on clear images (codebook lookup, Eq. 9)
    python -m idfcr_train.training.train_ind --stage ae --data ../../shared/data/rice2_3s --ckpt checkpoints/ind_rgb.pt --hours 1 --resume
    # 2. UNet on clear latents (epsilon prediction), then frozen
    python -m idfcr_train.training.train_ind --stage unet --data ../../shared/data/rice2_3s --ckpt checkpoints/ind_rgb.pt --hours 1 --resume
    # 3. ControlNet on (Pixel-CR output latent -> clear latent) with INR, K = 3
    python -m idfcr_train.training.train_ind --stage control --data ../../shared/data/rice2_3s --ckpt checkpoints/ind_rgb.pt \\
        --pixel-cr checkpoints/pixel_cr_rgb.pt --k-iters 3 --hours 2 --resume

Validation scene blocks are held out of every stage (split by block, never
at random). Each stage logs to `<ckpt>.<stage>.log.jsonl`; SIGINT/SIGTERM
save and stop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import time

import numpy as np
import torch
import torch.nn.functional as F

from idfcr_train.checkpoint import held_out_on_resume, save_atomic
from idfcr_train.data.pairs import load_rice, random_crop_pair, split_by_block
from idfcr_train.models.ind import (AEConfig, Autoencoder, ControlNet, Denoiser, UNet, UNetConfig, alphas_cumprod, inr_step,
                  measure_latent_scale, q_sample, reconstruction_loss)
from idfcr_train.models.pixel_cr import load_checkpoint
from idfcr_train.training.run_options import add_run_options


def crops(pairs, n: int, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for _ in range(n):
        p = pairs[int(rng.integers(0, len(pairs)))]
        a, b = random_crop_pair(p.cloudy_raw, p.clear_raw, crop, rng)
        xs.append(a.astype(np.float32) * p.scale)
        ys.append(b.astype(np.float32) * p.scale)
    return np.stack(xs), np.stack(ys)


@torch.no_grad()
def with_cached_condition(pairs, pixel_cr_ckpt: str, cache: str):
    """The training pairs with the cloudy image replaced by the Pixel-CR output
    on the whole image (as the runtime produces it, quantised like the data).
    Crops of whole-image outputs avoid the crop-border effects of running
    Pixel-CR per crop, and cost one pass instead of one per step."""
    have = dict(np.load(cache)) if os.path.exists(cache) else {}
    missing = [p for p in pairs if p.id not in have]
    if missing:
        model, _ = load_checkpoint(pixel_cr_ckpt)
        t0 = time.time()
        for i, p in enumerate(missing):
            out = model(torch.from_numpy(p.cloudy)[None])[0][0].clamp(0, 1).numpy()
            have[p.id] = np.round(out / p.scale).astype(p.clear_raw.dtype)
            if (i + 1) % 10 == 0 or i + 1 == len(missing):
                print(f"condition {i + 1}/{len(missing)} ({time.time() - t0:.0f} s)", flush=True)
                np.savez(cache + ".tmp.npz", **have)
                os.replace(cache + ".tmp.npz", cache)
    return [dataclasses.replace(p, cloudy_raw=have[p.id]) for p in pairs]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=["ae", "decoder", "unet", "control", "cond"],
                    help="cond: only compute the --cond-cache of Pixel-CR outputs (runs beside stage ae)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--pixel-cr", help="Pixel-CR checkpoint giving the condition images (stage control)")
    ap.add_argument("--cond-cache", help="npz of Pixel-CR outputs on the training images (uint8 like the data), "
                    "computed once on whole images and reused; never commit it (derived imagery)")
    ap.add_argument("--val-blocks", default="3,9")
    ap.add_argument("--ae-channels", default="32,64,128", help="autoencoder widths; latent factor 2^(n-1)")
    ap.add_argument("--codebook", type=int, default=1024)
    ap.add_argument("--kl", action="store_true", help="KL autoencoder instead of the codebook")
    ap.add_argument("--ae-latent", type=int, default=4, help="latent channels of the autoencoder")
    ap.add_argument("--kl-weight", type=float, default=1e-4, help="weight of the KL term (--kl)")
    ap.add_argument("--unet-channels", default="64,128")
    ap.add_argument("--grad-weight", type=float, default=1.0,
                    help="weight of the image-difference L1 in the autoencoder and decoder stages")
    ap.add_argument("--k-iters", type=int, default=3, help="INR refinement iterations K")
    add_run_options(ap, lr=2e-4)
    ap.add_argument("--max-steps", type=int, default=0)
    return ap.parse_args(argv)


def build_networks(args: argparse.Namespace, state: dict, bands: int):
    """(ae config, UNet config, autoencoder, UNet, ControlNet): from the
    checkpoint when it has them, else new from the flags."""
    ae_cfg = AEConfig.from_dict(state["ae_config"]) if "ae_config" in state else AEConfig(
        in_bands=bands, channels=[int(c) for c in args.ae_channels.split(",")],
        codebook=0 if args.kl else args.codebook, kl=args.kl, latent=args.ae_latent, kl_weight=args.kl_weight)
    unet_cfg = UNetConfig.from_dict(state["unet_config"]) if "unet_config" in state else UNetConfig(
        latent=ae_cfg.latent, channels=[int(c) for c in args.unet_channels.split(",")])
    ae, unet = Autoencoder(ae_cfg), UNet(unet_cfg)
    if "ae" in state:
        ae.load_state_dict(state["ae"])
    if "unet" in state:
        unet.load_state_dict(state["unet"])
    control = ControlNet(unet)
    if "control" in state:
        control.load_state_dict(state["control"])
    return ae_cfg, unet_cfg, ae, unet, control


def prepare_stage(stage: str, args: argparse.Namespace, state: dict, steps: dict, train, ae, unet):
    """Freeze what this stage does not train (the autoencoder after its
    stage, the UNet for the ControlNet); measure the latent scale when the
    UNet stage starts; returns the Pixel-CR model when the control stage
    computes its conditions on the fly (else None)."""
    pixel_cr = None
    if stage != "ae":
        assert "ae" in state, "train the autoencoder first (--stage ae)"
        for p in ae.parameters():
            p.requires_grad_(False)
        ae.eval()
        if stage == "unet" and steps.get("unet", 0) == 0:
            _, sample = crops(train, 64, args.crop, np.random.default_rng(1234))
            ae.latent_scale.fill_(measure_latent_scale(ae, torch.from_numpy(sample)))
            print(f"latent scale {float(ae.latent_scale):.5f} (1/std of 64 clear training crops)", flush=True)
    if stage == "decoder":
        # Encoder, codebook and latent scale stay frozen: the latents the UNet
        # and ControlNet were trained on do not move.
        for p in ae.decoder_parameters():
            p.requires_grad_(True)
    if stage == "control":
        assert "unet" in state, "train the UNet first (--stage unet)"
        assert args.pixel_cr, "--pixel-cr is needed for the condition images"
        for p in unet.parameters():
            p.requires_grad_(False)
        if not args.cond_cache:
            pixel_cr, _ = load_checkpoint(args.pixel_cr)
    return pixel_cr


def train_step(stage: str, args: argparse.Namespace, nets: dict, opt, ac, cloudy: np.ndarray, clear: np.ndarray,
               rng: np.random.Generator) -> dict:
    """One optimiser step of `stage` on a batch; returns its loss parts."""
    ae, unet, denoiser, pixel_cr = nets["ae"], nets["unet"], nets["denoiser"], nets["pixel_cr"]
    x = torch.from_numpy(clear)
    if stage in ("ae", "decoder"):
        # The decoder stage trains through the inference path (frozen
        # encode, lookup, decode): no gradient reaches the frozen parts.
        rec, reg = ae(x) if stage == "ae" else (ae.decode(ae.encode(x)), torch.zeros(()))
        loss = reconstruction_loss(rec, x, args.grad_weight) + reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec_parts = {"l1": float(F.l1_loss(rec.detach(), x)), "reg": float(reg), "loss": float(loss.detach())}
    else:
        with torch.no_grad():
            z0 = ae.encode(x)
        t = torch.from_numpy(rng.integers(0, len(ac), size=args.batch))
        if stage == "unet":
            eps = torch.randn_like(z0)
            loss = F.mse_loss(unet(q_sample(z0, t, eps, ac), t), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            rec_parts = {"mse": float(loss)}
        else:
            with torch.no_grad():
                cond_img = torch.from_numpy(cloudy) if args.cond_cache else pixel_cr(torch.from_numpy(cloudy))[0].clamp(0, 1)
                cond = ae.encode(cond_img)
            losses = inr_step(denoiser, opt, z0, cond, t, ac, k_iters=args.k_iters)
            rec_parts = {f"mse_k{k + 1}": v for k, v in enumerate(losses)}
    return rec_parts


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    state = torch.load(args.ckpt, map_location="cpu") if args.resume and os.path.exists(args.ckpt) else {}
    # What no stage so far trained on (a resumed stage may not erase it).
    held_out = held_out_on_resume(state, args.val_blocks)
    pairs = load_rice(args.data)
    train, _val = split_by_block(pairs, set(args.val_blocks.split(",")))
    bands = train[0].clear_raw.shape[0]
    if args.stage == "cond" or (args.stage == "control" and args.cond_cache):
        assert args.pixel_cr and args.cond_cache, "--pixel-cr and --cond-cache are needed"
        train = with_cached_condition(train, args.pixel_cr, args.cond_cache)
        if args.stage == "cond":
            return

    ae_cfg, unet_cfg, ae, unet, control = build_networks(args, state, bands)
    steps = dict(state.get("steps", {}))
    wall = dict(state.get("wall_s", {}))
    stage = args.stage
    pixel_cr = prepare_stage(stage, args, state, steps, train, ae, unet)
    module = {"ae": ae, "decoder": ae, "unet": unet, "control": control}[stage]
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=args.lr)
    if state.get("optim_stage") == stage and "optim" in state:
        opt.load_state_dict(state["optim"])
    ac = alphas_cumprod()
    denoiser = Denoiser(unet, control)
    nets = {"ae": ae, "unet": unet, "denoiser": denoiser, "pixel_cr": pixel_cr}
    log_path = f"{args.ckpt}.{stage}.log.jsonl"

    def checkpoint():
        save_atomic({"ae": ae.state_dict(), "unet": unet.state_dict(), "control": control.state_dict(),
                     "ae_config": ae_cfg.to_dict(), "unet_config": unet_cfg.to_dict(), "steps": steps,
                     "wall_s": wall, "optim": opt.state_dict(), "optim_stage": stage,
                     "meta": {"data": os.path.basename(os.path.normpath(args.data)), "val_blocks": held_out,
                              "k_iters": args.k_iters, "crop": args.crop, "batch": args.batch,
                              "seed": args.seed}}, args.ckpt)

    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    print(f"IND stage {stage}: ae {ae_cfg.to_dict()} unet {unet_cfg.to_dict()} train={len(train)} "
          f"start step={steps.get(stage, 0)}", flush=True)
    t0 = t_prev = t_save = time.time()
    run = []
    step = steps.get(stage, 0)
    while not stop["now"] and time.time() - t0 < args.hours * 3600 and not (args.max_steps and step >= args.max_steps):
        cloudy, clear = crops(train, args.batch, args.crop, rng)
        rec_parts = train_step(stage, args, nets, opt, ac, cloudy, clear, rng)
        step += 1
        now = time.time()
        wall[stage] = wall.get(stage, 0.0) + now - t_prev
        t_prev = now
        steps[stage] = step
        run.append(rec_parts)
        if step % 25 == 0:
            rec = {"step": step, "wall_s": round(wall[stage], 1),
                   **{k: round(float(np.mean([r[k] for r in run])), 5) for k in run[0]}}
            run = []
            print(json.dumps(rec), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if now - t_save > args.save_minutes * 60:
            checkpoint()
            t_save = t_prev = time.time()
    checkpoint()
    print(f"saved {args.ckpt}: stage {stage} at step {step}, {wall.get(stage, 0) / 3600:.2f} h", flush=True)


if __name__ == "__main__":
    main()
