"""How much a Pixel-CR checkpoint changes pixels that have no cloud, on the
bundled demo sample (real Landsat 8 with synthetic clouds, whose cloud
opacity is known): mean absolute error against the clear reference where the
opacity is below 0.05, and PSNR over the whole image.

    python -m idfcr_train.reports.clear_fidelity CKPT [CKPT ...]

A cloud-removal model should leave cloud-free pixels alone; this is the
measurement behind the global-residual choice in the model card.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from idfcr_train.reports.metrics import psnr
from idfcr_train.models.pixel_cr import load_checkpoint
from idfcr_train import REPO_ROOT

DEMO = os.path.join(REPO_ROOT, "testdata", "demo")


def load_demo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloudy and clear demo images (0..1) and the mask of cloud-free pixels."""
    from osgeo import gdal

    read = lambda n: gdal.Open(os.path.join(DEMO, n)).ReadAsArray().astype(np.float32)
    return read("landsat8_cloudy.tif") / 255, read("landsat8_clear.tif") / 255, read("landsat8_cloud_alpha.tif") < 0.05


def measure(ckpt: str, demo=None) -> dict:
    """Clear-pixel MAE (DN) and whole-image PSNR of a checkpoint on the demo."""
    cloudy, clear, free = demo or load_demo()
    model, state = load_checkpoint(ckpt)
    with torch.no_grad():
        pred = model(torch.from_numpy(cloudy)[None])[0][0].clamp(0, 1).numpy()
    return {"step": state["step"], "residual": model.cfg.global_residual,
            "clear_mae_dn": float(np.abs(pred - clear)[:, free].mean() * 255), "psnr": psnr(pred, clear)}


def main(argv: list[str] | None = None) -> None:
    demo = load_demo()
    cloudy, clear, free = demo
    print(f"do nothing: clear-pixel MAE {np.abs(cloudy - clear)[:, free].mean() * 255:.2f} DN, PSNR {psnr(cloudy, clear):.2f} dB")
    for ckpt in argv or sys.argv[1:]:
        m = measure(ckpt, demo)
        print(f"{ckpt} (step {m['step']}, residual {m['residual']}): clear-pixel MAE {m['clear_mae_dn']:.2f} DN, "
              f"PSNR {m['psnr']:.2f} dB")


if __name__ == "__main__":
    main()
