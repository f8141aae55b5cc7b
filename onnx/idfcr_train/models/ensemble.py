"""Shift ensemble: Pixel-CR run on the tile and on copies shifted by part of
a window, the clear outputs averaged.

Why: window attention sees nothing across a window's border, so a fill of
thick cloud shows the 16 px window grid (the "window mosaic"; shifted windows
in every other block soften it, they do not remove it). Shifted by 8 px, the
same network puts its borders where the first run has window centres;
averaged, each border's step is halved and the two runs' independent errors
partly cancel (the self-ensemble of image restoration). Measured on 15 RICE2
validation images with 0.5's weights: +0.19 dB, SSIM 0.927 -> 0.934,
blockiness 0.94 -> 0.90, at twice the compute; on all 133, +0.19 dB raw and
+0.10 dB blended (models/pixel_cr_rgb.shift_ensemble.json, the 0.7
section of models/pixel_cr_rgb.history.md).

The attention map is taken from the unshifted run alone, so a calibration
chosen on the single network's attention (`calibrate.py`) holds unchanged.
The shifted copies are padded by reflection and cropped back: the image
keeps its size, a multiple of the window as the network needs, and the
tile's own halo (measured at export) absorbs the padding's effect at tile
borders.

The shifted runs may use a second network (`shifted_model`, same
architecture): two networks trained differently make less correlated errors
than one network twice, at the same compute, and the first network's
attention (so its calibration) still gives p.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def parse_shifts(text: str) -> list[tuple[int, int]]:
    """"0,0;8,8" -> [(0, 0), (8, 8)]; the unshifted run always comes first
    (its attention is the one kept) and is added when missing."""
    shifts = []
    for part in filter(None, (s.strip() for s in text.split(";"))):
        try:
            dy, dx = (int(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"shift {part!r} is not 'dy,dx'") from None
        shifts.append((dy, dx))
    if (0, 0) in shifts:
        shifts.remove((0, 0))
    return [(0, 0)] + shifts


class ShiftEnsemble(nn.Module):
    """forward(x) -> (mean of the clear outputs over the shifts, the
    unshifted run's attention). Shifts are (dy, dx), each in [0, window)."""

    def __init__(self, model: nn.Module, shifts: list[tuple[int, int]], shifted_model: nn.Module | None = None):
        super().__init__()
        win = model.cfg.window
        if shifted_model is not None:
            if len(shifts) < 2:
                raise ValueError("a second network runs at the shifts: name at least one besides (0, 0)")
            if shifted_model.cfg.to_dict() != model.cfg.to_dict():
                raise ValueError("the shifted runs' network has another architecture than the first")
        if not shifts or tuple(shifts[0]) != (0, 0):
            raise ValueError("the first shift must be (0, 0): its attention map is the one kept")
        for dy, dx in shifts:
            if not (0 <= dy < win and 0 <= dx < win):
                raise ValueError(f"shift ({dy}, {dx}) is outside one {win} px window")
        self.model = model
        # None keeps a one-network ensemble's state dict (and exports) as before.
        self.shifted_model = shifted_model
        self.cfg = model.cfg
        self.shifts = [tuple(int(v) for v in s) for s in shifts]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clear, att = self.model(x)
        if len(self.shifts) == 1:
            return clear, att
        h, w = x.shape[-2], x.shape[-1]
        win = self.cfg.window
        total = clear
        shifted = self.shifted_model if self.shifted_model is not None else self.model
        for dy, dx in self.shifts[1:]:
            # dy rows in front, the rest of a window behind: still a window multiple.
            pad = (dx, (win - dx) % win, dy, (win - dy) % win)
            out, _ = shifted(F.pad(x, pad, mode="reflect"))
            total = total + out[:, :, dy:dy + h, dx:dx + w]
        return total / len(self.shifts), att


def check_options(shifts: str | None, shifted_ckpt: str | None) -> None:
    """`--shifts` / `--shifted-ckpt` as the export and the reports take
    them, checked before any work: a second network runs at the shifts."""
    if shifted_ckpt and not shifts:
        raise SystemExit("--shifted-ckpt runs at --shifts: name them")


def from_options(model: nn.Module, shifts: str, shifted_ckpt: str | None) -> tuple["ShiftEnsemble", dict | None]:
    """The ensemble `--shifts DY,DX;... [--shifted-ckpt CKPT]` name, and the
    second checkpoint's state (None without one); a bad option exits naming it."""
    from idfcr_train.models.pixel_cr import load_checkpoint

    shifted, other = load_checkpoint(shifted_ckpt) if shifted_ckpt else (None, None)
    try:
        return ShiftEnsemble(model, parse_shifts(shifts), shifted).eval(), other
    except ValueError as e:
        raise SystemExit(f"--shifts: {e}") from None
