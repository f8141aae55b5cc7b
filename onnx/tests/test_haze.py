"""The dark-channel haze cue (models/haze.py) as the map of a calibrated p."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.detector import load_detector  # noqa: E402
from idfcr_train.models.haze import DarkChannel  # noqa: E402
from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig  # noqa: E402
from idfcr_train.models.probability import Calibration, WithProbability  # noqa: E402
from idfcr_train.training.calibrate import dark_channel_state  # noqa: E402


def brute_force(x: np.ndarray, k: int, r: int) -> np.ndarray:
    """The definition, pixel by pixel: the band minimum, its minimum over a
    (2k+1)^2 window and the mean of that over a (2r+1)^2 window, both over
    the pixels inside the image."""
    m = x.min(0)
    h, w = m.shape
    lo = np.array([[m[max(0, i - k): i + k + 1, max(0, j - k): j + k + 1].min() for j in range(w)] for i in range(h)])
    return np.array([[lo[max(0, i - r): i + r + 1, max(0, j - r): j + r + 1].mean() for j in range(w)]
                     for i in range(h)])


@pytest.mark.parametrize("k,r", [(0, 0), (1, 0), (0, 2), (1, 2), (3, 5)])
def test_the_dark_channel_is_the_mean_of_the_local_minimum(k, r):
    x = np.random.default_rng(k * 10 + r).random((3, 12, 10)).astype(np.float32)
    with torch.no_grad():
        got = DarkChannel(3, k, r)(torch.from_numpy(x)[None])[0, 0].numpy()
    np.testing.assert_allclose(got, brute_force(x, k, r), atol=1e-6)


def test_haze_lifts_the_dark_channel_and_clear_ground_keeps_it_low():
    rng = np.random.default_rng(0)
    ground = rng.random((3, 64, 64)).astype(np.float32) * 0.6  # dark pixels everywhere
    hazy = 0.6 * ground + 0.4 * 0.9  # a veil of bright airlight
    det = DarkChannel(3, 3, 8)
    with torch.no_grad():
        clear_d, hazy_d = (float(det(torch.from_numpy(a)[None]).mean()) for a in (ground, hazy))
    assert clear_d < 0.05 and hazy_d > 0.35


def test_the_cue_goes_through_the_checkpoint_and_the_exported_graph(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from idfcr_train.export.pixel_cr import contract, export_onnx, measure_halo, parity

    state = dark_channel_state("2,5", {"config": {"in_bands": 3}})
    det = load_detector(state)
    assert isinstance(det, DarkChannel) and det.config() == state["config"]
    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    cal = Calibration(0.2, 0.4, 0, 2, shape="round", source="detector")
    wrapped = WithProbability(model, cal, det).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        _, p = wrapped(x)
        # Dark everywhere: p exactly 0; a bright veil: p 1.
        _, p_dark = wrapped(x * 0.1)
        _, p_veil = wrapped(0.5 + 0.5 * x)
    assert p.shape == (1, 1, 32, 32)
    assert float(p_dark.max()) == 0.0 and float(p_veil.min()) == 1.0
    # The reach: its own filters' at least (2 + 5 px), and the export's parity.
    reach = measure_halo(lambda t: det.logits(t), bands=3, window=model.cfg.window)
    assert reach >= 7
    path = str(tmp_path / "m.onnx")
    halo = max(measure_halo(wrapped), reach)
    export_onnx(wrapped, path, contract(wrapped, name="t", version="0", band_names=["r", "g", "b"],
                                        input_scale=1 / 255, halo_px=halo))
    assert parity(wrapped, path) < 1e-4


@pytest.mark.parametrize("text", ["7", "a,b", "7,64,1", "-1,4", "7,500"])
def test_a_bad_dark_channel_option_is_refused(text):
    with pytest.raises(SystemExit):
        dark_channel_state(text, {"config": {"in_bands": 3}})
