"""A dedicated cloud detector for the RGB model's blend probability.

Why not the cloudy-attention head: trained inside Pixel-CR, its map is
whatever helps the restoration loss. Measured on pixel_cr_rgb 0.3
(`models/pixel_cr_rgb.calibration.json`): precision and recall 0 on
synthetic clouds at p > 0.5, and over the Landsat 8 demo (another stretch
than RICE2's) it sits near 0.5 everywhere, clear fields included, so no
calibration can both find clouds and leave a clear scene alone.

This network does one thing: per-pixel cloud/haze opacity in [0, 1]. It is
small (a 4-level convolutional U-Net, about 0.2 M parameters, a few percent of
Pixel-CR's cost per pixel) and sees about 45 px around each pixel, which is what
tells a bright field from a cloud. It is trained on:

- synthetic clouds (`synth_clouds.add_clouds`) over clear images, whose
  opacity is exact: RICE2 and RICE1 training images, and the RGB bands of
  the SEN12MS-CR training scenes (other sensors, other palettes);
- clear images as they are (target 0);
- real RICE pairs, target from how much the cloudy image differs from its
  colour-aligned clear label (RICE2's pairs are different dates: the
  alignment and a signed mean over bands keep most date changes out);

with colour augmentation (band permutation, per-band gain, gamma, global
brightness) applied to the ground before the clouds are added, so that the
detector keys on what clouds look like (bright, white, smooth, soft-edged)
and not on RICE2's palette.

Trained by `idfcr_train.training.train_detector`; `training/calibrate.py
--detector` then calibrates its output into p and stores the detector inside
the Pixel-CR checkpoint, where `export/pixel_cr.py` picks it up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from idfcr_train.checkpoint import load_state


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
                         nn.LeakyReLU(0.1))


class CloudDetector(nn.Module):
    """(B, bands, H, W) in model units (0..1) -> (B, 1, H, W) opacity in
    [0, 1]. H and W must be multiples of 8 (Pixel-CR's window already is)."""

    def __init__(self, in_bands: int = 3, width: int = 16, extra_in: int = 0):
        super().__init__()
        w = width
        self.in_bands, self.width, self.extra_in = in_bands, width, extra_in
        self.e1 = nn.Sequential(_conv(in_bands + 2 + extra_in, w), _conv(w, w))
        self.e2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.e3 = nn.Sequential(_conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w))
        # Coarsest level, a dilated convolution for context (a cloud field
        # versus a bright roof or a sand bank). The receptive field, about
        # 45 px in every direction, is the tile halo this adds: one more
        # dilated layer (90 px) would make every 512 px tile recompute a
        # third more of its neighbours.
        self.e4 = nn.Sequential(_conv(3 * w, 4 * w, 2), _conv(4 * w, 4 * w, dilation=2))
        self.d3 = _conv(7 * w, 3 * w)
        self.d2 = _conv(5 * w, 2 * w)
        self.d1 = _conv(3 * w, w)
        self.head = nn.Conv2d(w, 1, 1)

    def config(self) -> dict:
        # A plain detector's config is what it was before gates existed.
        return {"in_bands": self.in_bands, "width": self.width, **({"extra_in": self.extra_in} if self.extra_in else {})}

    def logits(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        # Band-wise brightness features help with palette changes: clouds
        # are bright in every band at once (the minimum) and grey (a small
        # spread between bands), whatever the sensor's palette.
        lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        feats = [x, lo, hi - lo]
        if self.extra_in:
            assert extra is not None and extra.shape[1] == self.extra_in, f"this net reads {self.extra_in} more channels"
            feats.append(extra)
        f1 = self.e1(torch.cat(feats, 1))
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        f4 = self.e4(f3)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")
        g3 = self.d3(torch.cat([up(f4), f3], 1))
        g2 = self.d2(torch.cat([up(g3), f2], 1))
        g1 = self.d1(torch.cat([up(g2), f1], 1))
        return self.head(g1)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(x, extra))

    def with_extra_inputs(self, extra_in: int) -> "CloudDetector":
        """A copy that also reads `extra_in` more channels, whose input
        weights start at zero: it begins as exactly this detector."""
        net = CloudDetector(self.in_bands, self.width, extra_in)
        state = self.state_dict()
        first = "e1.0.0.weight"
        w = torch.zeros_like(net.state_dict()[first])
        w[:, : state[first].shape[1]] = state[first]
        state[first] = w
        net.load_state_dict(state)
        return net


# A blend gate's extra inputs (training/train_gate.py): the model's
# correction (one per band) and its attention.
GATE_EXTRA_IN = 4


def gate_inputs(x: torch.Tensor, out: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
    """What a gate reads besides the input: the correction the runtime would
    apply (the output clipped as it is written, minus the input) and the
    model's attention."""
    return torch.cat([out.clamp(0.0, 1.0) - x, att], 1)


def detector_map(det: CloudDetector, x: torch.Tensor, out: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
    """The map p is made from: a detector reads the input; a blend gate also
    reads what the model did to it (`out`, `att`: the model's outputs for `x`)."""
    return det(x, gate_inputs(x, out, att)) if det.extra_in else det(x)


def load_detector(path_or_state) -> nn.Module:
    """A trained detector or gate from its checkpoint, or a weightless cue
    (`models/haze.py`) from its config alone."""
    state = load_state(path_or_state) if isinstance(path_or_state, str) else path_or_state
    if state["config"].get("kind") == "dark_channel":
        from idfcr_train.models.haze import DarkChannel

        return DarkChannel(**state["config"]).eval()
    det = CloudDetector(**state["config"])
    det.load_state_dict(state["model"])
    return det.eval()
