"""The RGB cloud detector and its place in the exported graph."""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.detector import CloudDetector  # noqa: E402
from idfcr_train.data.bright_ground import add_bright_fields  # noqa: E402
from idfcr_train.training.train_detector import colour_augment, real_target, target  # noqa: E402
from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig  # noqa: E402
from idfcr_train.models.probability import Calibration, WithProbability, feather_reach  # noqa: E402


def test_detector_is_a_per_pixel_probability_of_any_window_multiple_size():
    det = CloudDetector(3, 4).eval()
    for h, w in [(16, 16), (32, 48), (64, 40)]:
        with torch.no_grad():
            p = det(torch.rand(2, 3, h, w))
        assert p.shape == (2, 1, h, w) and torch.all((p >= 0) & (p <= 1))


def test_training_targets_and_augmentation():
    rng = np.random.default_rng(0)
    img = rng.random((3, 32, 32)).astype(np.float32)
    # The same image twice: no cloud; a uniform brightening of 0.2: full cloud.
    assert np.all(real_target(img, img) == 0)
    assert np.all(real_target(np.clip(img + 0.2, 0, None), img) == 1)
    aug = colour_augment(img, rng)
    assert aug.shape == img.shape and aug.dtype == np.float32 and aug.min() >= 0 and aug.max() <= 1


def test_presence_targets_saturate_at_the_scale():
    alpha = np.array([0.0, 0.02, 0.05, 0.1, 0.5, 1.0], np.float32)
    cases = [
        (1.0, [0.0, 0.02, 0.05, 0.1, 0.5, 1.0]),  # opacity, as it was
        (0.1, [0.0, 0.2, 0.5, 1.0, 1.0, 1.0]),  # presence: thin haze counts
    ]
    for scale, want in cases:
        np.testing.assert_allclose(target(alpha, scale), want, atol=1e-6)
    # Real pairs stay an opacity ramp from the noise floor 0.03 to 0.15.
    clear = np.full((3, 1, 4), 0.2, np.float32)
    cloudy = clear + np.array([0.0, 0.03, 0.06, 0.15], np.float32)
    np.testing.assert_allclose(real_target(cloudy, clear)[0], [0, 0, 0.25, 1.0], atol=1e-5)


def test_bright_fields_are_bright_sharp_patches_over_the_ground():
    rng = np.random.default_rng(0)
    ground = np.full((3, 96, 96), 0.1, np.float32)
    out = add_bright_fields(ground, rng, count=(3, 3))
    changed = np.abs(out - ground).max(axis=0) > 1e-6
    assert 0.0 < changed.mean() < 0.9
    assert out[:, changed].min(axis=0).mean() > 0.3  # bright in every band
    assert np.array_equal(out[:, ~changed], ground[:, ~changed])  # the rest untouched
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


def test_a_graph_with_the_detector_blends_by_its_output():
    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    det = CloudDetector(3, 4).eval()
    cal = Calibration(0.2, 0.5, 4, 4, shape="round", source="detector")
    wrapped = WithProbability(model, cal, det).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        clear, p = wrapped(x)
        want = torch.clamp((det(x) - 0.2) / 0.3, 0, 1)
    assert clear.shape == x.shape and p.shape == (1, 1, 32, 32)
    # Where the detector is below t0 everywhere within the feathering reach, p is exactly 0.
    r = feather_reach(cal)
    zero = torch.nn.functional.max_pool2d(want, 2 * r + 1, stride=1, padding=r) == 0
    assert torch.all(p[zero] == 0)
