"""The iterative-noise-refinement (INR) training step (Algorithm 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .denoiser import Denoiser
from .schedule import q_sample

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
