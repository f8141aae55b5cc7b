"""The RGB blend gate: a detector that also reads what the model did."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.detector import CloudDetector  # noqa: E402
from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig  # noqa: E402
from idfcr_train.models.probability import Calibration, WithProbability  # noqa: E402
from idfcr_train.models.detector import GATE_EXTRA_IN, gate_inputs  # noqa: E402
from idfcr_train.training.train_gate import gate_loss, unseen_training_blocks  # noqa: E402


def test_a_gate_starts_as_the_detector_it_grows_from():
    torch.manual_seed(0)
    det = CloudDetector(3, 4).eval()
    gate = det.with_extra_inputs(GATE_EXTRA_IN).eval()
    x, extra = torch.rand(2, 3, 32, 32), torch.rand(2, GATE_EXTRA_IN, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gate(x, extra), det(x), atol=1e-6, rtol=0)
    assert gate.config() == {"in_bands": 3, "width": 4, "extra_in": GATE_EXTRA_IN}
    # A plain detector's config is what it always was, and it needs no extra inputs.
    assert det.config() == {"in_bands": 3, "width": 4}
    with pytest.raises(AssertionError):
        gate(x)


def test_gate_inputs_are_the_written_correction_and_the_attention():
    x = torch.full((1, 3, 2, 2), 0.5)
    out = torch.tensor([1.4, 0.7, -0.2]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    att = torch.full((1, 1, 2, 2), 0.25)
    got = gate_inputs(x, out, att)
    # The output is clipped as the runtime writes it before the difference.
    np.testing.assert_allclose(got[0, :, 0, 0].numpy(), [0.5, 0.2, -0.5, 0.25], atol=1e-6)


@pytest.mark.parametrize("p, sparsity, want_l1, want_total", [
    (0.0, 0.0, 0.3, 30.0),   # the input as it is: |x - y|
    (1.0, 0.0, 0.1, 10.0),   # the model's output: |out - y|
    (0.5, 0.0, 0.1, 10.0),   # halfway: x + 0.5 (out - x) = 0.3, |0.3 - 0.4|
    (1.0, 2.0, 0.1, 12.0),   # the pull towards 0 adds sparsity x mean(p)
])
def test_gate_loss_is_the_blended_error(p, sparsity, want_l1, want_total):
    x, out, y = torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.4)
    total, parts = gate_loss(x, out, y, torch.full((1, 1, 4, 4), p), sparsity)
    assert parts["l1"] == pytest.approx(want_l1, abs=1e-6)
    assert float(total) == pytest.approx(want_total, abs=1e-4)


def test_a_gate_learns_to_trust_the_model_only_where_it_helps():
    """Left half: a haze the model removes (trust it); right half: clear
    ground the model recolours (keep the input). A few steps of the real
    loss must open the gate on the left and close it on the right."""
    torch.manual_seed(0)
    gate = CloudDetector(3, 4).with_extra_inputs(GATE_EXTRA_IN)
    opt = torch.optim.Adam(gate.parameters(), lr=5e-3)
    y = torch.rand(4, 3, 32, 32) * 0.3
    x, out = y.clone(), y.clone()
    x[..., :16] = y[..., :16] * 0.4 + 0.5          # hazy left: the model gives the ground back
    out[..., 16:] = (y[..., 16:] + 0.2).clamp(0, 1)  # clear right: the model recolours it
    att = torch.zeros(4, 1, 32, 32)
    for _ in range(150):
        p = gate(x, gate_inputs(x, out, att))
        loss, _ = gate_loss(x, out, y, p, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = gate(x, gate_inputs(x, out, att))
    assert float(p[..., 4:12].mean()) > 0.9 and float(p[..., 20:28].mean()) < 0.1


def test_a_graph_with_a_gate_blends_by_what_the_gate_says():
    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    gate = CloudDetector(3, 4).with_extra_inputs(GATE_EXTRA_IN).eval()
    cal = Calibration(0.2, 0.5, 0, 0, shape="round", source="detector")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        clear, p = WithProbability(model, cal, gate).eval()(x)
        c, att = model(x)
        want = ((gate(x, gate_inputs(x, c, att)) - 0.2) / 0.3).clamp(0, 1)
    torch.testing.assert_close(clear, c)
    torch.testing.assert_close(p, want)


def test_the_calibration_swaps_in_a_gates_map_on_cached_outputs():
    from idfcr_train.models.detector import detector_map
    from idfcr_train.training.calibrate import run, with_detector

    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    gate = CloudDetector(3, 4).with_extra_inputs(GATE_EXTRA_IN).eval()
    imgs = {k: np.random.default_rng(i).random((3, 16, 16), dtype=np.float32) for i, k in enumerate(("c", "g", "s"))}
    case = {"cloudy": imgs["c"], "clear": imgs["g"], "syn": imgs["s"],
            "out": run(model, imgs["c"]), "ident": run(model, imgs["g"]), "syn_out": run(model, imgs["s"])}
    with_detector([case], None, gate)
    for key, img in (("out", "c"), ("ident", "g"), ("syn_out", "s")):
        out, _, att = run(model, imgs[img])
        with torch.no_grad():
            want = detector_map(gate, torch.from_numpy(imgs[img])[None], out, att)
        torch.testing.assert_close(case[key][1], want)


@pytest.mark.parametrize("main_real, extra_share, s2_share, want_real_main", [
    (0.0, 0.25, 0.0, 0),    # the remembered pairs are never drawn; the extra pool's real pairs are
    (1.0, 0.25, 0.0, 6),    # all of --data's samples real
    (0.0, 0.0, 0.0, 0),     # no extra samples in the batch
    (0.0, 0.25, 0.25, 0),   # RICE1 and the Sentinel-2 quick-looks, a quarter each
    (1.0, 0.0, 0.5, 4),     # half the batch quick-looks, the rest --data's real pairs
])
def test_the_gate_draws_real_pairs_only_where_the_model_never_trained(main_real, extra_share, s2_share,
                                                                      want_real_main):
    """A real pair's input is all 200 (cloud), a clear image given as input
    keeps its ground (40); the extra pool and the quick-looks are told apart
    by their ground (90, 140). Pixel-CR's shares (--synthetic 0, --identity
    0) make every pooled sample a real pair and every fake --data sample a
    clear image."""
    import argparse

    from idfcr_train.data.pairs import Pair
    from idfcr_train.training.train_gate import draw

    def pair(pid, ground):
        return Pair(pid, "0", np.full((3, 32, 32), 200, np.uint8), np.full((3, 32, 32), ground, np.uint8), 1 / 255)

    main, extra, s2 = [pair("m", 40)], [pair("e", 90)], [pair("s2:x", 140)]
    args = argparse.Namespace(main_real=main_real, extra_share=extra_share, s2_rgb_share=s2_share, batch=8, crop=32,
                              synthetic=0.0, identity=0.0, palette=0.0, stretch=0.0, lift=0.0)
    rng = np.random.default_rng(0)
    n_extra, n_s2 = int(round(8 * extra_share)), int(round(8 * s2_share))
    for _ in range(5):
        x, y = draw(main, extra, args, rng, {}, s2)
        assert x.shape == (8, 3, 32, 32) and y.shape == x.shape
        real = [bool(torch.allclose(x[i], torch.tensor(200 / 255))) for i in range(8)]
        is_s2 = [bool(torch.allclose(y[i], torch.tensor(140 / 255))) for i in range(8)]
        is_extra = [bool(torch.allclose(y[i], torch.tensor(90 / 255))) for i in range(8)]
        assert sum(is_extra) == n_extra and sum(is_s2) == n_s2
        assert all(r for r, e, q in zip(real, is_extra, is_s2) if e or q)
        assert sum(r for r, e, q in zip(real, is_extra, is_s2) if not (e or q)) == want_real_main


def test_the_gate_refuses_a_batch_with_no_room_for_its_main_data():
    import argparse

    from idfcr_train.data.pairs import Pair
    from idfcr_train.training.train_gate import draw

    p = Pair("m", "0", np.zeros((3, 32, 32), np.uint8), np.zeros((3, 32, 32), np.uint8), 1 / 255)
    args = argparse.Namespace(main_real=0.0, extra_share=0.5, s2_rgb_share=0.5, batch=8, crop=32, synthetic=0.0,
                              identity=0.0, palette=0.0, stretch=0.0, lift=0.0)
    with pytest.raises(ValueError, match="no room"):
        draw([p], [p], args, np.random.default_rng(0), {}, [p])


def test_the_screen_reads_cached_maps_and_swaps_in_the_gates(tmp_path):
    from idfcr_train.reports.screen_blend import load_cases
    from idfcr_train.models.detector import detector_map

    rng = np.random.default_rng(0)
    for pid in ("1", "2", "demo"):
        img = rng.random((3, 16, 16), dtype=np.float32)
        same = pid == "2"  # a pair whose two dates are one image: not a case
        rec = {"block": "3", "cloudy": img, "clear": img if same else rng.random((3, 16, 16), dtype=np.float32)}
        for tag in ("c", "g"):
            rec[f"out_{tag}"] = rng.random((3, 16, 16)).astype(np.float16)
            rec[f"att_{tag}"] = rng.random((16, 16)).astype(np.float16)
            rec[f"det_{tag}"] = rng.random((16, 16)).astype(np.float16)
        np.savez(tmp_path / f"{pid}.npz", **rec)
    cases, demo = load_cases(str(tmp_path), ["1", "2"], None)
    assert [c["id"] for c in cases] == ["1"] and cases[0]["pos"] == 0 and demo["id"] == "demo"
    d = np.load(tmp_path / "1.npz")
    # Without a detector the carried detector's map is read as stored.
    np.testing.assert_array_equal(cases[0]["out"][1][0, 0].numpy(), d["det_c"].astype(np.float32))
    gate = CloudDetector(3, 4).with_extra_inputs(GATE_EXTRA_IN).eval()
    cases, _ = load_cases(str(tmp_path), ["1", "2"], gate)
    out, m, att = cases[0]["ident"]
    with torch.no_grad():
        want = detector_map(gate, torch.from_numpy(d["clear"])[None], out, att)
    torch.testing.assert_close(m, want)


def test_a_gates_tile_halo_covers_the_network_and_the_gate():
    from idfcr_train.export.pixel_cr import measure_halo

    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    gate = CloudDetector(3, 4).with_extra_inputs(GATE_EXTRA_IN).eval()
    with torch.no_grad():  # let the extra inputs matter
        gate.e1[0][0].weight[:, 5:] = 0.5
    cal = Calibration(0.0, 1.0, 0, 0, shape="round", source="detector")
    net = measure_halo(model)
    both = measure_halo(WithProbability(model, cal, gate).eval(), span=2)
    alone = measure_halo(lambda x: gate(x, torch.zeros_like(x[:, :1]).expand(-1, GATE_EXTRA_IN, -1, -1)),
                         bands=3, window=model.cfg.window)
    # The gate reads the network's output: its map reaches beyond either alone.
    assert both > max(net, alone)


@pytest.mark.parametrize("train_blocks, model_val, gate_val, want", [
    ("4", "3,9,4", "3,9", {"4"}),                 # the block the model held out
    ("4, 8", "3,9,4,8", "3,9", {"4", "8"}),        # several, spaces tolerated
    ("4,5", "3,9,4", "3,9", "trained on these blocks (it held out only 3,4,9)"),
    ("4", "3,9", "3,9", "trained on these blocks"),  # the shipped model held out only validation
    ("4", None, "3,9", "nothing recorded"),      # a checkpoint without its split
    ("3", "3,9,4", "3,9", "validation blocks of the gate"),
    (",", "3,9,4", "3,9", "names no block"),
])
def test_the_gate_trains_only_on_blocks_the_model_never_saw(train_blocks, model_val, gate_val, want):
    if isinstance(want, set):
        assert unseen_training_blocks(train_blocks, model_val, gate_val) == want
    else:
        with pytest.raises(ValueError, match=want.replace("(", r"\(").replace(")", r"\)")):
            unseen_training_blocks(train_blocks, model_val, gate_val)
