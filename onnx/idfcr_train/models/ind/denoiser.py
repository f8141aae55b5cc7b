"""The denoising UNet (pretrained on clear latents, then frozen) and the
ControlNet (a trainable copy of its encoder and middle, conditioned on the
stage-1 latent, added through zero-initialised 1x1 convs), fused as
`Denoiser` for export.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .autoencoder import ResBlock

@dataclass
class UNetConfig:
    latent: int = 4
    channels: list[int] = field(default_factory=lambda: [64, 128])
    temb: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "UNetConfig":
        return UNetConfig(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps, (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class Encoder(nn.Module):
    """The UNet's down path and middle; returns the skips and the middle.
    `in_ch` differs for the ControlNet copy ([z_t, condition])."""

    def __init__(self, cfg: UNetConfig, in_ch: int):
        super().__init__()
        ch = cfg.channels
        self.inp = nn.Conv2d(in_ch, ch[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, c in enumerate(ch):
            self.blocks.append(ResBlock(ch[max(i - 1, 0)] if i else ch[0], c, cfg.temb))
            self.downs.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i + 1 < len(ch) else nn.Identity())
        self.mid = ResBlock(ch[-1], ch[-1], cfg.temb)
        self.skip_channels = [ch[0]] + list(ch)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        h = self.inp(x)
        skips = [h]
        for blk, down in zip(self.blocks, self.downs):
            h = blk(h, emb)
            skips.append(h)
            h = down(h)
        return skips, self.mid(h, emb)


class UNet(nn.Module):
    """Epsilon prediction on latents; optional residuals (from a ControlNet)
    are added to the skips and the middle."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        self.temb = nn.Sequential(nn.Linear(cfg.temb, cfg.temb), nn.SiLU(), nn.Linear(cfg.temb, cfg.temb))
        self.encoder = Encoder(cfg, cfg.latent)
        ch = cfg.channels
        self.ups = nn.ModuleList()
        self.dec_blocks = nn.ModuleList()
        for i in reversed(range(len(ch))):
            self.dec_blocks.append(ResBlock(ch[i] + ch[i], ch[i], cfg.temb))
            self.ups.append(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i], ch[i - 1], 3, padding=1))
                if i > 0 else nn.Identity()
            )
        self.out = nn.Conv2d(ch[0] + ch[0], cfg.latent, 3, padding=1)

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        return self.temb(timestep_embedding(t, self.cfg.temb))

    def forward(self, z: torch.Tensor, t: torch.Tensor, residuals: list[torch.Tensor] | None = None) -> torch.Tensor:
        emb = self.embed(t)
        skips, h = self.encoder(z, emb)
        if residuals is not None:
            skips = [s + r for s, r in zip(skips, residuals[:-1])]
            h = h + residuals[-1]
        n = len(self.cfg.channels)
        for j, (blk, up) in enumerate(zip(self.dec_blocks, self.ups)):
            i = n - 1 - j
            h = blk(torch.cat([h, skips[i + 1]], dim=1), emb)
            h = up(h)
        return self.out(F.silu(torch.cat([h, skips[0]], dim=1)))


def zero_conv(c: int) -> nn.Conv2d:
    conv = nn.Conv2d(c, c, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ControlNet(nn.Module):
    """Trainable copy of the UNet encoder and middle; first conv takes
    [z_t, condition latent]; zero convs give the residuals."""

    def __init__(self, unet: UNet):
        super().__init__()
        cfg = unet.cfg
        self.temb = nn.Sequential(nn.Linear(cfg.temb, cfg.temb), nn.SiLU(), nn.Linear(cfg.temb, cfg.temb))
        self.temb.load_state_dict(unet.temb.state_dict())
        self.encoder = Encoder(cfg, 2 * cfg.latent)
        # Start from the UNet's weights; the extra condition channels of the
        # first conv start at zero so the copy initially sees only z_t.
        state = unet.encoder.state_dict()
        w = state["inp.weight"]
        state["inp.weight"] = torch.cat([w, torch.zeros_like(w)], dim=1)
        self.encoder.load_state_dict(state)
        self.zero = nn.ModuleList([zero_conv(c) for c in self.encoder.skip_channels] + [zero_conv(cfg.channels[-1])])
        self.cfg = cfg

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> list[torch.Tensor]:
        emb = self.temb(timestep_embedding(t, self.cfg.temb))
        skips, mid = self.encoder(torch.cat([z, cond], dim=1), emb)
        return [zc(s) for zc, s in zip(self.zero, skips + [mid])]


class Denoiser(nn.Module):
    """What the runtime runs: (z_t, t, condition latent) -> predicted noise,
    ControlNet and frozen UNet fused in one graph."""

    def __init__(self, unet: UNet, control: ControlNet):
        super().__init__()
        self.unet, self.control = unet, control

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(z, t, self.control(z, t, cond))
