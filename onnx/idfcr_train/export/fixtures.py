"""Make the small ONNX fixture models the Rust tests run, with reference
outputs from Python onnxruntime so Rust results can be checked against them.

    python -m idfcr_train.export.fixtures ../testdata/models

Writes, for each fixture NAME:
    NAME.onnx              the model, with the idfcr contract in its metadata
    NAME.input.bin         float32 little-endian input, shape in NAME.ref.json
    NAME.clear.bin         onnxruntime's `clear` output for it
    NAME.attention.bin     onnxruntime's `attention` output
    NAME.ref.json          shapes and the measured halo

Fixtures:
    tiny_conv   two 3x3 convolutions (3 bands, window 8): local and cheap
    tiny_swin   a 2-submodule Pixel-CR (dim 16, window 8) with window attention
    tiny_swin_half  tiny_swin with half-scale context (models/scales.py, as the
                RGB model 0.8 runs): window 16, the halo doubled
    tiny_conv4  like tiny_conv with 4 bands (band-count mismatch tests)
    tiny_blend  bright pixels are cloud, with a calibrated probability and an
                input range (blending and input-range tests)
    ind_tiny_*  random IND encoder, decoder and denoiser graphs
    schedule.ref.json  diffusion schedule tables and sampler chains
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

from idfcr_train.export.pixel_cr import contract, export_onnx, measure_halo, write_reference
from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig
from idfcr_train.models.scales import HalfScale, window_of


class TinyConv(nn.Module):
    """clear = x + conv(relu(conv(x))); attention = sigmoid(conv(x))."""

    def __init__(self, bands: int, window: int = 8):
        super().__init__()
        self.cfg = PixelCRConfig(in_bands=bands, window=window)
        self.c1 = nn.Conv2d(bands, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, bands, 3, padding=1)
        self.a = nn.Conv2d(bands, 1, 3, padding=1)

    def forward(self, x):
        return x + 0.2 * self.c2(torch.relu(self.c1(x))), torch.sigmoid(self.a(x))


class Double(nn.Module):
    """clear = 2 x, attention = 0: a model whose output says exactly which
    radiometric offset the runtime applied (out DN = 2 DN + offset)."""

    def __init__(self, bands: int, window: int = 8):
        super().__init__()
        self.cfg = PixelCRConfig(in_bands=bands, window=window)

    def forward(self, x):
        return 2.0 * x, 0.0 * x[:, :1]


class BrightIsCloud(nn.Module):
    """clear = 0.6 x + 0.1 (a visible change everywhere); attention = 1 on
    bright pixels (mean > 0.8), 0 on dark ones. Wrapped with a calibration,
    its probability is exactly 0 away from bright pixels: the fixture of the
    blending tests (clear pixels must come back bit for bit)."""

    def __init__(self, bands: int = 3, window: int = 8):
        super().__init__()
        self.cfg = PixelCRConfig(in_bands=bands, window=window)

    def forward(self, x):
        att = torch.sigmoid(60.0 * (x.mean(dim=1, keepdim=True) - 0.8))
        return 0.6 * x + 0.1, att


class NanOnBright(nn.Module):
    """A broken graph: clear = x, but NaN where the mean is above 0.9 (as an
    overflowing reduced-precision conversion gives); attention = 1 there.
    The runtime must refuse it, not write NaN (or 0) as valid pixels."""

    def __init__(self, bands: int = 3, window: int = 8):
        super().__init__()
        self.cfg = PixelCRConfig(in_bands=bands, window=window)

    def forward(self, x):
        m = x.mean(dim=1, keepdim=True)
        return x + 0.0 * torch.log(torch.relu(0.9 - m)), (m > 0.9).float()


def write_fixture(model: nn.Module, out_dir: str, name: str, h: int, w: int, seed: int,
                  band_names: list[str] | None = None, input_scale: float = 1 / 255,
                  extra: dict[str, str] | None = None) -> None:
    model.eval()
    with torch.no_grad():
        halo = measure_halo(model)
    bands = model.cfg.in_bands
    meta = contract(model, name=name, version="fixture",
                    band_names=band_names or [f"b{i + 1}" for i in range(bands)],
                    input_scale=input_scale, halo_px=halo, extra=extra)
    path = os.path.join(out_dir, f"{name}.onnx")
    export_onnx(model, path, meta)
    write_reference(path, out_dir, name, bands, h, w, seed, {"halo_px": halo, "window_px": window_of(model)})
    print(f"{path}: halo {halo} px")


def write_ind_fixture(out_dir: str) -> None:
    """Tiny random IND graphs (ind_tiny_{encoder,decoder,denoiser}.onnx) and
    Python onnxruntime outputs on random inputs, for the Rust parity test."""
    import onnxruntime as ort

    from idfcr_train.export.ind import export_all
    from idfcr_train.models.ind import AEConfig, Autoencoder, ControlNet, Denoiser, UNet, UNetConfig

    torch.manual_seed(1240)
    ae = Autoencoder(AEConfig(in_bands=3, latent=4, channels=[8, 16], codebook=32))
    unet = UNet(UNetConfig(latent=4, channels=[16, 32], temb=16))
    control = ControlNet(unet)
    with torch.no_grad():  # non-zero control so the fused graph really uses it
        for z in control.zero:
            z.weight.normal_(0, 0.1)
    paths = export_all(ae, Denoiser(unet, control), out_dir, "ind_tiny", "fixture", ["r", "g", "b"], 1 / 255)
    rng = np.random.default_rng(7)
    feeds = {
        "encoder": {"image": rng.random((1, 3, 16, 24), dtype=np.float32)},
        "decoder": {"latent": rng.standard_normal((1, 4, 8, 12)).astype(np.float32)},
        "denoiser": {"z_t": rng.standard_normal((1, 4, 8, 12)).astype(np.float32),
                     "t": np.array([321.0], np.float32),
                     "cond": rng.standard_normal((1, 4, 8, 12)).astype(np.float32)},
    }
    ref = {}
    for k, f in feeds.items():
        out = ort.InferenceSession(paths[k], providers=["CPUExecutionProvider"]).run(None, f)[0]
        for name, arr in f.items():
            arr.astype("<f4").tofile(os.path.join(out_dir, f"ind_tiny_{k}.{name}.bin"))
        out.astype("<f4").tofile(os.path.join(out_dir, f"ind_tiny_{k}.out.bin"))
        ref[k] = {"inputs": {n: list(a.shape) for n, a in f.items()}, "output": list(out.shape)}
    with open(os.path.join(out_dir, "ind_tiny.ref.json"), "w") as fh:
        json.dump(ref, fh, indent=1)
        fh.write("\n")
    print(f"{out_dir}/ind_tiny_*.onnx")


def write_schedule_fixture(out_dir: str) -> None:
    """schedule.ref.json: the training schedule, respaced chains and sampler
    steps as Python (float64) computes them, for src/diffusion/schedule.rs's tests.
    Steps are taken with a fixed linear "denoiser" eps = 0.3 x - 0.2 x_start
    so the chain exercises every coefficient."""
    from idfcr_train.models.ind import Respaced, alphas_cumprod, sampler_step

    ref: dict = {"alphas_cumprod": alphas_cumprod().tolist(), "chains": {}}
    for steps in (1, 7, 10, 50):
        r = Respaced.new(steps)
        x_start = torch.tensor([0.9, -1.4, 0.2], dtype=torch.float64)
        noises = [torch.tensor([0.5 - 0.01 * i, -0.3, 1.1], dtype=torch.float64) for i in range(steps)]
        chain = {"timesteps": r.timesteps, "betas": r.betas.tolist(),
                 "alphas_cumprod_prev": r.alphas_cumprod_prev.tolist(),
                 "posterior_variance": r.posterior_variance.tolist(),
                 "x_start": x_start.tolist(), "noise": [n.tolist() for n in noises]}
        for method in ("ddim", "ddpm"):
            x = x_start
            for i in reversed(range(steps)):
                x = sampler_step(r, i, x, 0.3 * x - 0.2 * x_start, method, noises[i])
            chain[f"{method}_end"] = x.tolist()
        ref["chains"][str(steps)] = chain
    with open(os.path.join(out_dir, "schedule.ref.json"), "w") as fh:
        json.dump(ref, fh)
        fh.write("\n")
    print(f"{out_dir}/schedule.ref.json")


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["--only-schedule"]:
        write_schedule_fixture(args[1] if len(args) > 1 else "../testdata/models")
        return
    if args[:1] == ["--only-blend"]:
        only_blend(args[1] if len(args) > 1 else "../testdata/models")
        return
    if args[:1] == ["--only-half-scale"]:
        write_half_scale_fixture(args[1] if len(args) > 1 else "../testdata/models")
        return
    if args[:1] == ["--only-ind"]:
        write_ind_fixture(args[1] if len(args) > 1 else "../testdata/models")
        return
    out_dir = (args or ["../testdata/models"])[0]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(1234)
    write_fixture(TinyConv(3), out_dir, "tiny_conv", 32, 48, seed=1)
    torch.manual_seed(1235)
    write_fixture(TinyConv(4), out_dir, "tiny_conv4", 16, 24, seed=2)
    # Band counts of the Sentinel-2 groups (20 m: 6; L2A 60 m: 2), for
    # end-to-end tests of `idfcr s2`.
    torch.manual_seed(1237)
    write_fixture(TinyConv(6), out_dir, "tiny_conv6", 16, 24, seed=4)
    torch.manual_seed(1238)
    write_fixture(TinyConv(2), out_dir, "tiny_conv2", 16, 24, seed=5)
    # Sentinel-2 10 m bands by name, reflectance input (DN / 10000).
    write_fixture(Double(4), out_dir, "s2_double_10m", 16, 24, seed=6,
                  band_names=["B2", "B3", "B4", "B8"], input_scale=1e-4)
    torch.manual_seed(1236)
    swin = PixelCR(PixelCRConfig.tiny(3))
    # Random init leaves the attention near 0.5 and the output near zero;
    # scale the reconstruction so outputs vary like an image.
    with torch.no_grad():
        swin.recon[-1].weight.mul_(5.0)
    write_fixture(swin, out_dir, "tiny_swin", 32, 48, seed=3)
    write_half_scale_fixture(out_dir)
    # Calibrated probability and a stated input range (8-bit RGB).
    from idfcr_train.models.probability import Calibration, WithProbability

    cal = Calibration(t0=0.5, t1=0.9, dilate_px=2, blur_px=2)
    write_fixture(WithProbability(BrightIsCloud(3), cal), out_dir, "tiny_blend", 32, 48, seed=8,
                  extra={"idfcr.input_range": "0,255", "idfcr.probability": "calibrated",
                         "idfcr.calibration": json.dumps(cal.to_dict())})
    write_nan_fixture(out_dir)
    write_ind_fixture(out_dir)
    write_schedule_fixture(out_dir)


def write_half_scale_fixture(out_dir: str) -> None:
    """tiny_swin_half: a random tiny Pixel-CR wrapped in half-scale context,
    so the Rust tests tile a graph whose window is twice its network's and
    whose halo comes from the half-resolution run (tiled == whole)."""
    torch.manual_seed(1239)
    swin = PixelCR(PixelCRConfig.tiny(3))
    with torch.no_grad():
        swin.recon[-1].weight.mul_(5.0)
    write_fixture(HalfScale(swin, weight=0.5, sigma=2.0), out_dir, "tiny_swin_half", 64, 96, seed=9)


def write_nan_fixture(out_dir: str) -> None:
    model = NanOnBright(3).eval()
    meta = contract(model, name="tiny_nan", version="fixture", band_names=["b1", "b2", "b3"],
                    input_scale=1 / 255, halo_px=0)
    path = os.path.join(out_dir, "tiny_nan.onnx")
    export_onnx(model, path, meta)
    print(path)


def only_blend(out_dir: str) -> None:
    from idfcr_train.models.probability import Calibration, WithProbability

    cal = Calibration(t0=0.5, t1=0.9, dilate_px=2, blur_px=2)
    write_fixture(WithProbability(BrightIsCloud(3), cal), out_dir, "tiny_blend", 32, 48, seed=8,
                  extra={"idfcr.input_range": "0,255", "idfcr.probability": "calibrated",
                         "idfcr.calibration": json.dumps(cal.to_dict())})


if __name__ == "__main__":
    main()
