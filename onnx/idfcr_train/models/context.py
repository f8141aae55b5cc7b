"""A coarse context branch for Pixel-CR: what the window attention cannot see.

Pixel-CR's Swin blocks attend within 16 px windows (shifted every other
block), so after three submodules a pixel's output depends on about 40 px
around it. The fill of a thick cloud 100 px wide then has no clear ground in
reach, and the RGB model's worst validation scenes (block 3) keep their
error at scales of 64 px and up (model card, "Limits").

The branch reads the last submodule's features averaged down 4 x 4, runs
dilated 3x3 convolutions there (each output pixel sees about +-(2 x sum of
dilations) quarter-scale pixels: 60 px of full resolution for dilations
1, 2, 4, 8 ... see `reach_px`), brings the result back up bilinearly and adds
a correction to the features the reconstruction reads. Convolutions, not
windows: their only grid is the pooling's (factor px), which divides the
network's window, so with tile origins on the window grid a tiled result
still equals the whole-image one away from the tile margins (the exporter
measures the halo).

The correction's last convolution starts at zero, so a branch added to a
trained network starts as exactly that network; with `freeze_body` only the
branch trains, the attention maps (and so the calibrated p) stay the
trained network's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DilatedResidual(nn.Module):
    """x + conv(gelu(conv(x))), both 3x3 with `dilation`: a reach of
    2 x dilation px at the branch's scale."""

    def __init__(self, *, ch: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(x)))


class ContextBranch(nn.Module):
    """The branch: `dim` feature channels in and out, `ch` of its own at
    1/`factor` scale, one `DilatedResidual` per dilation."""

    def __init__(self, *, dim: int, ch: int, factor: int, dilations: list[int]):
        super().__init__()
        self.factor = factor
        self.dilations = list(dilations)
        self.inp = nn.Conv2d(dim, ch, 1)
        self.body = nn.Sequential(*[DilatedResidual(ch=ch, dilation=d) for d in dilations])
        self.fuse = nn.Conv2d(dim + ch, dim, 3, padding=1)
        self.out = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """The correction to add to `f` (B, dim, H, W); H and W multiples of the factor."""
        c = self.body(self.inp(F.avg_pool2d(f, self.factor)))
        up = F.interpolate(c, scale_factor=float(self.factor), mode="bilinear", align_corners=False)
        return self.out(F.gelu(self.fuse(torch.cat([f, up], dim=1))))


def reach_px(factor: int, dilations: list[int]) -> int:
    """How far (full-resolution px) the branch's convolutions reach: two 3x3
    convolutions per dilation d at 1/factor scale."""
    return factor * 2 * sum(dilations)
