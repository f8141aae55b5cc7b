"""The all-images blend report's summary: counts against doing nothing and
the 40 dB clear-input bar, worst cases."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.reports.blend_all import summarise, to_byte  # noqa: E402


def test_summary_counts_and_extremes():
    rows = [
        # blend, raw, nothing, clear_in
        {"blend": 30.0, "raw": 31.0, "nothing": 25.0, "blend_ssim": 0.9, "clear_in": 99.0},
        {"blend": 24.0, "raw": 25.2, "nothing": 25.0, "blend_ssim": 0.8, "clear_in": 39.9},
        {"blend": 24.6, "raw": 24.4, "nothing": 25.0, "blend_ssim": 0.7, "clear_in": 40.0},
    ]
    s = summarise(rows)
    assert s["n"] == 3
    assert s["blend_below_nothing_0_5"] == 1  # 24.0 only; 24.6 is within 0.5 dB
    assert s["raw_below_nothing_0_5"] == 1  # 24.4
    assert s["clear_in_below_40"] == 1 and s["clear_in_min"] == 39.9
    assert abs(s["blend_worst_vs_nothing"] + 1.0) < 1e-9
    assert abs(s["blend"] - 26.2) < 1e-9


def test_outputs_are_written_as_bytes():
    got = to_byte(np.array([-0.1, 0.5, 0.5019, 1.2]))
    assert np.allclose(got * 255, [0, 128, 128, 255])
