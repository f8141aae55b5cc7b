"""Write the IND model card (Markdown) from the checkpoint, its training logs,
the runtime scores of `scripts/score_ind.py` and the INR ablation report.

    python -m idfcr_train.reports.card_ind --ckpt checkpoints/ind_rgb.pt --scores models/ind_rgb.scores.json \\
        --ablation models/ind_rgb.ablation.json --samplers models/ind_rgb.samplers.json \\
        --prefix models/ind_rgb --version 0.2 --out models/ind_rgb.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics

import torch

STAGES = [("ae", "autoencoder (encoder, codebook, decoder)"), ("decoder", "decoder fine-tuning (encoder frozen)"),
          ("unet", "UNet on clear latents"), ("control", "ControlNet with INR (UNet frozen)")]


def last_log(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        lines = [ln for ln in f if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ae_recipes_section(path: str | None) -> list[str]:
    """The autoencoder recipes compared at an equal budget (issue 17: the
    round trip is where detail goes), from `reports.ae_ceiling`'s table."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        tab = json.load(f)
    md = ["", "## Autoencoder recipes (equal budget)", "",
          "Each recipe trained from scratch for the same number of steps (batch 8, 128 px clear crops of the",
          "training blocks), then the round trip clear -> encode -> decode scored on every full 512 px image",
          f"of validation blocks {tab['val_blocks']} (`scripts/compare_ae_recipes.sh`, then `{tab['command']}`).",
          "", "| recipe | latent | factor | steps | wall h (2 cores, shared) | PSNR | SSIM | sharpness ratio |",
          "|---|---|---|---|---|---|---|---|"]
    for r in tab["rows"]:
        c = r["ae_config"]
        kind = "KL" if c["kl"] else f"codebook {c['codebook']}"
        factor = 2 ** (len(c["channels"]) - 1)
        md.append(f"| {kind}, widths {','.join(map(str, c['channels']))} | {c['latent']} | {factor} | "
                  f"{r['ae_steps']} | {r['ae_hours']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                  f"{r['sharpness_ratio']:.2f} |")
    md += ["", "The codebook lookup costs 8-12 dB against continuous (KL) latents at the same budget. No",
           "recipe draws the clear images' fine texture (sharpness ratio 0.2-0.4): an L1 decoder averages",
           "what the latent does not pin down, so the next autoencoder needs both continuous latents and",
           "a loss that rewards texture; a factor of 2 quadruples the denoiser's work per tile."]
    return md


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--ablation", required=True)
    ap.add_argument("--prefix", required=True, help="path prefix of the three exported graphs")
    ap.add_argument("--version", required=True)
    ap.add_argument("--samplers", nargs="*", default=[],
                    help="ind_ablation reports of the shipped checkpoint with other samplers")
    ap.add_argument("--detail", default=None, help="ind_detail report: PSNR and sharpness per step of the chain")
    ap.add_argument("--ae-recipes", default=None, help="ae_ceiling table of autoencoder recipes at an equal budget")
    ap.add_argument("--inr-ablation", default=None,
                    help="ind_ablation --full report: K = 1, 2, 3 x seeds on whole validation images")
    ap.add_argument("--trial", action="append", default=[],
                    help="score_ind report of a candidate against the shipped graphs (not shipped; repeatable)")
    ap.add_argument("--reports-of", default=None, metavar="VERSION",
                    help="the ablation, sampler and detail reports were measured on this earlier version "
                         "(their headings say so)")
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def load_reports(args: argparse.Namespace) -> tuple[dict, dict, dict, list[dict]]:
    """The checkpoint and the JSON reports the card is written from: (state,
    runtime scores, INR ablation, sampler runs). A sampler file may hold one
    report or a list of them; they are flattened into one list."""
    st = torch.load(args.ckpt, map_location="cpu")
    with open(args.scores) as f:
        scores = json.load(f)
    with open(args.ablation) as f:
        abl = json.load(f)
    samplers = []
    for path in args.samplers:
        with open(path) as f:
            rep = json.load(f)
        samplers.extend(rep if isinstance(rep, list) else [rep])
    return st, scores, abl, samplers


def refined_key(mean: dict) -> str:
    """The scores' key of the refined output (its name carries the sampler)."""
    return next(k for k in mean if k.startswith("refined"))


def intro_section(name: str, version: str, st: dict) -> list[str]:
    """Title, what the model does in the pipeline, and its architecture from
    the checkpoint's configs."""
    md = [f"# {name} {version}: IND latent diffusion refinement (RGB)", ""]
    md += ["Stage 2 of IDF-CR (`idfcr remove --refine`): the Pixel-CR result is encoded to a latent, a",
           "ControlNet-conditioned UNet samples a clean latent (respaced DDPM, 50 steps by default), the",
           "decoder maps it back and a wavelet colour fix keeps the Pixel-CR image's low frequencies.",
           "Trained on CPU from scratch on RICE2 (8-bit RGB Landsat 8 crops); RGB only.", ""]
    md += ["## Architecture", "",
           f"- Autoencoder: `{json.dumps(st['ae_config'])}`. No normalisation layers, so tiled encode/decode",
           "  with a halo is exact. Codebook lookup (paper Eq. 9) on l2-normalised vectors, in the decoder;",
           "  the encoder output (on the sphere, times a measured latent scale) is what the diffusion sees.",
           f"- UNet (epsilon prediction, T = 1000, beta linear in sqrt 0.00085..0.012): `{json.dumps(st['unet_config'])}`.",
           "- ControlNet: trainable copy of the UNet encoder and middle, first conv on [z_t, condition latent],",
           "  zero-initialised 1x1 outputs added to the UNet skips and middle. Exported fused with the UNet",
           "  as one denoiser graph (z_t, t, condition latent -> predicted noise).",
           f"- Latent scale {float(st['ae']['latent_scale']):.4f} (1 / std of clear training latents).", ""]
    return md


def training_section(st: dict, ckpt: str) -> list[str]:
    """Data, split and budget, and per stage its steps, hours and the last
    record of that stage's log (`<ckpt>.<stage>.log.jsonl`)."""
    steps, wall = st["steps"], st["wall_s"]
    total_h = sum(wall.values()) / 3600
    md = ["## Training", "",
          f"Data `{st['meta']['data']}`, validation scene blocks {st['meta']['val_blocks']} held out (split by block).",
          f"Crops {st['meta']['crop']} px, batch {st['meta']['batch']}, Adam 2e-4, 2 CPU cores. "
          f"Total {total_h:.2f} h.", "",
          "| stage | steps | hours | last logged loss |", "|---|---|---|---|"]
    for key, label in STAGES:
        if key in steps:
            rec = {k: v for k, v in last_log(f"{ckpt}.{key}.log.jsonl").items() if k not in ("step", "wall_s")}
            md.append(f"| {label} | {steps[key]} | {wall.get(key, 0) / 3600:.2f} | "
                      f"{', '.join(f'{k} {v}' for k, v in rec.items())} |")
    md += ["", f"INR: K = {st['meta']['k_iters']} refinement iterations per batch (Algorithm 3).", ""]
    return md


def scores_section(scores: dict) -> list[str]:
    """The runtime scores of `scripts/score_ind.py`, then each output's mean
    per-image gap to the clear reference's own NIQE and BRISQUE."""
    m = scores["mean"]
    refined = refined_key(m)
    md = ["## Scores (runtime, validation blocks)", "",
          f"`scripts/score_ind.py`: {scores['images']} images of blocks {scores['blocks']}, the shipped graphs run",
          f"by `idfcr remove` ({scores['sampler']}"
          + (f"; stage 1: {scores['stage1']}" if scores.get("stage1") else "")
          + "); NIQE and BRISQUE from `idfcr quality` (lower is more",
          "natural), PSNR/SSIM from `idfcr eval` against the clear image.", "",
          "| output | NIQE | BRISQUE | PSNR dB | SSIM |", "|---|---|---|---|---|"]
    rows = [("pixel_cr", "Pixel-CR alone"), (refined, "Pixel-CR + IND (`--refine`)")]
    # Scores of the version this one replaced, on the same images and stage 1.
    rows += [(k, f"Pixel-CR + IND {k.split('_')[1]} (previous version)") for k in m if k.startswith("previous_")]
    rows += [("clear_reference", "clear reference image")]
    detail = "sharpness_ratio" in m["pixel_cr"]
    if detail:
        md[-2:] = ["| output | NIQE | BRISQUE | PSNR dB | SSIM | sharpness ratio | blockiness |",
                   "|---|---|---|---|---|---|---|"]
    for key, label in rows:
        r = m[key]
        extra = f" {r['sharpness_ratio']:.2f} | {r['blockiness']:.3f} |" if detail else ""
        md.append((f"| {label} | {r['niqe']:.2f} | {r['brisque']:.2f} | "
                   f"{r['psnr']:.2f} | {r['ssim']:.4f} |" if "psnr" in r else
                   f"| {label} | {r['niqe']:.2f} | {r['brisque']:.2f} | - | - |") + extra)
    if detail:
        md += ["", "Sharpness ratio: mean absolute neighbour difference summed over the images, against the",
               "clear references' (1 = as detailed as real clear imagery). Blockiness: across the borders of a",
               "16 px grid against elsewhere (1: window borders like anywhere else; the clear references' own",
               "value is in the table: RICE2's clear images are smoother across that grid than elsewhere)."]
    # NIQE and BRISQUE were fitted on natural photographs; on these Landsat
    # crops the clear references themselves score high (textured, noisy), so
    # "lower" alone would reward the smooth Pixel-CR output. The per-image
    # gap to the clear reference's score says which output has the
    # statistics of real clear imagery.
    per = scores["per_image"]
    gaps = {name: {k: statistics.fmean(abs(r[k] - c[k]) for r, c in zip(per[name], per["clear_reference"]))
                   for k in ("niqe", "brisque")} for name in ("pixel_cr", refined)}
    md += ["", "Mean per-image gap to the clear reference's own score (lower: closer to real clear imagery):", "",
           "| output | NIQE gap | BRISQUE gap |", "|---|---|---|"]
    for key, label in [("pixel_cr", "Pixel-CR alone"), (refined, "Pixel-CR + IND")]:
        md.append(f"| {label} | {gaps[key]['niqe']:.2f} | {gaps[key]['brisque']:.2f} |")
    return md


def ablation_section(abl: dict) -> list[str]:
    """The INR ablation (paper Table V): ControlNets trained with different K
    from one frozen UNet, by noise-prediction MSE and a sampled chain."""
    md = ["", "## INR ablation (paper Table V on our data)", "",
          f"`idfcr_train.reports.ind_ablation`: {abl['crops']} fixed 128 px crops of blocks {abl['val_blocks']}; each",
          "checkpoint differs only in how its ControlNet was trained, all from the same frozen UNet.",
          "Noise-prediction MSE at fixed t and noise, and a full sampling chain "
          f"({abl['sampler']}, fixed seed) decoded by one decoder, before the colour fix. The Pixel-CR condition "
          f"itself scores {abl['pixel_cr']['psnr']:.2f} dB / {abl['pixel_cr']['ssim']:.4f}.", "",
          "Hours are wall clock (runs that shared the CPU with other jobs look slower).", "",
          "| ControlNet | K | steps | hours | val eps MSE | sampled PSNR | sampled SSIM |",
          "|---|---|---|---|---|---|---|"]
    for path, r in abl["checkpoints"].items():
        label = "untrained (zero outputs)" if not r["control_steps"] else os.path.basename(path)
        md.append(f"| {label} | {r['k'] if r['k'] else '-'} | {r['control_steps']} | {r['control_hours']:.2f} | "
                  f"{r['val_eps_mse']:.5f} | {r['sampled']['psnr']:.2f} | {r['sampled']['ssim']:.4f} |")
    return md


def inr_ablation_section(path: str | None) -> list[str]:
    """The INR ablation at a deciding budget: each K trained from the same
    frozen UNet with several seeds, scored on whole validation images; the
    mean and spread over seeds per K, then every run."""
    if not path:
        return []
    with open(path) as f:
        rep = json.load(f)
    runs = rep["checkpoints"]
    first = next(iter(runs.values()))
    pcr = rep["pixel_cr"]
    md = ["", "## INR ablation on whole images (K = 1, 2, 3, several seeds)", "",
          f"`idfcr_train.reports.ind_ablation --full`: {len(rep['images'])} whole 512 px images of blocks "
          f"{rep['val_blocks']}, evenly spaced. Every ControlNet trained from zero on the same frozen UNet for "
          f"{first['control_steps']} batch steps (INR takes K optimiser steps per batch, so K = 3 costs about "
          "three times the compute of K = 1), one seed per run; sampled with "
          f"{rep['sampler']} (one fixed seed per image), decoded by the checkpoint's own decoder, scored before and "
          f"after the wavelet colour fix (what `--refine` writes). The Pixel-CR condition scores {pcr['psnr']:.2f} dB / "
          f"{pcr['ssim']:.4f}, sharpness ratio {pcr['sharpness_ratio']:.2f}.", "",
          "| K | runs | refined PSNR | refined SSIM | refined sharpness | decoded PSNR | decoded SSIM |",
          "|---|---|---|---|---|---|---|"]

    def ms(row: dict, key: str, digits: int) -> str:
        return f"{row[key]['mean']:.{digits}f} ± {row[key]['std']:.{digits}f}"

    for k, row in rep["by_k"].items():
        md.append(f"| {k} | {row['runs']} | {ms(row, 'refined_psnr', 2)} | {ms(row, 'refined_ssim', 4)} | "
                  f"{ms(row, 'refined_sharpness_ratio', 2)} | {ms(row, 'decoded_psnr', 2)} | {ms(row, 'decoded_ssim', 4)} |")
    md += ["", "Mean ± sample standard deviation over the seeds. Every run:", "",
           "| checkpoint | K | seed | steps | hours | refined PSNR | refined SSIM | sharpness |", "|---|---|---|---|---|---|---|---|"]
    for ckpt, r in runs.items():
        md.append(f"| {os.path.basename(ckpt)} | {r['k']} | {r['seed']} | {r['control_steps']} | {r['control_hours']:.2f} | "
                  f"{r['refined']['psnr']:.2f} | {r['refined']['ssim']:.4f} | {r['refined']['sharpness_ratio']:.2f} |")
    if rep.get("verdict"):
        md += ["", rep["verdict"]]
    return md


def samplers_section(samplers: list[dict]) -> list[str]:
    """The shipped checkpoint under other samplers, on the ablation's crops
    (nothing when no sampler report was given)."""
    if not samplers:
        return []
    md = ["", "## Samplers (same crops as the ablation, shipped checkpoint, before the colour fix)", "",
          "| sampler | sampled PSNR | sampled SSIM |", "|---|---|---|"]
    for s_ in samplers:
        r = next(iter(s_["checkpoints"].values()))["sampled"]
        md.append(f"| {s_['sampler']} | {r['psnr']:.2f} | {r['ssim']:.4f} |")
    return md


def limitations_section(scores: dict, st: dict) -> list[str]:
    """What refinement changes against Pixel-CR alone, how to read NIQE and
    BRISQUE here, and the model's known limits."""
    m = scores["mean"]
    pc, rf = m["pixel_cr"], m[refined_key(m)]
    verdict = [f"{k.upper()} {pc[k]:.2f} -> {rf[k]:.2f} (clear reference {m['clear_reference'][k]:.2f})"
               for k in ("niqe", "brisque")]
    return ["", "## Limitations", "",
            f"- Against Pixel-CR alone, refinement moves the no-reference scores ({'; '.join(verdict)})",
            f"  and changes PSNR by {rf['psnr'] - pc['psnr']:+.2f} dB and SSIM by {rf['ssim'] - pc['ssim']:+.4f}. NIQE and "
            "BRISQUE were fitted on",
            "  photographs: on these crops the clear images score worse than the smooth Pixel-CR output,",
            "  so read them as the gap to the clear reference, not as lower-is-better.",
            "- A small model trained for about two hours on 2 CPU cores, not days on GPUs; the ablation",
            "  budgets (300 ControlNet steps) are small, so K differences there are within noise of one run.",
            "- RGB, 8-bit RICE2 imagery only; no Sentinel-2 IND model yet (`--refine` refuses other band counts).",
            latent_limit(st.get("ae_config", {})),
            "- Sampling costs one denoiser pass per latent tile per step (see `scripts/bench.py --refine`)."]


def latent_limit(ae: dict) -> str:
    """What the autoencoder's latent leaves out, by its kind."""
    if ae.get("kl"):
        f = 2 ** (len(ae.get("channels", [0, 0, 0])) - 1)
        return (f"- The KL autoencoder keeps {ae.get('latent')} channels per {f} x {f} pixels; its L1-trained decoder "
                "averages the fine texture the latent leaves open (sharpness below the clear images').")
    return "- The decoder's codebook lookup limits detail: 1024 codes per 4 x 4 pixel latent position."


def detail_section(path: str | None) -> list[str]:
    """PSNR and sharpness at each step of the refinement chain, from
    `reports.ind_detail` (nothing when the report is not given or missing)."""
    if not (path and os.path.exists(path)):
        return []
    with open(path) as f:
        det = json.load(f)
    md = ["", "## Where the detail goes", "",
          f"`idfcr_train.reports.ind_detail`: {len(det['images'])} fixed {det['crop']} px crops of blocks "
          f"{det['val_blocks']} ({det['sampler']}, fixed seed), each step against the clear crop. "
          "Sharpness: mean |neighbour difference|, summed over the crops, over the clear crops' (1 = as "
          "detailed as the clear image).", "",
          "| step | PSNR | sharpness ratio |", "|---|---|---|"]
    names = {"autoencoder_ceiling": "clear -> encode -> decode (autoencoder ceiling)",
             "stage1": "stage 1 (Pixel-CR)", "stage1_enc_dec": "stage 1 -> encode -> decode",
             "sampled_decoded": "sampled latent -> decode", "refined_colour_fixed": "+ colour fix (what `--refine` writes)"}
    for k, v in det["steps"].items():
        md.append(f"| {names.get(k, k)} | {v['psnr']:.2f} | {v['sharpness_ratio']:.2f} |")
    md += ["", "The autoencoder round trip of the clear image itself keeps about a third of its detail: no",
           "sampler or ControlNet can give back more than the decoder can draw. It is the first thing to fix",
           "(more latent channels or a smaller downsampling factor, a decoder loss on high frequencies).",
           f"Measured with `{det['command']}`."]
    return md


def graphs_section(prefix: str) -> list[str]:
    """The three exported graphs with their SHA-256, so a reader can check
    that the card describes the files next to it."""
    md = ["", "## Graphs", ""]
    for part in ("encoder", "decoder", "denoiser"):
        path = f"{prefix}_{part}.onnx"
        md.append(f"- `{os.path.basename(path)}` sha256 `{sha256(path)}`")
    return md


def trials_section(paths: list[str]) -> list[str]:
    """Candidates scored against the shipped graphs on the same images and
    stage 1, and not shipped: what was tried and why it lost."""
    if not paths:
        return []
    md = ["", "## Tried since this version (not shipped)"]
    for path in paths:
        with open(path) as f:
            t = json.load(f)
        # One table per trial: each scored its own images.
        md += ["", "| candidate | PSNR dB | SSIM | sharpness ratio | BRISQUE gap |", "|---|---|---|---|---|"]
        clear = t["per_image"]["clear_reference"]
        for key, m in t["mean"].items():
            if not key.startswith("refined"):
                continue
            gap = statistics.fmean(abs(r["brisque"] - c["brisque"]) for r, c in zip(t["per_image"][key], clear))
            md.append(f"| `{key}` | {m['psnr']:.2f} | {m['ssim']:.4f} | {m.get('sharpness_ratio', float('nan')):.2f} | "
                      f"{gap:.1f} |")
        md += ["", f"{t.get('note', '')} {t['images']} images of blocks {t['blocks']}, {t['sampler']} "
               f"(`{os.path.basename(path)}`)."]
    return md


def sheet_section(prefix: str) -> list[str]:
    """The contact sheet next to the graphs (`scripts/ind_sheet.py`), when
    there is one: pictures, not only scores."""
    path = f"{prefix}.sheet.png"
    if not os.path.exists(path):
        return []
    return ["", "## Contact sheet", "",
            f"![cloudy | stage 1 | refined | clear reference]({os.path.basename(path)})", "",
            "Validation images of blocks 3 and 9 and the Landsat 8 demo, each whole and as a 128 px centre crop",
            "at 1.5x (nearest neighbour): cloudy input | stage 1 (Pixel-CR) | refined (DDPM-20) | clear reference.",
            "Made by `python3 ../scripts/ind_sheet.py` from the shipped binary and graphs."]


def reproduce_section(name: str, version: str) -> list[str]:
    """The commands (from `onnx/`) that train, export, score and ablate the model."""
    return ["", "## Reproduce (from `onnx/`)", "",
            "```",
            "../scripts/train_ind_rgb.sh AE_H UNET_H CONTROL_H ABLATION_STEPS",
            "python -m idfcr_train.training.train_ind --stage decoder --data ../../shared/data/rice2_3s "
            "--ckpt checkpoints/ind_rgb.pt --hours H --threads 2 --resume",
            f"python -m idfcr_train.export.ind --ckpt checkpoints/ind_rgb.pt --out-dir models --name {name} "
            f"--version {version}",
            "python3 ../scripts/score_ind.py --limit 24",
            "python -m idfcr_train.reports.ind_ablation --steps 20 --sampler ddim --out /tmp/s.json checkpoints/ind_rgb.pt  # per sampler",
            "python -m idfcr_train.reports.ind_ablation /tmp/ind_rgb_unet.pt /tmp/ind_rgb_k1.pt /tmp/ind_rgb_k2.pt "
            "/tmp/ind_rgb_k3.pt checkpoints/ind_rgb.pt",
            "```", ""]


def older_reports(section: list[str], name: str, version: str | None) -> list[str]:
    """Reports not remeasured for this version keep their numbers; with
    --reports-of their headings name the version they describe."""
    if not version:
        return section
    return [f"{line} (measured on {name} {version})" if line.startswith("## ") else line for line in section]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    st, scores, abl, samplers = load_reports(args)
    name = os.path.basename(args.prefix)
    md = intro_section(name, args.version, st)
    md += training_section(st, args.ckpt)
    md += scores_section(scores)
    md += inr_ablation_section(args.inr_ablation)
    md += older_reports(ablation_section(abl) + samplers_section(samplers), name, args.reports_of)
    md += limitations_section(scores, st)
    md += older_reports(detail_section(args.detail), name, args.reports_of)
    md += ae_recipes_section(args.ae_recipes)
    md += trials_section(args.trial)
    md += sheet_section(args.prefix)
    md += graphs_section(args.prefix)
    md += reproduce_section(name, args.version)
    with open(args.out, "w") as f:
        f.write("\n".join(md))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
