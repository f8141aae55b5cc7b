"""The RGB cloud detector and its place in the exported graph."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.detector import CloudDetector  # noqa: E402
from idfcr_train.data.bright_ground import add_bright_fields  # noqa: E402
from idfcr_train.training.train_detector import colour_augment, real_target, target  # noqa: E402
from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig  # noqa: E402
from idfcr_train.models.probability import Calibration, WithProbability, detection, feather_reach  # noqa: E402


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


def test_the_attention_cue_joins_the_detector_by_max():
    det = torch.tensor([0.0, 0.25, 0.5, 0.0, 0.5]).view(1, 1, 1, 5)
    att = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.7]).view(1, 1, 1, 5)
    cases = [  # (attention thresholds, ramped map): detector ramp 0.2..0.4
        ((None, None), [0.0, 0.25, 1.0, 0.0, 1.0]),  # detector alone; the attention unread
        ((0.4, 0.6), [0.0, 0.25, 1.0, 0.5, 1.0]),  # the attention adds pixel 3
        ((0.8, 0.9), [0.0, 0.25, 1.0, 0.0, 1.0]),  # too strict to add anything
    ]
    for (a0, a1), want in cases:
        cal = Calibration(0.2, 0.4, 0, 0, shape="round", source="detector", att_t0=a0, att_t1=a1)
        np.testing.assert_allclose(detection(det, cal, att).view(-1).numpy(), want, atol=1e-6)
    # Older calibrations round-trip without the new keys.
    plain = Calibration(0.2, 0.4, 0, 0, shape="round", source="detector")
    assert "att_t0" not in plain.to_dict() and Calibration.from_dict(plain.to_dict()) == plain


def test_a_graph_with_both_cues_fires_where_only_the_attention_sees_cloud():
    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    det = CloudDetector(3, 4).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        _, att = model(x)
        d = det(x)
        # Thresholds that the detector never reaches and the attention does somewhere.
        t_det = float(d.max()) + 0.01
        a0 = float(att.median())
        cal = Calibration(min(t_det, 0.98), min(t_det, 0.98) + 0.01, 0, 0, shape="round", source="detector",
                          att_t0=a0, att_t1=a0 + 1e-3)
        _, p = WithProbability(model, cal, det).eval()(x)
    assert float(p.max()) == 1.0 and float(p.min()) == 0.0
    assert torch.equal(p > 0, att > a0)


def test_teacher_targets_ramp_around_s2cloudless_threshold():
    from idfcr_train.data.s2_teacher import teacher_target

    cases = [  # s2cloudless probability -> target
        (0.0, 0.0), (0.2, 0.0), (0.3, 0.25), (0.4, 0.5), (0.6, 1.0), (0.95, 1.0),
    ]
    probs, want = zip(*cases)
    np.testing.assert_allclose(teacher_target(np.array(probs, np.float32)), want, atol=1e-6)


def test_teacher_quicklook_is_the_rgb_models_quicklook():
    from idfcr_train.data.s2 import SEN12MS_BANDS, quicklook
    from idfcr_train.data.s2_teacher import quicklook_l1c

    rng = np.random.default_rng(0)
    l1c = rng.uniform(0, 0.4, (13, 8, 8)).astype(np.float32)
    ten_m = l1c[[SEN12MS_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]]
    np.testing.assert_array_equal(quicklook_l1c(l1c), quicklook(ten_m).astype(np.float32) / 255.0)
    # Red first: B4 is band 0 of the picture.
    assert np.allclose(quicklook_l1c(l1c)[0], np.clip(np.round(l1c[3] * 3.5 * 255), 0, 255) / 255.0)


def test_teacher_samples_join_the_batch_and_keep_old_streams():
    from idfcr_train.data.pairs import Pair
    from idfcr_train.data.s2_teacher import TeacherImage
    from idfcr_train.training.train_detector import make_batch, percentile_stretch

    rng = np.random.default_rng(0)
    rice = [Pair("0", "0", (rng.random((3, 40, 40)) * 255).astype(np.uint8),
                 (rng.random((3, 40, 40)) * 255).astype(np.uint8), 1 / 255)]
    aligned = [rice[0].clear]
    # A small teacher image is padded up to the crop, its target with it.
    small = TeacherImage("t", "s", np.full((3, 20, 20), 0.5, np.float32), np.ones((20, 20), np.float32))
    x, t = make_batch(rice, aligned, [], 4, 32, np.random.default_rng(1), teacher=[small], teacher_share=1.0)
    assert x.shape == (4, 3, 32, 32) and t.shape == (4, 1, 32, 32) and torch.all(t == 1)
    # Share 0 and stretch 0 draw nothing: the batch is the one older recipes made.
    a = make_batch(rice, aligned, [], 3, 32, np.random.default_rng(5))
    b = make_batch(rice, aligned, [], 3, 32, np.random.default_rng(5), teacher=[small], teacher_share=0.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    # A full stretch keeps values in 0..1 and spreads each sample to it.
    xs, _ = make_batch(rice, aligned, [], 3, 32, np.random.default_rng(5), stretch=1.0)
    assert xs.min() >= 0 and xs.max() <= 1 and float(xs.amax(dim=(2, 3)).min()) > 0.9
    # The report's stretch: each band's 1st/99th percentiles onto 0 and 1.
    img = np.stack([np.linspace(0.2, 0.4, 100).reshape(10, 10)] * 3).astype(np.float32)
    s = percentile_stretch(img)
    assert s.min() == 0.0 and s.max() == 1.0


def test_the_calibration_scorer_matches_blending_and_psnr():
    """The grid's PSNR from per-image sums equals blending and scoring."""
    from idfcr_train.models.probability import blend, cloud_probability
    from idfcr_train.reports.metrics import psnr
    from idfcr_train.training.calibrate import Scorer

    rng = np.random.default_rng(0)
    clear = rng.random((3, 32, 32)).astype(np.float32)
    cloudy = np.clip(clear + 0.3 * (rng.random((1, 32, 32)) > 0.6), 0, 1).astype(np.float32)
    pred = torch.from_numpy(np.clip(clear + 0.02 * rng.standard_normal(clear.shape), 0, 1).astype(np.float32))[None]
    det = torch.from_numpy(rng.random((1, 1, 32, 32)).astype(np.float32))
    att = torch.from_numpy(rng.random((1, 1, 32, 32)).astype(np.float32))
    case = {"id": "1", "block": "9", "cloudy": cloudy, "clear": clear, "out": (pred, det, att),
            "ident": (pred, det, att)}
    score = Scorer([case], None, False)
    for cal in [Calibration(0.3, 0.4, 4, 4, shape="round", source="detector"),
                Calibration(0.9, 0.95, 0, 2, shape="round", source="detector", att_t0=0.5, att_t1=0.6),
                Calibration(0.99, 1.0, 0, 0, shape="round", source="detector")]:
        p = cloud_probability(det, cal, attention=att)
        want = psnr(blend(torch.from_numpy(cloudy)[None], pred, p)[0].numpy(), clear)
        assert abs(score(cal)["val_psnr"] - want) < 1e-6
    assert abs(score(None)["val_psnr"] - psnr(pred[0].numpy(), clear)) < 1e-6


@pytest.mark.parametrize("items, want", [
    ([], None),
    (["t0=0.2,0.3", "dilate_px=8"], {"t0": [0.2, 0.3], "dilate_px": [8]}),
    (["att_t0=0.5"], {"att_t0": [0.5]}),
])
def test_the_calibration_grid_narrows_by_key(items, want):
    from idfcr_train.training.calibrate import ATT_GRID, GRID, narrowed_grid

    got = narrowed_grid(items)
    expect = {**GRID, **ATT_GRID, **(want or {})}
    assert got == expect
    with pytest.raises(SystemExit):
        narrowed_grid(["nonsense=1"])
    with pytest.raises(SystemExit):
        narrowed_grid(["dilate_px=0.5"])


def test_calibration_outputs_are_cached_by_weights_and_images(tmp_path):
    import argparse

    from idfcr_train.training.calibrate import cached

    args = argparse.Namespace(cache=str(tmp_path), data="d", s2_group=None)
    calls = []

    def compute():
        calls.append(1)
        return [{"id": "1", "x": np.ones(3)}], None

    det = CloudDetector(3, 4)
    first = cached(args, [det, None], ["1"], compute)
    again = cached(args, [det, None], ["1"], compute)
    assert len(calls) == 1 and np.array_equal(first[0][0]["x"], again[0][0]["x"])
    cached(args, [det, None], ["1", "2"], compute)  # other images: computed
    with torch.no_grad():
        det.head.bias += 1.0
    cached(args, [det, None], ["1"], compute)  # other weights: computed
    assert len(calls) == 3
    args.cache = None
    cached(args, [det, None], ["1"], compute)  # no cache: always computed
    assert len(calls) == 4
