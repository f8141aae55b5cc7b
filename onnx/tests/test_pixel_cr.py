"""Pixel-CR: shapes, the attention target, the loss, a few training steps,
export parity, and the pieces around them. Tiny configs: seconds on CPU."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.data.pairs import Pair, check_held_out, random_crop_pair, split_by_block  # noqa: E402
from idfcr_train.reports.metrics import psnr, rmse, ssim  # noqa: E402
from idfcr_train.models.pixel_cr import (  # noqa: E402
    PixelCR, PixelCRConfig, attention_target, pixel_cr_loss, thick_cloud_weight)
from idfcr_train.data.synth_clouds import add_clouds, fractal_noise  # noqa: E402
from idfcr_train.checkpoint import held_out_on_resume, still_held_out  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("attention,shifted", [(True, False), (False, False), (True, True)])
def test_shapes_and_ranges(attention, shifted):
    cfg = PixelCRConfig.tiny(4)
    cfg.cloudy_attention, cfg.shifted_windows = attention, shifted
    model = PixelCR(cfg)
    x = torch.rand(2, 4, 16, 24)
    clear, att = model(x)
    assert clear.shape == (2, 4, 16, 24)
    assert att.shape == (2, 1, 16, 24)
    if attention:
        assert float(att.min()) >= 0 and float(att.max()) <= 1
    else:
        assert float(att.abs().max()) == 0


def test_side_attention_detects_but_gates_nothing():
    # The side head's map is a probability, and the clear image is exactly
    # what the same body gives with no attention at all: nothing is gated.
    side = PixelCRConfig.tiny(3)
    side.attention_gates = False
    model = PixelCR(side)
    assert len(model.attn) == 1
    plain_cfg = PixelCRConfig.tiny(3)
    plain_cfg.cloudy_attention = False
    plain = PixelCR(plain_cfg)
    missing = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing.missing_keys and all(k.startswith("attn.") for k in missing.unexpected_keys)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        clear, att = model(x)
        want, _ = plain(x)
    assert torch.equal(clear, want)
    assert att.shape == (1, 1, 16, 16) and 0 <= float(att.min()) and float(att.max()) <= 1
    assert float(att.std()) > 0


def test_configs_without_the_side_flag_load_as_gating():
    d = PixelCRConfig.tiny(3).to_dict()
    del d["attention_gates"]
    assert PixelCRConfig.from_dict(d).attention_gates


def test_sizes_must_be_window_multiples():
    model = PixelCR(PixelCRConfig.tiny(3))
    with pytest.raises(AssertionError, match="multiples of the window"):
        model(torch.rand(1, 3, 12, 16))


def test_paper_config_size():
    # About 1 M parameters, as METHOD.md says for the paper's configuration.
    n = sum(p.numel() for p in PixelCR(PixelCRConfig.paper()).parameters())
    assert 0.7e6 < n < 1.3e6, n


@pytest.mark.parametrize(
    "diff,threshold,want",
    [(0.0, 0.08, 0.0), (0.05, 0.08, 0.0), (0.09, 0.08, 1.0), (-0.5, 0.08, 1.0), (0.3, 0.5, 0.0)],
)
def test_attention_target_is_binarized_absolute_difference(diff, threshold, want):
    cloudy = torch.full((1, 3, 2, 2), 0.5)
    clear = cloudy + diff
    m = attention_target(cloudy, clear, threshold)
    assert m.shape == (1, 1, 2, 2)
    assert torch.all(m == want)


def test_loss_is_100_l1_plus_attention_mse():
    pred = torch.zeros(1, 3, 4, 4)
    clear = torch.full((1, 3, 4, 4), 0.1)
    cloudy = torch.full((1, 3, 4, 4), 0.9)  # |diff| 0.8 -> M = 1 everywhere
    maps = [torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 1.0)]
    loss, parts = pixel_cr_loss(pred, maps, cloudy, clear)
    assert parts["l1"] == pytest.approx(0.1)
    assert parts["attn"] == pytest.approx((0.25 + 0.0) / 2)
    assert float(loss) == pytest.approx(100 * 0.1 + 0.125)


def test_band_weights_and_band_balanced_l1():
    clear = torch.zeros(2, 2, 4, 4)
    pred = torch.zeros(2, 2, 4, 4)
    pred[:, 0] = 0.1  # band 0 off by 0.1
    pred[:, 1] = 0.001  # band 1 off by 0.001
    cloudy = clear.clone()
    # Plain: the mean of the per-band L1s.
    _, parts = pixel_cr_loss(pred, [], cloudy, clear)
    assert parts["l1"] == pytest.approx((0.1 + 0.001) / 2)
    # Balanced: their geometric mean, so the small band counts as much.
    _, parts = pixel_cr_loss(pred, [], cloudy, clear, band_balanced=True)
    assert parts["l1"] == pytest.approx(np.sqrt((0.1 + 1e-5) * (0.001 + 1e-5)), rel=1e-4)
    # A zero weight removes a band's label from the loss (sample 0's band 0
    # is unusable; sample 1's is fine).
    pred[1, 0] = 0.3
    w = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    _, parts = pixel_cr_loss(pred, [], cloudy, clear, band_weight=w)
    assert parts["l1"] == pytest.approx((0.3 + 0.001) / 2)


@pytest.mark.parametrize("diff,weight,want", [
    (0.0, 3.0, 1.0),   # clear in both: plain weight
    (0.1, 3.0, 1.0),   # a date change or haze below the threshold
    (0.2, 3.0, 4.0),   # thick cloud: 1 + weight
    (0.2, 0.0, 1.0),   # weight 0: plain L1
])
def test_thick_cloud_pixels_weigh_more(diff, weight, want):
    clear = torch.full((1, 3, 2, 2), 0.3)
    cloudy = clear + diff
    w = thick_cloud_weight(cloudy, clear, weight)
    assert w.shape == (1, 1, 2, 2)
    assert torch.allclose(w, torch.full_like(w, want))


def test_pixel_weights_make_l1_a_weighted_mean():
    clear = torch.zeros(1, 1, 1, 4)
    cloudy = torch.tensor([[[[0.5, 0.5, 0.0, 0.0]]]])  # two thick-cloud pixels, two clear
    pred = torch.tensor([[[[0.2, 0.2, 0.0, 0.0]]]])     # errs only under the cloud
    _, plain = pixel_cr_loss(pred, [], cloudy, clear)
    assert plain["l1"] == pytest.approx(0.1)
    _, weighted = pixel_cr_loss(pred, [], cloudy, clear, pixel_weight=thick_cloud_weight(cloudy, clear, 3.0))
    # (4 x 0.2 + 4 x 0.2 + 0 + 0) / (4 + 4 + 1 + 1)
    assert weighted["l1"] == pytest.approx(0.16)


def test_band_standardisation_is_inside_the_model(tmp_path):
    cfg = PixelCRConfig.tiny(2)
    cfg.band_mean, cfg.band_std = [0.1, 0.002], [0.05, 0.001]
    model = PixelCR(cfg).eval()
    x = torch.rand(1, 2, 16, 16) * 0.1
    # With the reconstruction zeroed, the global residual returns the input exactly.
    with torch.no_grad():
        model.recon[-1].weight.zero_()
        model.recon[-1].bias.zero_()
        out, _ = model(x)
    assert torch.allclose(out, x, atol=1e-6)
    # The statistics travel in the config, not the state dict, and survive a round trip.
    assert "band_mean" not in model.state_dict()
    again = PixelCR(PixelCRConfig.from_dict(cfg.to_dict()))
    assert torch.equal(again.band_std, model.band_std)


def test_a_few_training_steps_reduce_the_loss():
    model = PixelCR(PixelCRConfig.tiny(3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    clear = torch.rand(2, 3, 16, 16)
    cloudy = (clear * 0.4 + 0.6).clamp(0, 1)
    losses = []
    for _ in range(60):
        pred, maps = model.forward_all(cloudy)
        loss, _ = pixel_cr_loss(pred, maps, cloudy, clear)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.6 * losses[0], losses


def test_export_parity_and_contract(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from idfcr_train.export.pixel_cr import contract, export_onnx, measure_halo, parity

    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    halo = measure_halo(model)
    assert 0 < halo < 3 * model.cfg.window
    path = str(tmp_path / "m.onnx")
    export_onnx(model, path, contract(model, name="t", version="0", band_names=["r", "g", "b"], input_scale=1 / 255, halo_px=halo))
    assert parity(model, path) < 1e-4
    # Dynamic height and width: another size runs too.
    assert parity(model, path, h=16, w=40) < 1e-4
    meta = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["idfcr.bands"] == "3" and meta["idfcr.window_px"] == "8" and meta["idfcr.halo_px"] == str(halo)
    assert meta["idfcr.outputs"] == "clear,attention"


def test_synthetic_clouds():
    rng = np.random.default_rng(5)
    clear = np.random.default_rng(1).random((4, 64, 64), dtype=np.float32) * 0.3
    cloudy, alpha = add_clouds(clear, rng)
    assert cloudy.shape == clear.shape and alpha.shape == (64, 64)
    assert alpha.min() >= 0 and alpha.max() <= 1
    # Same seed, same clouds.
    again, _ = add_clouds(clear, np.random.default_rng(5))
    np.testing.assert_array_equal(cloudy, again)
    # Where the cloud is opaque, the pixel is bright whatever the ground was.
    opaque = alpha > 0.95
    if opaque.any():
        assert cloudy[:, opaque].mean() > 0.6
    f = fractal_noise(32, 48, 2.5, rng)
    assert f.shape == (32, 48) and f.min() == 0 and f.max() == pytest.approx(1)


def test_metrics_known_values():
    a = np.zeros((3, 20, 20))
    b = np.full((3, 20, 20), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert rmse(a, b) == pytest.approx(0.1)
    x = np.random.default_rng(0).random((2, 32, 32))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, np.random.default_rng(1).random((2, 32, 32))) < 0.2


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    x = rng.random((40, 50))
    y = np.clip(x + 0.1 * rng.standard_normal((40, 50)), 0, 1)
    want = metrics.structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(x, y) == pytest.approx(want, abs=1e-6)


def test_split_is_by_block_and_crops_are_paired():
    pairs = [Pair(str(i), str(i // 3), np.full((3, 32, 32), i, np.float32), np.full((3, 32, 32), -i, np.float32)) for i in range(9)]
    train, val = split_by_block(pairs, {"1"})
    assert {p.block for p in val} == {"1"} and all(p.block != "1" for p in train)
    a, b = random_crop_pair(pairs[4].cloudy, pairs[4].clear, 16, np.random.default_rng(0))
    assert a.shape == (3, 16, 16) and np.all(a == -b)


@pytest.mark.parametrize("held,blocks,data,refused", [
    ("3,9", "3,9", "../../shared/data/rice2_3s", False),
    ("3,9,4", "4", "../../shared/data/rice2_3s/", False),
    ("3,9", "3,9,4", "../../shared/data/rice2_3s", True),   # block 4 was training data
    ("3,9", "4", None, True),
    ("3,9", "4", "../../shared/data/rice1_xj", False),      # another dataset: its own split
    (None, "4", "../../shared/data/rice2_3s", False),       # no split stored: nothing to check
])
def test_scoring_refuses_blocks_the_checkpoint_trained_on(held, blocks, data, refused):
    state = {"meta": {"data": "rice2_3s", **({"val_blocks": held} if held else {})}}
    if refused:
        with pytest.raises(SystemExit, match="trained on block"):
            check_held_out(state, blocks, "ckpt.pt", data)
    else:
        check_held_out(state, blocks, "ckpt.pt", data)


@pytest.mark.parametrize("before,now,held", [
    ("3,9,4", "3,9,4", "3,9,4"),
    ("3,9,4", "3,9", "3,9"),      # block 4 moved into training: seen from now on
    ("3,9", "3,9,4", "3,9"),      # block 4 held out now, but it was trained on before
    ("3,9", "4", "none"),         # every block seen: nothing may be scored
    (None, "3,9", None),          # stored no split: what it saw is unknown, no claim made
])
def test_resumed_run_records_the_blocks_no_run_trained_on(before, now, held):
    assert still_held_out(before, now) == held
    if held is None:
        return
    state = {"meta": {"data": "rice2_3s", "val_blocks": held}}
    for block in ("3", "9", "4"):
        if block in held.split(","):
            check_held_out(state, block, "ckpt.pt", "rice2_3s")
        else:
            with pytest.raises(SystemExit, match="trained on block"):
                check_held_out(state, block, "ckpt.pt", "rice2_3s")


@pytest.mark.parametrize("state,now,held", [
    (None, "3,9", "3,9"),                                  # a fresh run: its own split
    ({}, "3,9", "3,9"),                                    # (train_ind's empty state)
    ({"meta": {"val_blocks": "3,9"}}, "3", "3"),          # block 9 moved into training
    ({"meta": {"val_blocks": "3"}}, "3,9", "3"),          # block 9 was trained on before
    ({"meta": {}}, "3,9", None),                           # stored no split: unknown
])
def test_every_trainer_keeps_the_held_out_record_on_resume(state, now, held):
    # train_detector, train_gate and train_ind store this (train_pixel_cr
    # the same through still_held_out).
    assert held_out_on_resume(state, now) == held


def test_shifted_windows_export_keeps_sizes_dynamic(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from idfcr_train.export.pixel_cr import contract, export_onnx, parity

    cfg = PixelCRConfig.tiny(3)
    cfg.shifted_windows = True
    model = PixelCR(cfg).eval()
    path = str(tmp_path / "s.onnx")
    export_onnx(model, path, contract(model, name="s", version="0", band_names=["r", "g", "b"], input_scale=1 / 255, halo_px=8))
    # The shift mask depends on H and W: other sizes than the export's must match too.
    for h, w in [(24, 40), (32, 16), (8, 8)]:
        assert parity(model, path, h=h, w=w) < 1e-4, (h, w)


def test_load_rice_layout_png_and_geotiff(tmp_path):
    from PIL import Image

    from idfcr_train.data.pairs import load_rice

    gdal = pytest.importorskip("osgeo.gdal")
    (tmp_path / "cloudy_image").mkdir()
    (tmp_path / "ground_truth").mkdir()
    rng = np.random.default_rng(0)
    rows = ["id,scene_block,cloudy,clear"]
    for i in range(2):
        a = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(tmp_path / "cloudy_image" / f"{i}.png")
        Image.fromarray(a // 2).save(tmp_path / "ground_truth" / f"{i}.png")
        rows.append(f"{i},{i},cloudy_image/{i}.png,ground_truth/{i}.png")
    for name, val in (("cloudy_image/2.tif", 5000), ("ground_truth/2.tif", 1000)):
        ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), 16, 16, 4, gdal.GDT_UInt16)
        for b in range(4):
            ds.GetRasterBand(b + 1).WriteArray(np.full((16, 16), val, np.uint16))
        ds = None
    rows.append("2,9,cloudy_image/2.tif,ground_truth/2.tif")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    pairs = load_rice(str(tmp_path))
    assert [p.block for p in pairs] == ["0", "1", "9"]
    assert pairs[0].cloudy_raw.dtype == np.uint8 and pairs[0].cloudy.max() <= 1.0
    assert pairs[2].cloudy.shape == (4, 16, 16)
    assert pairs[2].cloudy.max() == pytest.approx(0.5) and pairs[2].clear.max() == pytest.approx(0.1)


def test_a_context_branch_starts_as_the_network_it_is_added_to():
    cfg = PixelCRConfig.tiny(3)
    base = PixelCR(cfg).eval()
    wide = PixelCRConfig.from_dict({**cfg.to_dict(), "context_ch": 8, "context_dilations": [1, 2]})
    model = PixelCR(wide).eval()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("context.") for k in missing)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        (a, att_a), (b, att_b) = base(x), model(x)
        assert torch.equal(a, b) and torch.equal(att_a, att_b)
        # Once trained it changes the output, never the attention (the blend's p).
        torch.nn.init.normal_(model.context.out.weight, std=0.1)
        c, att_c = model(x)
    assert (c - a).abs().max() > 1e-3
    assert torch.equal(att_c, att_a)


def test_a_context_branch_reaches_farther_and_still_tiles():
    pytest.importorskip("onnx")
    from idfcr_train.export.pixel_cr import measure_halo
    from idfcr_train.models.context import reach_px

    cfg = PixelCRConfig.tiny(3)
    base = PixelCR(cfg).eval()
    model = PixelCR(PixelCRConfig.from_dict({**cfg.to_dict(), "context_ch": 8, "context_dilations": [1, 2]})).eval()
    model.load_state_dict(base.state_dict(), strict=False)
    torch.nn.init.normal_(model.context.out.weight, std=0.1)
    near, far = measure_halo(base), measure_halo(model)
    # A finite halo: crops agree with the whole image beyond it (no grid of
    # the branch's own), and it is the branch's reach more than the windows'.
    assert near < far <= near + reach_px(4, [1, 2]) + 4 * 2


def test_context_options_are_checked():
    from idfcr_train.training.train_pixel_cr import dilations, parse_args

    assert dilations("1,2,4,8") == (1, 2, 4, 8)
    for bad in ("1,x", "0,2", ""):
        with pytest.raises(Exception):
            dilations(bad)
    with pytest.raises(SystemExit):
        parse_args(["--data", "d", "--ckpt", "c", "--context", "-4"])
    # The pooling grid must divide the window (tiles start on the window grid).
    with pytest.raises(AssertionError):
        PixelCR(PixelCRConfig.from_dict({**PixelCRConfig.tiny(3).to_dict(), "window": 6, "context_ch": 4}))
