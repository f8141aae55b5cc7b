"""Shift ensemble (models/ensemble.py): what it averages, what it keeps, and
that it exports with dynamic sizes."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.models.ensemble import ShiftEnsemble, parse_shifts  # noqa: E402
from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig  # noqa: E402


class GridModel(torch.nn.Module):
    """Adds +1 at every window border column and row, the way a window
    mosaic does; attention = the input's first band."""

    def __init__(self, window: int):
        super().__init__()
        self.cfg = PixelCRConfig.tiny(1)
        self.cfg.window = window

    def forward(self, x):
        h, w = x.shape[-2:]
        win = self.cfg.window
        rows = (torch.arange(h) % win == 0).float()[:, None]
        cols = (torch.arange(w) % win == 0).float()[None, :]
        return x + torch.maximum(rows, cols), x[:, :1]


@pytest.mark.parametrize("text, want", [
    ("0,0;8,8", [(0, 0), (8, 8)]),
    ("8,8", [(0, 0), (8, 8)]),                       # the unshifted run is always there, first
    ("4,4; 0,0 ;12,12", [(0, 0), (4, 4), (12, 12)]),
    ("", [(0, 0)]),
])
def test_parse_shifts(text, want):
    assert parse_shifts(text) == want


@pytest.mark.parametrize("text", ["8", "a,b", "1,2,3"])
def test_parse_shifts_refuses_what_is_not_dy_dx(text):
    with pytest.raises(ValueError, match="dy,dx"):
        parse_shifts(text)


@pytest.mark.parametrize("shifts, match", [
    ([(8, 8)], "first shift"),
    ([(0, 0), (16, 0)], "outside"),
    ([(0, 0), (0, -1)], "outside"),
])
def test_shifts_must_start_unshifted_and_stay_inside_a_window(shifts, match):
    with pytest.raises(ValueError, match=match):
        ShiftEnsemble(GridModel(16), shifts)


@pytest.mark.parametrize("shifts, want_border, want_centre", [
    ([(0, 0)], 1.0, 0.0),           # one run: the full step at each border
    ([(0, 0), (8, 8)], 0.5, 0.5),   # two runs: half a step at the borders of each
])
def test_the_ensemble_averages_the_window_grid_away(shifts, want_border, want_centre):
    x = torch.zeros(1, 1, 48, 48)
    out, att = ShiftEnsemble(GridModel(16), shifts)(x)
    assert out.shape == x.shape
    # Row 16 is a border of the unshifted run, row 24 one of the run shifted by 8 (a window centre of the first).
    assert float(out[0, 0, 16, 3]) == pytest.approx(want_border)
    assert float(out[0, 0, 24, 3]) == pytest.approx(want_centre)
    torch.testing.assert_close(att, x[:, :1])


def test_the_attention_is_the_unshifted_runs_and_one_shift_is_the_model():
    torch.manual_seed(0)
    model = PixelCR(PixelCRConfig.tiny(3)).eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        clear, att = model(x)
        one = ShiftEnsemble(model, [(0, 0)])(x)
        two = ShiftEnsemble(model, [(0, 0), (4, 4)])(x)
    torch.testing.assert_close(one[0], clear)
    torch.testing.assert_close(two[1], att)
    assert two[0].shape == clear.shape and not torch.allclose(two[0], clear)


class Offset(torch.nn.Module):
    """x + k everywhere; attention = k."""

    def __init__(self, k: float, window: int = 16):
        super().__init__()
        self.cfg = PixelCRConfig.tiny(1)
        self.cfg.window = window
        self.k = k

    def forward(self, x):
        return x + self.k, torch.full_like(x[:, :1], self.k)


@pytest.mark.parametrize("shifts, want", [
    ([(0, 0), (8, 8)], 2.0),            # (1 + 3) / 2: the second network runs at the shift
    ([(0, 0), (4, 4), (8, 8)], 7 / 3),  # (1 + 3 + 3) / 3: and at every shift
])
def test_a_second_network_runs_at_the_shifts_and_the_first_gives_the_attention(shifts, want):
    x = torch.zeros(1, 1, 32, 32)
    out, att = ShiftEnsemble(Offset(1.0), shifts, Offset(3.0))(x)
    torch.testing.assert_close(out, torch.full_like(x, want))
    torch.testing.assert_close(att, torch.ones_like(x[:, :1]))


def test_a_second_network_must_match_and_needs_a_shift():
    with pytest.raises(ValueError, match="another architecture"):
        ShiftEnsemble(Offset(1.0), [(0, 0), (8, 8)], Offset(1.0, window=8))
    with pytest.raises(ValueError, match="at least one"):
        ShiftEnsemble(Offset(1.0), [(0, 0)], Offset(1.0))


def test_an_ensemble_exports_with_dynamic_sizes(tmp_path, tiny_shifted_net):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from idfcr_train.export.pixel_cr import contract, export_onnx, measure_halo, parity

    single, cfg = tiny_shifted_net, tiny_shifted_net.cfg
    model = ShiftEnsemble(single, [(0, 0), (4, 4)]).eval()
    halo = measure_halo(model)
    # The shifted run reaches past the unshifted one by at most its shift.
    assert measure_halo(single) <= halo <= measure_halo(single) + 4 + cfg.window
    path = str(tmp_path / "e.onnx")
    meta = contract(model, name="e", version="0", band_names=["r", "g", "b"], input_scale=1 / 255, halo_px=halo,
                    extra={"idfcr.shift_ensemble": "0,0;4,4"})
    export_onnx(model, path, meta)
    for h, w in [(24, 40), (32, 16), (8, 8)]:
        assert parity(model, path, h=h, w=w) < 1e-4, (h, w)

    # reports.evaluate --onnx scores the graph the way it scores the network.
    from idfcr_train.reports.evaluate import OnnxPixelCR

    graph = OnnxPixelCR(path, threads=1)
    assert graph.shifts == "0,0;4,4"
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        want = model(x)
    got = graph.eval()(x)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shifts, stated", [("0,0;8,8", True), ("0,0", False), (None, False)])
def test_the_card_states_a_graphs_shift_ensemble(shifts, stated):
    from idfcr_train.reports.card import intro_section

    text = "\n".join(intro_section("m.onnx", "abc", shifts))
    assert ("Shift ensemble" in text) == stated
    if stated:
        assert f"`{shifts}`" in text


@pytest.mark.parametrize("main_name", ["idfcr_train.reports.evaluate", "idfcr_train.export.pixel_cr"])
def test_a_second_network_without_shifts_is_refused_before_any_work(main_name, tmp_path):
    import importlib

    main = importlib.import_module(main_name).main
    args = ["--ckpt", str(tmp_path / "missing.pt"), "--shifted-ckpt", str(tmp_path / "other.pt"),
            "--out", str(tmp_path / "out")]
    if main_name.endswith("evaluate"):
        args += ["--data", str(tmp_path)]
    with pytest.raises(SystemExit, match="--shifted-ckpt runs at --shifts"):
        main(args)
