"""A haze cue with no weights: the local dark channel (He et al., "Single
image haze removal using dark channel prior").

In a clear scene almost every small neighbourhood holds a pixel that is dark
in some band (a shadow, vegetation in blue or red, water); haze adds a veil
of airlight that lifts that floor everywhere. The map is

    d = mean_R( min_k( min over bands of x ) )

a minimum filter of radius k (the neighbourhood's darkest pixel), then a box
mean of radius R (a scene-scale level, so one bright roof or a sand bank
does not open the blend on its own).

Why it exists: the RICE1 haze model's own attention cannot tell a hazy
scene from a clear one (every calibration that keeps clear references at
40 dB keeps p shut), and its raw output ruins clear dark water. Used as the
map of `Calibration(source="detector")`, p opens only where the veil is
high. Its limit is plain: bright clear ground (desert, snow) scores like
haze, so the ramp must sit above the bright clear scenes a calibration sees,
and dark hazy scenes stay untouched (see the RICE1 card).

It stands in the place of a trained detector (`models/detector.py`): the
same `logits`/`forward`/`config`/`extra_in`, built by `load_detector` from
its config alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DarkChannel(nn.Module):
    KIND = "dark_channel"

    def __init__(self, in_bands: int = 3, min_px: int = 7, mean_px: int = 64, kind: str = KIND):
        super().__init__()
        assert kind == self.KIND, kind
        assert min_px >= 0 and mean_px >= 0
        self.in_bands, self.min_px, self.mean_px = in_bands, min_px, mean_px
        # The trained detectors' interface: no extra inputs.
        self.extra_in = 0

    def config(self) -> dict:
        return {"kind": self.KIND, "in_bands": self.in_bands, "min_px": self.min_px, "mean_px": self.mean_px}

    def logits(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        # The map itself (halo measurement reads this; there is no sigmoid).
        return self.forward(x)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        m = x.amin(1, keepdim=True)
        k = self.min_px
        if k > 0:
            # A minimum filter as the max of the negated image; rows, then
            # columns (the square window's result at 2k operations per
            # pixel). max_pool2d pads with -inf: the border takes the
            # minimum over real pixels only.
            m = -F.max_pool2d(-m, (1, 2 * k + 1), stride=1, padding=(0, k))
            m = -F.max_pool2d(-m, (2 * k + 1, 1), stride=1, padding=(k, 0))
        r = self.mean_px
        if r > 0:
            # count_include_pad=False: at an image edge the mean is over real pixels.
            m = F.avg_pool2d(m, (1, 2 * r + 1), stride=1, padding=(0, r), count_include_pad=False)
            m = F.avg_pool2d(m, (2 * r + 1, 1), stride=1, padding=(r, 0), count_include_pad=False)
        return m
