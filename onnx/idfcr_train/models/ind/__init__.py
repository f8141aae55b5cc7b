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

from idfcr_train.checkpoint import load_state
from .autoencoder import AEConfig, Autoencoder, ResBlock, measure_latent_scale, reconstruction_loss
from .denoiser import ControlNet, Denoiser, Encoder, UNet, UNetConfig, timestep_embedding, zero_conv
from .inr import inr_step
from .schedule import (T_STEPS, Respaced, alphas_cumprod, betas, q_sample, respaced_timesteps, sample,
                       sampler_step)

__all__ = ["AEConfig", "Autoencoder", "ResBlock", "measure_latent_scale", "reconstruction_loss", "ControlNet",
           "Denoiser", "Encoder", "UNet", "UNetConfig", "timestep_embedding", "zero_conv", "inr_step", "T_STEPS",
           "Respaced", "alphas_cumprod", "betas", "q_sample", "respaced_timesteps", "sample", "sampler_step",
           "load_autoencoder", "load_checkpoint"]


def load_autoencoder(state: dict) -> Autoencoder:
    """The autoencoder of an IND checkpoint state, in eval mode (its UNet
    and ControlNet need not be trained yet)."""
    ae = Autoencoder(AEConfig.from_dict(state["ae_config"]))
    ae.load_state_dict(state["ae"])
    return ae.eval()


def load_checkpoint(path: str) -> tuple[dict, Autoencoder, Denoiser]:
    """An IND training checkpoint as (state, autoencoder, fused denoiser), in eval mode."""
    state = load_state(path)
    ae = load_autoencoder(state)
    unet = UNet(UNetConfig.from_dict(state["unet_config"]))
    unet.load_state_dict(state["unet"])
    control = ControlNet(unet)
    control.load_state_dict(state["control"])
    return state, ae.eval(), Denoiser(unet, control).eval()
