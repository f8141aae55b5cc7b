"""The latent autoencoder: our own, small, trained on clear imagery; the
paper's codebook lookup (Eq. 9) with a straight-through gradient and a
commitment loss; a KL variant as an option. No GroupNorm: every layer is
local, so tiled encoding and decoding are exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

@dataclass
class AEConfig:
    in_bands: int = 3
    latent: int = 4
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one downsample per entry after the first
    codebook: int = 512  # 0: no quantisation
    kl: bool = False  # KL variant instead of the codebook
    kl_weight: float = 1e-4  # of the KL term (a weight of 1 pulls the latents to pure noise)
    commitment: float = 0.25

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "AEConfig":
        return AEConfig(**d)


class ResBlock(nn.Module):
    """Two 3x3 convs with SiLU and a residual; no normalisation (local)."""

    def __init__(self, cin: int, cout: int, temb: int = 0):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.temb = nn.Linear(temb, cout) if temb else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(F.silu(x))
        if self.temb is not None and emb is not None:
            h = h + self.temb(emb)[:, :, None, None]
        h = self.c2(F.silu(h))
        return self.skip(x) + h


class Autoencoder(nn.Module):
    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        enc: list[nn.Module] = [nn.Conv2d(cfg.in_bands, ch[0], 3, padding=1)]
        for i in range(len(ch)):
            enc.append(ResBlock(ch[max(i - 1, 0)] if i else ch[0], ch[i]))
            if i + 1 < len(ch):
                enc.append(nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1))
        self.enc = nn.ModuleList(enc)
        self.to_latent = nn.Conv2d(ch[-1], cfg.latent * (2 if cfg.kl else 1), 1)
        self.from_latent = nn.Conv2d(cfg.latent, ch[-1], 3, padding=1)
        dec: list[nn.Module] = []
        for i in reversed(range(len(ch))):
            dec.append(ResBlock(ch[i], ch[i]))
            if i > 0:
                dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
                dec.append(nn.Conv2d(ch[i], ch[i - 1], 3, padding=1))
        self.dec = nn.ModuleList(dec)
        self.out = nn.Conv2d(ch[0], cfg.in_bands, 3, padding=1)
        if cfg.codebook and not cfg.kl:
            self.codebook = nn.Embedding(cfg.codebook, cfg.latent)
            nn.init.normal_(self.codebook.weight)  # uniform directions once normalised
        else:
            self.codebook = None
        # Diffusion wants latents of about unit variance (the schedule's
        # signal-to-noise ratios assume it); the autoencoder's own latents have
        # whatever spread training gave them. Measured once on clear training
        # latents before the UNet stage (see `measure_latent_scale`) and folded
        # into encode/decode, so the exported graphs carry it.
        self.register_buffer("latent_scale", torch.ones(()))

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for m in self.enc:
            h = m(h)
        return self.to_latent(F.silu(h))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 9: each latent vector replaced by its nearest codebook entry
        (straight-through gradient); returns (z_q, VQ loss).

        Latent vectors and codebook entries are compared on the unit sphere
        (l2-normalised, as ViT-VQGAN): with raw Euclidean lookup our CPU runs
        collapsed onto a few codes while the latents grew (VQ loss 0 -> 15 in
        250 steps, L1 stuck at 0.1-0.2); normalised lookup keeps both bounded."""
        b, c, h, w = z.shape
        z = F.normalize(z, dim=1)
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        e = F.normalize(self.codebook.weight, dim=1)
        zq = e[(flat @ e.t()).argmax(1)].view(b, h, w, c).permute(0, 3, 1, 2)
        loss = F.mse_loss(zq, z.detach()) + self.cfg.commitment * F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), loss

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image -> latent as the diffusion sees it (deterministic: the
        pre-quantisation latent, or the KL posterior mean)."""
        z = self.encode_raw(x)
        if self.cfg.kl:
            z = z[:, : self.cfg.latent]
        elif self.codebook is not None:
            z = F.normalize(z, dim=1)  # the lookup's sphere
        return z * self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> image; the codebook lookup happens here (Eq. 9)."""
        z = z / self.latent_scale
        if self.codebook is not None:
            z, _ = self.quantize(z)
        return self.decode_quantized(z)

    def decode_quantized(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder proper: looked-up (or KL-sampled) latent -> image."""
        h = self.from_latent(z)
        for m in self.dec:
            h = m(h)
        return self.out(F.silu(h))

    def decoder_parameters(self) -> list[nn.Parameter]:
        """What `--stage decoder` fine-tunes: everything after the lookup, so
        the latents (and the diffusion models trained on them) stay valid."""
        return [*self.from_latent.parameters(), *self.dec.parameters(), *self.out.parameters()]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and the regulariser (VQ or KL) loss."""
        z = self.encode_raw(x)
        if self.cfg.kl:
            mean, logvar = z.chunk(2, dim=1)
            logvar = logvar.clamp(-30, 20)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
            reg = self.cfg.kl_weight * 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        elif self.codebook is not None:
            z, reg = self.quantize(z)
        else:
            reg = torch.zeros((), device=x.device)
        return self.decode_quantized(z), reg


def reconstruction_loss(rec: torch.Tensor, x: torch.Tensor, grad_weight: float) -> torch.Tensor:
    """L1 on pixels plus L1 on horizontal and vertical differences. Pixel L1
    alone left the decoder adding spurious high frequencies (blocky texture
    at the latent grid: twice the validation images' gradient energy), which
    the no-reference metrics punish; the difference term ties edges to the
    image's own."""
    loss = F.l1_loss(rec, x)
    if grad_weight:
        dx = F.l1_loss(rec[..., :, 1:] - rec[..., :, :-1], x[..., :, 1:] - x[..., :, :-1])
        dy = F.l1_loss(rec[..., 1:, :] - rec[..., :-1, :], x[..., 1:, :] - x[..., :-1, :])
        loss = loss + grad_weight * (dx + dy)
    return loss


@torch.no_grad()
def measure_latent_scale(ae: Autoencoder, images: torch.Tensor) -> float:
    """1 / std of the unscaled latents of `images` (as Stable Diffusion's
    0.18215, but measured on our data)."""
    z = ae.encode(images) / ae.latent_scale
    return float(1.0 / z.float().std().clamp_min(1e-6))
