"""The metadata contract: one key table for the exporters and the runtime."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.export.contract import TABLE_PATH, check, keys  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

GOOD = {"idfcr.name": "m", "idfcr.bands": "3", "idfcr.input_scale": "0.1", "idfcr.window_px": "16",
        "idfcr.halo_px": "8", "idfcr.outputs": "clear,attention"}


@pytest.mark.parametrize("meta,graph,fragment", [
    ({**GOOD, "idfcr.halo": "8"}, "pixel_cr", "not in contract_keys.json"),  # misspelt key
    ({k: v for k, v in GOOD.items() if k != "idfcr.outputs"}, "pixel_cr", "lacks required"),
    ({**GOOD, "idfcr.kind": "ind_encoder"}, "pixel_cr", "not in contract_keys.json"),  # an IND-only key
    (GOOD, "ind", "not in contract_keys.json"),  # idfcr.outputs is Pixel-CR's
])
def test_check_refuses(meta, graph, fragment):
    with pytest.raises(AssertionError, match=fragment):
        check(meta, graph)


def test_check_accepts_a_complete_contract():
    check({**GOOD, "idfcr.scores": "{}", "other.key": "ignored"}, "pixel_cr")


def test_rust_embeds_the_same_table():
    src = open(os.path.join(ROOT, "src", "models", "contract.rs")).read()
    rel = os.path.relpath(TABLE_PATH, os.path.join(ROOT, "src", "models"))
    assert f'include_str!("{rel}")' in src
    assert {"idfcr.kind", "idfcr.factor"} <= set(keys("ind"))


@pytest.mark.parametrize("text,want", [
    ("0.1,0.2,0,1", "0.1,0.2,0,1"),
    (" 0.60, 0.9 ,4,2", "0.6,0.9,4,2"),
    ("0.2,0.1,0,1", None),   # t0 above t1
    ("0.1,0.2,0", None),     # three values
    ("0.1,1.2,0,1", None),   # threshold above 1
    ("0.1,0.2,65,1", None),  # radius beyond the runtime's 64
])
def test_detector_calibration_follows_the_runtime_rules(text, want):
    from idfcr_train.export.pixel_cr import detector_calibration

    if want is None:
        with pytest.raises(SystemExit):
            detector_calibration(text)
    else:
        assert detector_calibration(text) == want


def test_card_default_detector_calibration_is_the_runtimes():
    """The cards say which calibration runs for a model without its own; it
    must be the one src/sentinel2/detector.rs uses."""
    import re

    from idfcr_train.reports.card_blend import DEFAULT_DETECTOR_CALIBRATION, same_calibration

    src = open(os.path.join(ROOT, "src", "sentinel2", "detector.rs")).read()
    body = src.split("pub const DEFAULT_CALIBRATION: Calibration = Calibration {")[1].split("};")[0]
    got = dict(re.findall(r"(\w+): ([0-9.]+)", body))
    assert same_calibration(DEFAULT_DETECTOR_CALIBRATION, {"t0": float(got["t0"]), "t1": float(got["t1"]),
                                                           "dilate_px": int(got["dilate_px"]),
                                                           "blur_px": int(got["blur_px"])})
