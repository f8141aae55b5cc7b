"""Half-scale context: Pixel-CR's coarse structure taken from a run on the
tile at half resolution.

Why: a 16 px attention window and three submodules let the network see
only some 40 px around a pixel (its measured halo), so the inside of a thick cloud larger than
that is filled from little ground (flat colour, the window grid). Run on the
tile averaged down 2 x 2, the same network sees twice the ground per window.
Its fill is coarser but better placed; its fine detail is worse. So the
output keeps the full-resolution run's fine detail and takes the half-scale
run's low frequencies:

    out = full - weight x (G(full) - G(up(half)))

with G a Gaussian blur (sigma in full-resolution px) and up() bilinear.
Screened on 45 RICE2 validation images with Pixel-CR 0.7 (stop 48): the
default blended output +0.28 dB (block 3, thick cloud, +0.49; block 9,
haze, +0.09); a quarter-scale run as well lost that gain on thick cloud.

The attention map, and so the calibrated probability p, stay the
full-resolution run's: a calibration chosen on the single network holds.
Cost: a quarter of the wrapped model's work more. Tiles must be multiples of
twice the wrapped model's window (the half-scale run's windows must fall on
the same global grid in every tile), so `window_px` doubles, and the reach
of a tile border doubles with the half-scale run's (measured at export).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def window_of(model: nn.Module) -> int:
    """The multiple tile sizes and origins must keep for `model`: a
    wrapper's own `window_px`, else the network's attention window."""
    return int(getattr(model, "window_px", model.cfg.window))


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D Gaussian, radius ceil(3 sigma), summing to 1."""
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def band_kernels(sigma: float, bands: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian as one horizontal and one vertical kernel per band, for
    a grouped convolution (shapes fixed: the ONNX exporter needs them known)."""
    k = gaussian_kernel(sigma)
    return k.view(1, 1, 1, -1).repeat(bands, 1, 1, 1), k.view(1, 1, -1, 1).repeat(bands, 1, 1, 1)


def blur(x: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian (`band_kernels`), reflected at the borders, band by band."""
    c, r = kx.shape[0], kx.shape[-1] // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), ky, groups=c)


def half_scale_up(half: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A half-resolution output brought back to `like`'s size (bilinear)."""
    return F.interpolate(half, size=(like.shape[-2], like.shape[-1]), mode="bilinear", align_corners=False)


def mix(full: torch.Tensor, up: torch.Tensor, weight: float, kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """`full` with `weight` of its low frequencies replaced by `up`'s."""
    return full - weight * (blur(full, kx, ky) - blur(up, kx, ky))


class HalfScale(nn.Module):
    """forward(x) -> (full-resolution clear output with its low frequencies
    from a half-resolution run, the full-resolution run's attention)."""

    def __init__(self, model: nn.Module, weight: float = 1.0, sigma: float = 2.0):
        super().__init__()
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight {weight} is outside (0, 1]")
        if not 0.5 <= sigma <= 16.0:
            raise ValueError(f"sigma {sigma} px is outside 0.5..16")
        self.model = model
        self.cfg = model.cfg
        self.weight = float(weight)
        self.sigma = float(sigma)
        self.window_px = 2 * window_of(model)
        kx, ky = band_kernels(sigma, model.cfg.in_bands)
        self.register_buffer("kx", kx, persistent=False)
        self.register_buffer("ky", ky, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clear, att = self.model(x)
        half, _ = self.model(F.avg_pool2d(x, 2))
        return mix(clear, half_scale_up(half, x), self.weight, self.kx, self.ky), att


def parse(text: str) -> tuple[float, float]:
    """'WEIGHT[,SIGMA]' -> (weight, sigma); sigma defaults to 2 px."""
    parts = [p.strip() for p in text.split(",")]
    try:
        weight = float(parts[0])
        sigma = float(parts[1]) if len(parts) > 1 else 2.0
    except (ValueError, IndexError):
        raise ValueError(f"{text!r} is not 'WEIGHT[,SIGMA]'") from None
    if len(parts) > 2:
        raise ValueError(f"{text!r} is not 'WEIGHT[,SIGMA]'")
    return weight, sigma
