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
