"""IND building blocks on tiny configs: shapes, the codebook lookup, the
zero-initialised ControlNet, locality (what makes tiled encode/denoise/decode
exact), the schedule and the INR step."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.ind import (  # noqa: E402
    AEConfig, Autoencoder, ControlNet, Denoiser, UNet, UNetConfig, alphas_cumprod, betas, inr_step, q_sample,
)

TINY_AE = AEConfig(in_bands=3, latent=4, channels=[8, 16], codebook=32)
TINY_UNET = UNetConfig(latent=4, channels=[16, 32], temb=16)


def test_schedule_is_scaled_linear():
    b = betas()
    assert len(b) == 1000
    assert float(b[0]) == pytest.approx(0.00085) and float(b[-1]) == pytest.approx(0.012)
    s = b.sqrt()
    assert torch.allclose(s[1:] - s[:-1], (s[1] - s[0]).expand(999), atol=1e-12)
    ac = alphas_cumprod()
    assert float(ac[-1]) == pytest.approx(float(torch.prod(1 - b)), rel=1e-12)


@pytest.mark.parametrize("kl,codebook", [(False, 32), (True, 0), (False, 0)])
def test_autoencoder_shapes_and_losses(kl, codebook):
    ae = Autoencoder(AEConfig(in_bands=3, latent=4, channels=[8, 16], codebook=codebook, kl=kl))
    x = torch.rand(2, 3, 16, 24)
    rec, reg = ae(x)
    assert rec.shape == x.shape and reg.ndim == 0
    z = ae.encode(x)
    assert z.shape == (2, 4, 8, 12)
    assert ae.decode(z).shape == x.shape


def test_codebook_lookup_is_nearest_entry_with_straight_through_gradient():
    ae = Autoencoder(TINY_AE)
    z = torch.randn(1, 4, 3, 3, requires_grad=True)
    zq, loss = ae.quantize(z)
    # Nearest on the unit sphere (both sides l2-normalised).
    e = torch.nn.functional.normalize(ae.codebook.weight.detach(), dim=1)
    flat = torch.nn.functional.normalize(z.detach(), dim=1).permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = e[torch.cdist(flat, e).argmin(1)]
    assert torch.allclose(zq.detach().permute(0, 2, 3, 1).reshape(-1, 4), nearest, atol=1e-6)
    # Straight through the lookup: the gradient is that of the normalisation.
    zq.sum().backward()
    z2 = z.detach().clone().requires_grad_(True)
    torch.nn.functional.normalize(z2, dim=1).sum().backward()
    assert torch.allclose(z.grad, z2.grad, atol=1e-6)
    assert float(loss) > 0


def test_controlnet_starts_as_a_no_op():
    torch.manual_seed(0)
    unet = UNet(TINY_UNET)
    den = Denoiser(unet, ControlNet(unet))
    z, c = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([10, 900])
    assert torch.allclose(den(z, t, c), unet(z, t), atol=1e-6)


def test_only_controlnet_weights_change_in_inr():
    torch.manual_seed(1)
    unet = UNet(TINY_UNET)
    for p in unet.parameters():
        p.requires_grad_(False)
    ctrl = ControlNet(unet)
    den = Denoiser(unet, ctrl)
    before_unet = [p.clone() for p in unet.parameters()]
    before_ctrl = [p.clone() for p in ctrl.parameters()]
    opt = torch.optim.Adam(ctrl.parameters(), lr=1e-3)
    ac = alphas_cumprod()
    z0, c = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    losses = inr_step(den, opt, z0, c, torch.tensor([100, 600]), ac, k_iters=3,
                      generator=torch.Generator().manual_seed(0))
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert all(torch.equal(a, b) for a, b in zip(before_unet, unet.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_ctrl, ctrl.parameters()))


def test_inr_targets_are_the_previous_predictions():
    """With K = 2 the second target is the first prediction: replay it."""
    torch.manual_seed(2)
    unet = UNet(TINY_UNET)
    den = Denoiser(unet, ControlNet(unet))
    opt = torch.optim.SGD(den.control.parameters(), lr=0.0)  # no change: predictions are replayable
    ac = alphas_cumprod()
    z0, c, t = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([300])
    g = torch.Generator().manual_seed(5)
    losses = inr_step(den, opt, z0, c, t, ac, k_iters=2, generator=g)
    eps0 = torch.randn(z0.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        p0 = den(q_sample(z0, t, eps0, ac), t, c)
        p1 = den(q_sample(z0, t, p0, ac), t, c)
    assert losses[0] == pytest.approx(float(((p0 - eps0) ** 2).mean()), rel=1e-5)
    assert losses[1] == pytest.approx(float(((p1 - p0) ** 2).mean()), rel=1e-5)


@torch.no_grad()
def test_every_stage_is_local():
    """A crop gives the same result as the whole image away from its border:
    no GroupNorm or other image-wide statistic anywhere."""
    torch.manual_seed(3)
    ae = Autoencoder(TINY_AE).eval()
    unet = UNet(TINY_UNET).eval()
    den = Denoiser(unet, ControlNet(unet)).eval()
    x = torch.rand(1, 3, 96, 96)
    full = ae.decode(ae.encode(x))
    part = ae.decode(ae.encode(x[:, :, 16:80, 16:80]))
    assert torch.allclose(full[:, :, 44:52, 44:52], part[:, :, 28:36, 28:36], atol=1e-5)
    z, c, t = torch.randn(1, 4, 64, 64), torch.randn(1, 4, 64, 64), torch.tensor([500])
    e_full = den(z, t, c)
    e_part = den(z[:, :, 16:48, 16:48], t, c[:, :, 16:48, 16:48])
    assert torch.allclose(e_full[:, :, 30:34, 30:34], e_part[:, :, 14:18, 14:18], atol=1e-5)


def test_export_three_graphs_with_contract_and_parity(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from idfcr_train.export.ind import export_all, parity

    torch.manual_seed(4)
    ae = Autoencoder(TINY_AE)
    unet = UNet(TINY_UNET)
    den = Denoiser(unet, ControlNet(unet))
    paths = export_all(ae, den, str(tmp_path), "t", "0", ["r", "g", "b"], 1 / 255)
    assert parity(ae, den, paths) < 1e-4
    metas = {k: ort.InferenceSession(p, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
             for k, p in paths.items()}
    assert metas["encoder"]["idfcr.kind"] == "ind_encoder" and metas["encoder"]["idfcr.factor"] == "2"
    assert metas["denoiser"]["idfcr.window_px"] == "2" and metas["denoiser"]["idfcr.prediction"] == "epsilon"
    for m in metas.values():
        assert 0 < int(m["idfcr.halo_px"]) < 64


def test_schedule_fixture_is_what_python_computes_now():
    # The Rust tests compare src/diffusion/schedule.rs against this file; if Python's
    # schedule changes, the fixture (and the shipped denoiser) must follow.
    import json
    import os

    from idfcr_train.models.ind import Respaced, alphas_cumprod

    path = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "models", "schedule.ref.json")
    with open(path) as f:
        ref = json.load(f)
    assert np.allclose(ref["alphas_cumprod"], alphas_cumprod().numpy(), rtol=1e-12, atol=0)
    for steps, chain in ref["chains"].items():
        r = Respaced.new(int(steps))
        assert chain["timesteps"] == r.timesteps
        assert np.allclose(chain["posterior_variance"], r.posterior_variance.numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("steps,want", [(1, [999]), (3, [0, 500, 999]), (7, [0, 167, 333, 500, 666, 833, 999])])
def test_respaced_timesteps_round_halves_away_from_zero(steps, want):
    from idfcr_train.models.ind import respaced_timesteps

    assert respaced_timesteps(steps) == want


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_sampling_with_the_true_noise_recovers_the_clean_latent(method):
    # A denoiser that knows z0 predicts the exact noise of any z_t: DDIM then
    # lands on z0 exactly, DDPM within its last (noise-free) step's error.
    from idfcr_train.models.ind import alphas_cumprod, sample

    z0 = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(3))
    ac = alphas_cumprod()

    def oracle(x, t, cond):
        a = ac[t].float().view(-1, 1, 1, 1)
        return (x - a.sqrt() * z0) / (1 - a).sqrt()

    out = sample(oracle, torch.zeros_like(z0), steps=10, method=method, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, z0, atol=1e-3)


def test_decoder_parameters_leave_the_latents_alone():
    # `--stage decoder` trains only these: the encoder, codebook and latent
    # scale (what the diffusion models were trained on) must not be among them.
    from idfcr_train.models.ind import reconstruction_loss

    ae = Autoencoder(TINY_AE)
    dec = {id(p) for p in ae.decoder_parameters()}
    enc = [*ae.enc.parameters(), *ae.to_latent.parameters(), *ae.codebook.parameters()]
    assert dec and not dec & {id(p) for p in enc}
    assert len(dec) + len(enc) == len(list(ae.parameters()))
    # The difference term sees a shifted copy as perfect edges, a flattened one not.
    x = torch.rand(1, 3, 8, 8)
    assert float(reconstruction_loss(x + 0.1, x, 1.0)) == pytest.approx(0.1, abs=1e-6)
    flat = x.mean().expand_as(x)
    assert float(reconstruction_loss(flat, x, 1.0)) > float(reconstruction_loss(flat, x, 0.0))


def test_ablation_groups_runs_by_k_with_mean_and_spread():
    from idfcr_train.reports.ind_ablation import by_k

    def run(k, psnr):
        scores = {"psnr": psnr, "ssim": 0.9, "sharpness_ratio": 1.0}
        return {"k": k, "control_steps": 600, "decoded": scores, "refined": scores}

    summary = by_k({"a": run(1, 28.0), "b": run(1, 30.0), "c": run(2, 29.0), "d": run(1, 29.0)})
    assert list(summary) == ["1", "2"]
    assert summary["1"]["runs"] == 3
    assert summary["1"]["refined_psnr"] == {"mean": 29.0, "std": 1.0}
    # One run: no spread to measure, reported as 0 rather than NaN.
    assert summary["2"]["decoded_psnr"] == {"mean": 29.0, "std": 0.0}
