"""Half-scale context (models/scales.py): which frequencies come from which
run, what stays the full-resolution run's, and that it exports with the
doubled window the runtime tiles by."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig  # noqa: E402
from idfcr_train.models.scales import HalfScale, gaussian_kernel, parse, window_of  # noqa: E402


class ScaleAware(torch.nn.Module):
    """Full-resolution input (width 32): output x + 1; half resolution
    (width 16): x + 3. Attention: the input's first band."""

    def __init__(self):
        super().__init__()
        self.cfg = PixelCRConfig.tiny(1)
        self.cfg.window = 8

    def forward(self, x):
        return x + (1.0 if x.shape[-1] == 32 else 3.0), x[:, :1]


@pytest.mark.parametrize("weight, want", [
    (1.0, 3.0),   # flat images are all low frequency: the half-scale run's level
    (0.5, 2.0),   # half way between the two runs
])
def test_low_frequencies_come_from_the_half_scale_run(weight, want):
    x = torch.zeros(1, 1, 32, 32)
    out, att = HalfScale(ScaleAware(), weight)(x)
    torch.testing.assert_close(out, torch.full_like(x, want))
    torch.testing.assert_close(att, x[:, :1])


def test_fine_detail_comes_from_the_full_resolution_run():
    # A one-pixel checkerboard is gone at half resolution (2 x 2 means are
    # flat) and blurred away by G: the output keeps the full run's checkerboard.
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    x = ((yy + xx) % 2).float()[None, None]
    out, _ = HalfScale(ScaleAware(), 1.0)(x)
    centre = out[0, 0, 8:24, 8:24]
    # Full run: x + 1 (checker 1..2, mean 1.5); half run: 0.5 + 3 (flat 3.5).
    assert float((centre.max() - centre.min())) == pytest.approx(1.0, abs=0.05)
    assert float(centre.mean()) == pytest.approx(3.5, abs=0.05)


def test_the_window_doubles_and_the_attention_is_the_full_runs():
    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    wrapped = HalfScale(model).eval()
    assert window_of(model) == model.cfg.window and window_of(wrapped) == 2 * model.cfg.window
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        clear, att = model(x)
        out, att2 = wrapped(x)
    torch.testing.assert_close(att2, att)
    assert out.shape == clear.shape and not torch.allclose(out, clear)


@pytest.mark.parametrize("text, want", [("1", (1.0, 2.0)), ("0.75,3", (0.75, 3.0)), (" 1 , 4 ", (1.0, 4.0))])
def test_parse(text, want):
    assert parse(text) == want


@pytest.mark.parametrize("text", ["", "a", "1,2,3", "1,x"])
def test_parse_refuses_what_is_not_weight_sigma(text):
    with pytest.raises(ValueError, match="WEIGHT"):
        parse(text)


@pytest.mark.parametrize("weight, sigma, match", [(0.0, 2.0, "weight"), (1.5, 2.0, "weight"), (1.0, 0.1, "sigma")])
def test_out_of_range_settings_are_refused(weight, sigma, match):
    with pytest.raises(ValueError, match=match):
        HalfScale(ScaleAware(), weight, sigma)


def test_the_kernel_sums_to_one_and_reaches_three_sigma():
    k = gaussian_kernel(2.0)
    assert k.numel() == 13 and float(k.sum()) == pytest.approx(1.0)


def test_a_half_scale_graph_exports_with_the_doubled_window(tmp_path, tiny_shifted_net):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from idfcr_train.export.pixel_cr import contract, export_onnx, measure_halo, parity

    single, cfg = tiny_shifted_net, tiny_shifted_net.cfg
    model = HalfScale(single).eval()
    halo = measure_halo(model)
    # The half-scale run reaches twice as far as the network, plus the blur.
    assert measure_halo(single) < halo <= 2 * measure_halo(single) + 2 * cfg.window + 7
    path = str(tmp_path / "h.onnx")
    meta = contract(model, name="h", version="0", band_names=["r", "g", "b"], input_scale=1 / 255, halo_px=halo,
                    extra={"idfcr.half_scale": "1.0,2.0"})
    assert meta["idfcr.window_px"] == str(2 * cfg.window)
    export_onnx(model, path, meta)
    for h, w in [(32, 48), (16, 16), (48, 32)]:
        assert parity(model, path, h=h, w=w) < 1e-4, (h, w)


@pytest.mark.parametrize("half_scale, stated", [("0.5,2.0", True), (None, False)])
def test_the_card_states_a_graphs_half_scale_context(half_scale, stated):
    from idfcr_train.reports.card import intro_section

    text = "\n".join(intro_section("m.onnx", "abc", "0,0;8,8", half_scale, 32 if half_scale else 16))
    assert ("Half-scale context" in text) == stated
    assert "Shift ensemble" in text
    if stated:
        assert "takes 0.5 of the clear output's low frequencies" in text and "sigma 2.0 px" in text
    assert f"H and W multiples of {32 if stated else 16}" in text


def test_the_screen_mixes_as_the_exported_wrapper_does():
    # reports/half_scale.py screens weights on a graph from outside; what it
    # chooses must be what HalfScale then exports.
    import numpy as np

    from idfcr_train.reports.half_scale import arms

    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    x = torch.rand(1, 3, 32, 48)

    def run(a):
        with torch.no_grad():
            clear, att = model(torch.from_numpy(a)[None])
        return clear[0].numpy(), att[0].numpy()

    p, outs = arms(run, x[0].numpy(), [0.5, 1.0], 2.0)
    with torch.no_grad():
        for w in (0.5, 1.0):
            want, att = HalfScale(model, w, 2.0)(x)
            np.testing.assert_allclose(outs[f"w{w:g}"], want[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(p, att[0].numpy())
