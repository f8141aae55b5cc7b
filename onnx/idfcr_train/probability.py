"""The cloud probability that decides where a model's output replaces the
input: output = p x model + (1 - p) x input (the Rust pipeline blends in
raster units, so where p is exactly 0 the input comes back bit for bit).

p comes from the network's cloudy-attention map `a`, calibrated and
feathered inside the exported graph (so tiling stays exact, and the halo
measured at export covers the feathering):

    p = blur_s( dilate_r( clip((a - t0) / (t1 - t0), 0, 1) ) )

- below `t0` the model found no cloud: p is exactly 0 there;
- `dilate_r` (a max filter of radius r) keeps cloud edges, which the
  attention map tends to miss, inside p = 1;
- `blur_s` (a box mean of radius s) feathers p so that no seam shows
  between blended and untouched pixels. A mean of zeros is exactly 0, so
  pixels farther than r + s from any detection stay untouched.

The four numbers are chosen on validation images by `calibrate.py` and
stored in the checkpoint ("probability") and the model card.

`shape="round"` (the RGB model since 0.4) replaces the square max filter
and box mean, whose square patches showed on the contact sheets, with one
truncated Gaussian of radius R = dilate + blur (sigma R / 3), normalised by
the same filter over the image so p does not fade at its edges, and a gain
that keeps p = 1 up to `dilate` px beyond a detection's edge:

    p = clip(k x G_R(d) / G_R(1), 0, 1),  k = 1 / Phi(-dilate / sigma)

Still exactly 0 farther than R from any detection. `source="detector"`:
`a` comes from the dedicated cloud detector (detector.py), not the
attention head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Calibration:
    t0: float = 0.3
    t1: float = 0.6
    dilate_px: int = 4
    blur_px: int = 8
    shape: str = "box"  # "box" (max filter + box mean) or "round" (one Gaussian)
    source: str = "attention"  # "attention" (the model's head) or "detector"

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Calibration":
        return Calibration(**d)


def cloud_probability(att: torch.Tensor, cal: Calibration) -> torch.Tensor:
    """(B, 1, H, W) attention in [0, 1] -> calibrated, feathered p in [0, 1]."""
    p = ((att - cal.t0) / max(cal.t1 - cal.t0, 1e-6)).clamp(0.0, 1.0)
    if cal.shape == "round":
        return _round_feather(p, cal.dilate_px, cal.blur_px)
    assert cal.shape == "box", f"unknown feathering shape {cal.shape!r}"
    # Both filters are separable (rows, then columns): the same result as
    # the square window, at 2k instead of k^2 operations per pixel.
    if cal.dilate_px > 0:
        r = cal.dilate_px
        p = F.max_pool2d(p, (1, 2 * r + 1), stride=1, padding=(0, r))
        p = F.max_pool2d(p, (2 * r + 1, 1), stride=1, padding=(r, 0))
    if cal.blur_px > 0:
        s = cal.blur_px
        # count_include_pad=False: at an image edge the mean is over real
        # pixels only, so p does not fade towards the border.
        p = F.avg_pool2d(p, (1, 2 * s + 1), stride=1, padding=(0, s), count_include_pad=False)
        p = F.avg_pool2d(p, (2 * s + 1, 1), stride=1, padding=(s, 0), count_include_pad=False)
    return p.clamp(0.0, 1.0)


def _round_feather(d: torch.Tensor, dilate_px: int, blur_px: int) -> torch.Tensor:
    r = dilate_px + blur_px
    if r <= 0:
        return d
    sigma = r / 3.0
    x = torch.arange(-r, r + 1, dtype=d.dtype)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    # Gain: the Gaussian of a straight edge is Phi(-x / sigma) at distance x
    # outside it; p reaches 1 at x = dilate.
    gain = 1.0 / (0.5 * math.erfc(dilate_px / sigma / math.sqrt(2.0)))
    rows, cols = k1.view(1, 1, 1, -1), k1.view(1, 1, -1, 1)

    def g(t):
        return F.conv2d(F.conv2d(t, rows, padding=(0, r)), cols, padding=(r, 0))

    # Divided by the filter of ones: at an image edge, the mean is over real
    # pixels only (as count_include_pad=False does for the box).
    return (gain * g(d) / g(torch.ones_like(d[:1]))).clamp(0.0, 1.0)


class WithProbability(nn.Module):
    """A Pixel-CR model whose second output is the calibrated probability
    instead of the raw attention map (what `export.py` writes)."""

    def __init__(self, model: nn.Module, cal: Calibration, detector: nn.Module | None = None):
        super().__init__()
        assert (detector is not None) == (cal.source == "detector"), "calibration source and detector disagree"
        self.model = model
        self.detector = detector
        self.cal = cal
        self.cfg = model.cfg

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clear, att = self.model(x)
        if self.detector is not None:
            att = self.detector(x)
        return clear, cloud_probability(att, self.cal)


def blend(cloudy, pred, p):
    """p x pred + (1 - p) x cloudy, where p == 0 gives cloudy exactly."""
    return cloudy + p * (pred - cloudy)
