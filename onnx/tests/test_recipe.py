"""The training recipe's pieces: label colour alignment, identity and
synthetic samples with their attention targets, the cloud probability and
the blockiness metric."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from idfcr_train.data.pairs import Pair, align_label, in_id_range, random_lift, random_stretch  # noqa: E402
from idfcr_train.reports.metrics import blockiness  # noqa: E402
from idfcr_train.models.probability import Calibration, blend, cloud_probability  # noqa: E402
from idfcr_train.reports.ablation import paired, verdict as ablation_verdict  # noqa: E402
from idfcr_train.training.train_pixel_cr import (  # noqa: E402
    aligned_labels, cloud_shares, cloud_weighted, half_resolution, make_batch, parse_args, sampling_weights)


def ground(seed=0, h=64, w=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([0.3 + 0.2 * np.sin(xx / (4 + b)) * np.cos(yy / 5) + 0.05 * rng.random((h, w))
                     for b in range(3)]).astype(np.float32)


@pytest.mark.parametrize("gain,off,cloud,haze,aligned", [
    (0.9, -0.03, False, False, True),    # a date change: fitted
    (1.1, 0.02, True, False, True),      # the same with a cloud over a third
    (1.0, 0.0, False, False, True),      # nothing to fit: unchanged
    (0.85, 0.12, False, True, False),    # uniform haze (brightens, flattens): refused
])
def test_align_label(gain, off, cloud, haze, aligned):
    clear = ground()
    cloudy = gain * clear + off
    if cloud:
        cloudy[:, :, :22] = 0.95
    out = align_label(cloudy, clear)
    if aligned:
        free = np.s_[:, :, 22:] if cloud else np.s_[:]
        assert np.abs(out[free] - cloudy[free]).max() < 0.01
    else:
        np.testing.assert_array_equal(out, clear)


def test_mostly_cloudy_pairs_keep_their_label():
    clear = ground(1)
    cloudy = clear.copy()
    cloudy[:, :, :60] = 0.9
    np.testing.assert_array_equal(align_label(cloudy, clear), clear)


def test_identity_and_synthetic_samples_and_their_targets():
    clear = (ground(2) * 255).astype(np.uint8)
    cloudy = np.full_like(clear, 250)
    pairs = [Pair("a", "0", cloudy, clear, 1 / 255)]
    rng = np.random.default_rng(0)
    # (synthetic, identity): identity samples give input == label and target 0.
    x, y, _, m = make_batch(pairs, 6, 32, 0.0, rng, identity=1.0, opacity_target=4.0)
    assert torch.equal(x, y) and torch.all(m == 0)
    x, y, _, m = make_batch(pairs, 6, 32, 1.0, rng, opacity_target=4.0)
    assert torch.all((m >= 0) & (m <= 1)) and not torch.isnan(m).any()
    x, y, _, m = make_batch(pairs, 6, 32, 0.0, rng, opacity_target=4.0)
    assert torch.isnan(m).all()  # real pairs: M from the loss
    assert torch.allclose(x, torch.full_like(x, 250 / 255))
    *_, m = make_batch(pairs, 2, 32, 0.5, rng)
    assert m is None


@pytest.mark.parametrize("synthetic,identity", [(0.25, 0.1), (0.0, 0.3), (0.5, 0.0)])
def test_clear_only_pairs_never_give_a_real_pair(synthetic, identity):
    # A clear-only pair's "cloudy" image is its clear one: a real-pair draw
    # would be an identity sample with the paper's M target (NaN). Every
    # draw must be synthetic (target = opacity) or identity (input = label).
    clear = (ground(5) * 255).astype(np.uint8)
    pairs = [Pair("c", "0", clear, clear, 1 / 255, clear_only=True)]
    x, y, _, m = make_batch(pairs, 16, 32, synthetic, np.random.default_rng(2), identity=identity,
                            opacity_target=4.0)
    assert not torch.isnan(m).any()
    same = [bool(torch.equal(x[i], y[i])) for i in range(16)]
    if identity == 0.0:
        assert not any(same)  # all synthetic
    elif synthetic == 0.0:
        assert all(same) and torch.all(m == 0)  # all identity
    else:
        assert any(same) and not all(same)


def test_s2_rgb_clear_needs_its_source():
    with pytest.raises(SystemExit):
        parse_args(["--data", "d", "--ckpt", "c", "--s2-rgb-clear"])
    assert parse_args(["--data", "d", "--ckpt", "c", "--s2-rgb", "s", "--s2-rgb-clear"]).s2_rgb_clear


def test_clear_only_takes_no_extra_random_draw():
    # With synthetic + identity = 1 an ordinary pair is never drawn as a real
    # pair either, so a clear-only pair must give the very same batch and
    # leave the random stream where the ordinary pair leaves it (recipes
    # mixing clear-only pairs in keep the other samples' draws).
    clear = (ground(6) * 255).astype(np.uint8)
    plain = [Pair("r", "0", clear, clear, 1 / 255)]
    only = [Pair("r", "0", clear, clear, 1 / 255, clear_only=True)]
    assert aligned_labels(plain) and not aligned_labels(only)  # never a real pair: no label fitted
    ra, rb = np.random.default_rng(3), np.random.default_rng(3)
    a = make_batch(plain, 8, 32, 0.7, ra, identity=0.3, opacity_target=4.0)
    b = make_batch(only, 8, 32, 0.7, rb, identity=0.3, opacity_target=4.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert ra.uniform() == rb.uniform()


@pytest.mark.parametrize("seed", range(6))
def test_stretch_spans_the_range_keeps_order_and_caps_the_gain(seed):
    rng = np.random.default_rng(seed)
    dim = 0.1 + 0.4 * ground(seed)  # a RICE2-like dim tile (span about 0.2)
    f = random_stretch(dim, rng)
    out = f(dim)
    assert out.min() == 0.0 and out.max() == 1.0  # percentiles went to 0 and 1
    # Monotone per band: one linear map, the same for any image it is given.
    order = np.argsort(dim[0].ravel())
    assert np.all(np.diff(out[0].ravel()[order]) >= 0)
    np.testing.assert_array_equal(f(dim.copy()), out)
    flat = np.full((3, 16, 16), 0.4, np.float32)
    flat[:, 0, 0] = 0.41
    g = random_stretch(flat, np.random.default_rng(seed))(flat)
    assert np.abs(g - g.mean()).max() <= 0.1 + 1e-6  # gain capped at 10


def test_stretched_samples_share_one_map_on_both_sides():
    clear = (ground(4) * 100 + 40).astype(np.uint8)  # dim
    cloudy = clear.copy()
    pairs = [Pair("a", "0", cloudy, clear, 1 / 255)]
    x, y, *_ = make_batch(pairs, 4, 32, 0.0, np.random.default_rng(1), stretch=1.0)
    assert torch.equal(x, y)  # same image both sides: same map
    assert float(y.amax()) == 1.0 and float(y.amin()) == 0.0
    x0, *_ = make_batch(pairs, 4, 32, 0.0, np.random.default_rng(1))
    assert float(x0.amax()) < 0.8  # without it the tile stays dim


@pytest.mark.parametrize("seed", range(6))
def test_lift_squeezes_each_band_monotonically_within_range(seed):
    img = ground(seed)  # 0..1
    f = random_lift(3, np.random.default_rng(seed))
    out = f(img)
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(f(img.copy()), out)  # one map for input and label
    for b in range(3):
        lo, hi = out[b].min(), out[b].max()
        assert hi - lo >= 0.4 * (img[b].max() - img[b].min()) - 1e-6  # gain >= 0.4
        order = np.argsort(img[b].ravel())
        assert np.all(np.diff(out[b].ravel()[order]) >= -1e-7)  # monotone


def test_lift_draws_no_randomness_when_off():
    clear = (ground(2) * 100 + 40).astype(np.uint8)
    pairs = [Pair("a", "0", clear.copy(), clear, 1 / 255)]
    a = make_batch(pairs, 3, 32, 0.5, np.random.default_rng(5))
    b = make_batch(pairs, 3, 32, 0.5, np.random.default_rng(5), lift=0.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    x, y, *_ = make_batch(pairs, 4, 32, 0.0, np.random.default_rng(1), lift=1.0)
    assert torch.equal(x, y)  # same image both sides: same squeeze


def test_coarse_samples_are_the_ground_averaged_down_two_by_two():
    clear = (ground(3) * 255).astype(np.uint8)
    pairs = [Pair("a", "0", clear.copy(), clear, 1 / 255)]
    # No draw when off: older recipes keep their random stream.
    a = make_batch(pairs, 3, 16, 0.5, np.random.default_rng(5))
    b = make_batch(pairs, 3, 16, 0.5, np.random.default_rng(5), coarse=0.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # Identity samples cut at 32 px and averaged down: crop-sized, both
    # sides alike, an identity target.
    x, y, _, m = make_batch(pairs, 4, 16, 0.0, np.random.default_rng(1), identity=1.0,
                            opacity_target=4.0, coarse=1.0)
    assert x.shape == (4, 3, 16, 16) and torch.equal(x, y) and float(m.abs().max()) == 0.0
    # The averaging itself: 2 x 2 means, and a real pair's unknown target
    # (NaN) stays unknown.
    a = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert np.array_equal(half_resolution(a), [[[2.5, 4.5], [10.5, 12.5]]])
    assert np.isnan(half_resolution(np.full((1, 2, 2), np.nan, np.float32))).all()
    # A pair smaller than twice the crop stays at full resolution.
    small = [Pair("s", "0", clear[:, :24, :24].copy(), clear[:, :24, :24], 1 / 255)]
    x, *_ = make_batch(small, 2, 16, 0.0, np.random.default_rng(1), identity=1.0, coarse=1.0)
    assert x.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("pair_id,span,held_out", [
    ("300", "300-399", True), ("399", "300-399", True), ("400", "300-399", False),
    ("42", None, False), ("extra:300", "300-399", False), ("7", "0-9", True),
])
def test_held_out_id_runs(pair_id, span, held_out):
    assert in_id_range(pair_id, span) is held_out


def test_weights_decide_which_pairs_are_drawn():
    clear = (ground(3) * 255).astype(np.uint8)
    pairs = [Pair("a", "0", np.full_like(clear, 10), clear, 1 / 255),
             Pair("b", "1", np.full_like(clear, 200), clear, 1 / 255)]
    x, *_ = make_batch(pairs, 8, 32, 0.0, np.random.default_rng(0), weights=np.array([0.0, 1.0]))
    assert torch.allclose(x, torch.full_like(x, 200 / 255))


@pytest.mark.parametrize("n_main,mixed,want", [
    # (main pairs, [(source size, share or None)]) -> per-pair draw probabilities
    (2, [], None),
    (2, [(3, None)], None),  # no share anywhere: uniform draws (older recipes' random stream)
    (2, [(4, 0.5)], [0.25] * 2 + [0.125] * 4),
    (3, [(1, 0.25), (2, None)], [0.15] * 3 + [0.25] + [0.15] * 2),
    (1, [(2, 0.2), (2, 0.2)], [0.6, 0.1, 0.1, 0.1, 0.1]),
])
def test_mixed_sources_get_their_share(n_main, mixed, want):
    w = sampling_weights(n_main, [([None] * n, share) for n, share in mixed])
    if want is None:
        assert w is None
    else:
        np.testing.assert_allclose(w, want)
        assert w.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("weights,shares,cloud_weight,want", [
    (None, [0.0, 1.0], 0.0, None),                         # off: unchanged
    (None, [0.0, 1.0], 3.0, [0.2, 0.8]),                   # 1 : 4
    (None, [0.5, 0.5], 3.0, [0.5, 0.5]),                   # equal shares: uniform
    ([0.3, 0.3, 0.4], [0.0, 1.0], 1.0, [0.2, 0.4, 0.4]),   # a mixed source keeps its 0.4
])
def test_thick_cloud_pairs_are_drawn_more(weights, shares, cloud_weight, want):
    w = cloud_weighted(None if weights is None else np.array(weights), np.array(shares), cloud_weight)
    if want is None:
        assert w is None
    else:
        np.testing.assert_allclose(w, want)


def test_cloud_share_counts_thick_cloud_not_date_changes():
    clear = ground()
    cloudy = clear * 0.9 + 0.02                            # a date change: no thick cloud
    thick = clear.copy()
    thick[:, :16] = 0.95                                   # a quarter under cloud
    pairs = [Pair("a", "1", cloudy, clear), Pair("b", "1", thick, clear)]
    np.testing.assert_allclose(cloud_shares(pairs), [0.0, 0.25])


def test_mixed_shares_must_leave_room_for_the_main_data():
    with pytest.raises(ValueError, match="add up to 1.0"):
        sampling_weights(2, [([None], 0.6), ([None], 0.4)])


@pytest.mark.parametrize("a,b,mean,wins,verdict", [
    ([30, 31, 32, 33], [29, 30, 31, 32], 1.0, 4, "helps"),
    ([29, 30, 31, 32], [30, 31, 32, 33], -1.0, 0, "hurts"),
    ([30, 28, 31, 29], [29, 29, 30, 30], 0.0, 2, "undecided"),
])
def test_ablation_pairs_images_and_decides_only_outside_noise(a, b, mean, wins, verdict):
    d = paired(a, b)
    assert d["mean_db"] == pytest.approx(mean) and d["a_wins"] == wins and d["images"] == 4
    assert d["ci95_db"][0] <= mean <= d["ci95_db"][1]
    assert verdict in ablation_verdict(d)


@pytest.mark.parametrize("t0,t1,d,s", [(0.3, 0.6, 0, 0), (0.3, 0.6, 4, 8), (0.1, 0.2, 8, 4)])
def test_probability_is_exactly_zero_away_from_detections(t0, t1, d, s):
    att = torch.zeros(1, 1, 80, 80)
    att[0, 0, 10:14, 10:14] = 0.9
    p = cloud_probability(att, Calibration(t0, t1, d, s))
    reach = d + s
    assert torch.all(p[0, 0, 14 + reach:, :] == 0) and torch.all(p[0, 0, :, 14 + reach:] == 0)
    assert p[0, 0, 11, 11] > 0.4
    x = torch.rand(1, 3, 80, 80)
    out = blend(x, torch.zeros_like(x), p)
    assert torch.equal(out[..., 40:, 40:], x[..., 40:, 40:])


@pytest.mark.parametrize("d,s", [(0, 4), (4, 8), (8, 16), (16, 16)])
def test_round_feathering_reaches_one_at_the_dilation_zero_beyond_and_is_round(d, s):
    from idfcr_train.models.probability import feather_reach

    cal = Calibration(0.5, 0.6, d, s, shape="round", source="detector")
    # A half-plane of cloud: p = 1 up to `d` px outside its edge.
    att = torch.zeros(1, 1, 96, 96)
    att[..., :, :48] = 1.0
    p = cloud_probability(att, cal)[0, 0, 48]
    assert torch.all(p[: 48 + d] > 0.999), p[40:60]
    reach = feather_reach(cal)
    assert reach >= d + s and torch.all(p[48 + reach:] == 0)
    # One detected pixel: p along the diagonal falls like along the axis
    # (a square filter would keep the corners at the axis value).
    att = torch.zeros(1, 1, 97, 97)
    att[..., 48, 48] = 1.0
    q = cloud_probability(att, cal)[0, 0]
    k = reach // 2
    assert q[48 + k, 48 + k] < q[48, 48 + k]


@pytest.mark.parametrize("blocky,lo,hi", [(False, 0.9, 1.1), (True, 2.0, 1e9)])
def test_blockiness(blocky, lo, hi):
    rng = np.random.default_rng(3)
    img = rng.random((3, 64, 64))
    if blocky:
        img = np.kron(rng.random((3, 4, 4)), np.ones((1, 16, 16))) + 0.01 * rng.random((3, 64, 64))
    assert lo <= blockiness(img) <= hi


def test_stretched_validation_scores_an_identity_model_as_doing_nothing():
    from idfcr_train.reports.compare import stretch_scores

    def identity(x):
        return x, torch.zeros_like(x[:, :1])

    val = []
    for i in range(4):
        clear = (ground(10 + i, 32, 32) * 200).astype(np.uint8)
        cloudy = np.clip(clear.astype(int) + 40, 0, 255).astype(np.uint8)
        val.append(Pair(str(i), "3", cloudy, clear, 1 / 255))
    res, row = stretch_scores(identity, val)
    assert res["stretch_images"] == 2
    assert res["stretch_psnr"] == pytest.approx(res["stretch_base_psnr"])
    assert res["stretch_worst_vs_base"] == pytest.approx(0.0)
    assert len(row) == 4 and row[2].max() == 1.0  # the stretched reference spans 0..1


@pytest.mark.parametrize("psnr, ssim, first, follow", [
    (31.69, 0.9113, "+0.79 dB PSNR and +0.0068 SSIM", "Not the same test"),
    (30.62, 0.9096, "-0.28 dB PSNR and +0.0051 SSIM", "The gap is partly"),
    (29.61, 0.9022, "-1.29 dB PSNR and -0.0023 SSIM", "The gap is partly"),
])
def test_card_states_the_paper_comparison_with_its_sign(psnr, ssim, first, follow):
    from idfcr_train.reports.card import paper_comparison

    lines = paper_comparison({"psnr": psnr, "ssim": ssim})
    assert first in lines[0] and lines[1].startswith(follow)


@pytest.mark.parametrize("ema, says_ema", [(0.998, True), (0.0, False), (None, False)])
def test_s2_card_says_when_the_ema_ships(tmp_path, ema, says_ema):
    from idfcr_train.reports.s2_report import model_section

    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"graph")
    meta = {"crop": 64, "batch": 8, "synthetic": 0.25, **({} if ema is None else {"ema": ema})}
    text = "\n".join(model_section({"meta": meta, "config": {}, "step": 10, "wall_s": 36.0}, str(graph), "cmd"))
    assert ("moving average" in text) == says_ema
    assert ("decay 0.998" in text) == says_ema


def test_card_ablation_section_states_both_arms_and_the_paired_verdict(tmp_path):
    from idfcr_train.reports.card import ablation_section

    arm = {"val_images": 23, "val_psnr": 30.0, "val_ssim": 0.9, "val_base_psnr": 24.0, "val_worst_vs_base": -1.0,
           "val_blockiness": 1.01, "block3_psnr": 27.0, "block9_psnr": 34.0, "demo_psnr": 10.0,
           "demo_base_psnr": 15.1, "clear_in_psnr": 12.0, "stretch_psnr": 13.0, "hours": 1.5}
    diff = paired([30.5, 31, 29], [30, 30, 29.5])
    report = {"steps": 1400, "crop": 64, "batch": 8, "lr": [4e-4, 4e-5], "recipe": "--config cpu", "stride": 6,
              "seed": 7, "results": {"with cloudy attention": {**arm, "val_psnr": 30.5},
                                     "without cloudy attention": arm},
              "with_minus_without": diff, "verdict": ablation_verdict(diff), "command": "python -m x"}
    path = tmp_path / "ab.json"
    path.write_text(__import__("json").dumps(report))
    text = "\n".join(ablation_section(str(path)))
    assert "| with cloudy attention | 30.50 / 0.9000 |" in text
    assert "| without cloudy attention | 30.00 / 0.9000 |" in text
    assert f"wins 2 of 3 images. Verdict: {ablation_verdict(diff)}." in text
    assert ablation_section(str(tmp_path / "missing.json")) == []


def test_anchor_pulls_towards_the_first_legs_start_and_survives_a_resume(tmp_path):
    """--anchor (L2-SP): the penalty is 0 where the fine-tuning started, grows
    as the weights move, and a resumed leg keeps the first leg's anchor,
    not the weights it resumes from."""
    from idfcr_train.models.pixel_cr import PixelCRConfig
    from idfcr_train.training.train_pixel_cr import anchor_penalty, save_checkpoint, start_run

    ckpt = str(tmp_path / "a.pt")
    args = parse_args(["--data", "x", "--ckpt", ckpt, "--config", "tiny", "--anchor", "1"])
    cfg = PixelCRConfig.tiny()
    run = start_run(args, cfg, None, "cpu")
    assert float(anchor_penalty(run.model, run.anchor)) == 0.0
    start = {k: v.clone() for k, v in run.model.state_dict().items()}
    with torch.no_grad():
        for q in run.model.parameters():
            q.add_(0.01)
    moved = float(anchor_penalty(run.model, run.anchor))
    n = sum(q.numel() for q in run.model.parameters())
    assert moved == pytest.approx(n * 1e-4, rel=1e-3)
    save_checkpoint(run, ckpt)

    resumed = start_run(args, cfg, torch.load(ckpt, map_location="cpu"), "cpu")
    for k, v in start.items():
        assert torch.equal(resumed.anchor[k], v), k
    assert float(anchor_penalty(resumed.model, resumed.anchor)) == pytest.approx(moved, rel=1e-6)
    # Off: no anchor is kept or saved.
    off = start_run(parse_args(["--data", "x", "--ckpt", ckpt, "--config", "tiny"]), cfg, None, "cpu")
    assert off.anchor is None


def test_init_starts_a_new_run_from_another_checkpoints_shipped_weights(tmp_path):
    """--init: step 0 and a fresh optimiser, the source's configuration and
    its EMA weights (what shipped), and a record of where it started; a
    resumed leg keeps that record."""
    from idfcr_train.models.pixel_cr import PixelCRConfig
    from idfcr_train.training.train_pixel_cr import network_config, save_checkpoint, start_run

    src_path = str(tmp_path / "src.pt")
    src_args = parse_args(["--data", "rice2", "--ckpt", src_path, "--config", "tiny", "--ema", "0.9"])
    cfg = PixelCRConfig.tiny()
    cfg.dim = 24  # not the preset: the new run must take the source's configuration
    src = start_run(src_args, cfg, None, "cpu")
    with torch.no_grad():
        for q in src.ema.parameters():
            q.add_(0.5)
    src.step = 40
    save_checkpoint(src, src_path)

    new_path = str(tmp_path / "new.pt")
    args = parse_args(["--data", "rice1", "--ckpt", new_path, "--config", "tiny", "--init", src_path,
                       "--resume", "--val-blocks", "301,305"])
    new_cfg, state = network_config(args, [])
    assert state is None and new_cfg.dim == 24
    run = start_run(args, new_cfg, state, "cpu")
    assert run.step == 0 and not run.opt.state_dict()["state"]
    for k, v in src.ema.state_dict().items():
        assert torch.equal(run.model.state_dict()[k], v), k
    assert run.meta["data"] == "rice1" and run.meta["val_blocks"] == "301,305"
    assert {k: v for k, v in run.meta["init"].items() if k != "meta"} == {
        "from": "src.pt", "step": 40, "data": "rice2", "val_blocks": None}
    assert run.meta["init"]["meta"]["ema"] == 0.9
    # The network's shape comes from --init: a shape flag beside it is refused,
    # and so is --ckpt naming the source itself.
    with pytest.raises(SystemExit, match="--dim"):
        network_config(parse_args(["--data", "x", "--ckpt", new_path, "--init", src_path, "--dim", "8"]), [])
    with pytest.raises(SystemExit, match="overwrite"):
        network_config(parse_args(["--data", "x", "--ckpt", src_path, "--init", src_path]), [])

    run.step = 7
    save_checkpoint(run, new_path)
    os.remove(src_path)  # a later leg needs only its own checkpoint
    cfg2, state2 = network_config(args, [])
    resumed = start_run(args, cfg2, state2, "cpu")
    assert resumed.step == 7 and resumed.meta["init"]["from"] == "src.pt"
