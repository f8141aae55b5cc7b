"""IND (stage 2 of IDF-CR): latent autoencoder, denoising UNet, ControlNet,
the diffusion schedule and the iterative-noise-refinement (INR) training step.

Decisions (METHOD.md):
- Autoencoder: our own, small, trained on clear imagery; the paper's
  codebook lookup z_d = CodeBook[argmin ||z - e||] (Eq. 9) with a
  straight-through gradient and a commitment loss; a KL variant as an option.
  No GroupNorm anywhere (here or in the UNet): every layer is local, so a
  tile with enough halo gives exactly the whole-image result, which is what
  makes tiled encoding, denoising and decoding of whole scenes exact.
- Schedule: T = 1000, beta linear in sqrt(beta) from 0.00085 to 0.012,
  epsilon prediction (the same numbers as src/diffusion/schedule.rs).
- UNet pretrained on clear latents, then frozen; the ControlNet is a
  trainable copy of the UNet's encoder and middle whose first conv takes
  [z_t, condition latent] and whose zero-initialised 1x1 convs add to the
  UNet's skips and middle.
- INR (Algorithm 3, as in the official code): per batch fixed z_0, c and t;
  eps_0 ~ N(0, I); for k < K: z_t = q_sample(z_0, t, eps_k);
  loss = MSE(model(z_t, t, c), eps_k); optimiser step;
  eps_{k+1} = detach(model output). K configurable, default 3.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

T_STEPS = 1000


def betas(t: int = T_STEPS, start: float = 0.00085, end: float = 0.012) -> torch.Tensor:
    """Linear in sqrt(beta) ("scaled linear"), float64."""
    return torch.linspace(start**0.5, end**0.5, t, dtype=torch.float64) ** 2


def alphas_cumprod(t: int = T_STEPS) -> torch.Tensor:
    return torch.cumprod(1.0 - betas(t), dim=0)


def q_sample(z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, ac: torch.Tensor) -> torch.Tensor:
    """z_t = sqrt(ac_t) z0 + sqrt(1 - ac_t) eps, per sample t."""
    a = ac.to(z0.device)[t].float().view(-1, 1, 1, 1)
    return a.sqrt() * z0 + (1 - a).sqrt() * eps


# --------------------------------------------------------------------------
# Autoencoder


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


# --------------------------------------------------------------------------
# UNet and ControlNet


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


def load_checkpoint(path: str) -> tuple[dict, Autoencoder, Denoiser]:
    """An IND training checkpoint as (state, autoencoder, fused denoiser), in eval mode."""
    state = torch.load(path, map_location="cpu")
    ae = Autoencoder(AEConfig.from_dict(state["ae_config"]))
    ae.load_state_dict(state["ae"])
    unet = UNet(UNetConfig.from_dict(state["unet_config"]))
    unet.load_state_dict(state["unet"])
    control = ControlNet(unet)
    control.load_state_dict(state["control"])
    return state, ae.eval(), Denoiser(unet, control).eval()


def inr_step(
    denoiser: Denoiser,
    opt: torch.optim.Optimizer,
    z0: torch.Tensor,
    cond: torch.Tensor,
    t: torch.Tensor,
    ac: torch.Tensor,
    k_iters: int = 3,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Iterative noise refinement (Algorithm 3): fixed z0, cond and t; the
    first target is Gaussian noise, each next one the previous step's
    detached prediction. Returns the K losses."""
    eps = torch.randn(z0.shape, generator=generator, device=z0.device)
    losses = []
    for _ in range(k_iters):
        zt = q_sample(z0, t, eps, ac)
        pred = denoiser(zt, t, cond)
        loss = F.mse_loss(pred, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        eps = pred.detach()
    return losses


# --------------------------------------------------------------------------
# Sampling (the same chains as src/diffusion/schedule.rs and src/diffusion/sampler.rs; the Rust
# tests compare against tables written from here by make_fixtures)


def respaced_timesteps(steps: int, t: int = T_STEPS) -> list[int]:
    """t_k = round(k (T - 1) / (S - 1)), halves rounded away from zero (as
    Rust's f64::round; Python's round() would send 166.5 to 166)."""
    if steps <= 0:
        return []
    if steps == 1:
        return [t - 1]
    return [int(math.floor(k * (t - 1) / (steps - 1) + 0.5)) for k in range(steps)]


@dataclass
class Respaced:
    """A respaced chain: betas recomputed from the cumulative alphas so the
    marginals match the training schedule; DDPM "fixed small" variance."""

    timesteps: list[int]
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor

    @staticmethod
    def new(steps: int, t: int = T_STEPS) -> "Respaced":
        ts = respaced_timesteps(steps, t)
        ac = alphas_cumprod(t)[ts]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        betas = 1.0 - ac / prev
        return Respaced(ts, betas, ac, prev, betas * (1.0 - prev) / (1.0 - ac))


def sampler_step(r: Respaced, i: int, x: torch.Tensor, eps: torch.Tensor, method: str,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
    """One step from respaced step i to i - 1 in float64: DDIM (eta = 0) or
    DDPM with standard normal `noise` (unused at i = 0)."""
    x, eps = x.double(), eps.double()
    ac, prev, b = r.alphas_cumprod[i], r.alphas_cumprod_prev[i], r.betas[i]
    x0 = (x - (1 - ac).sqrt() * eps) / ac.sqrt()
    if method == "ddim":
        return prev.sqrt() * x0 + (1 - prev).sqrt() * eps
    mean = b * prev.sqrt() / (1 - ac) * x0 + (1 - prev) * (1 - b).sqrt() / (1 - ac) * x
    return mean if i == 0 else mean + r.posterior_variance[i].sqrt() * noise.double()


@torch.no_grad()
def sample(denoiser: nn.Module, cond: torch.Tensor, steps: int = 50, method: str = "ddpm",
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Latent sample for condition latents `cond` (B, C, h, w): respaced DDPM
    (the paper's 50 steps) or deterministic DDIM (eta = 0)."""
    r = Respaced.new(steps)
    x = torch.randn(cond.shape, generator=generator)
    for i in reversed(range(steps)):
        t = torch.full((cond.shape[0],), r.timesteps[i], dtype=torch.long)
        noise = torch.randn(cond.shape, generator=generator) if method == "ddpm" and i > 0 else None
        x = sampler_step(r, i, x, denoiser(x, t, cond), method, noise).float()
    return x
