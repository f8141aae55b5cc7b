"""Shared fixtures. Tests that check the real `idfcr` binary fail (never
skip) when it is missing: CI builds it with `cargo test` before pytest runs,
and a silently skipped comparison would look like a passing one."""

import os

import pytest

BINARY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "target", "debug", "idfcr")


@pytest.fixture
def idfcr_binary() -> str:
    assert os.path.exists(BINARY), f"{BINARY} is missing: build it first (cargo build), these tests run it"
    return BINARY


@pytest.fixture
def tiny_shifted_net():
    """A seeded tiny RGB Pixel-CR with shifted windows, in eval mode: what
    the export tests wrap (ensembles, half-scale context) before exporting."""
    import sys

    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from idfcr_train.models.pixel_cr import PixelCR, PixelCRConfig

    torch.manual_seed(0)
    cfg = PixelCRConfig.tiny(3)
    cfg.shifted_windows = True
    return PixelCR(cfg).eval()
