"""reports.evaluate's blended score: the output as the default blend keeps it."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from idfcr_train.data.pairs import Pair  # noqa: E402
from idfcr_train.reports.evaluate import ShippedP, evaluate  # noqa: E402
from idfcr_train.reports.metrics import psnr, to_byte  # noqa: E402


class Constant(torch.nn.Module):
    """A 'model' whose output is one grey everywhere."""

    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, x):
        return torch.full_like(x, self.v), torch.zeros_like(x[:, :1])


def pair(seed=0):
    rng = np.random.default_rng(seed)
    clear = rng.uniform(0.1, 0.6, (3, 16, 16)).astype(np.float32)
    cloudy = clear.copy()
    cloudy[:, :8] = 0.9                                    # a cloud over the top half
    return Pair("7", "3", cloudy, clear)


@pytest.mark.parametrize("where,want", [
    ("nowhere", "input"),          # p = 0: the input comes back (rounded to 8 bit)
    ("everywhere", "output"),      # p = 1: the model's output
    ("top", "mixed"),              # p = 1 on the cloud only
])
def test_blend_psnr_scores_what_the_blend_keeps(where, want):
    p = pair()
    prob = {"nowhere": np.zeros((1, 16, 16), np.float32), "everywhere": np.ones((1, 16, 16), np.float32),
            "top": np.concatenate([np.ones((1, 8, 16)), np.zeros((1, 8, 16))], axis=1).astype(np.float32)}[where]
    res = evaluate(Constant(0.35), [p], blend_p=lambda _id, _x: prob)
    row = res["per_image"][0]
    out = np.full_like(p.clear, 0.35)
    expect = {"input": to_byte(p.cloudy), "output": to_byte(out),
              "mixed": to_byte(np.concatenate([out[:, :8], p.cloudy[:, 8:]], axis=1))}[want]
    assert row["blend_psnr"] == pytest.approx(psnr(expect, p.clear))
    assert res["summary"]["blend_psnr"] == pytest.approx(round(row["blend_psnr"], 4))
    # The raw score is the output's, whatever p says.
    assert row["psnr"] == pytest.approx(psnr(out, p.clear))


def test_no_blend_score_without_p():
    res = evaluate(Constant(0.35), [pair()])
    assert "blend_psnr" not in res["per_image"][0] and "blend_psnr" not in res["summary"]


def test_p_maps_are_cached_per_image_and_graph(tmp_path):
    graph, other = tmp_path / "g.onnx", tmp_path / "h.onnx"
    graph.write_bytes(b"not a real graph")
    other.write_bytes(b"another graph")
    cache = tmp_path / "maps"
    ShippedP(str(graph), str(cache))                       # stamps the folder with the graph
    cached = np.full((1, 16, 16), 0.25, np.float32)
    np.save(cache / "7.npy", cached)
    # A cached map is read without running the graph (this one would not load).
    got = ShippedP(str(graph), str(cache))("7", pair().cloudy)
    np.testing.assert_array_equal(got, cached)
    # Another graph's run must not read these maps.
    with pytest.raises(SystemExit, match="another graph"):
        ShippedP(str(other), str(cache))
