"""The diffusion schedule and the samplers (the same numbers and chains as
src/diffusion/schedule.rs and src/diffusion/sampler.rs; the Rust tests compare
against tables written from here by export/fixtures.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

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
# Sampling (the same chains as src/diffusion/schedule.rs and src/diffusion/sampler.rs; the Rust
# tests compare against tables written from here by export/fixtures.py)


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
