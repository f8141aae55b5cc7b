"""Convert s2cloudless's LightGBM pixel classifier to an image-shaped ONNX
graph (models/s2cloudless.py) and check it against LightGBM itself.

    pip download --no-deps -d /tmp/wheels s2cloudless==1.7.3
    pip install lightgbm onnxmltools        # conversion only, not at run time
    python -m idfcr_train.export.s2cloudless --wheel /tmp/wheels/s2cloudless-1.7.3-py3-none-any.whl \
        --out /tmp/s2cloudless.onnx

The graph carries its origin and licence (CC BY-SA 4.0) in its metadata.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from idfcr_train.models.s2cloudless import BANDS, CREDIT, INPUT, LICENCE, OUTPUT, booster_text, build_graph


def check(path: str, booster, seed: int = 0, tol: float = 1e-4) -> float:
    """Largest |ONNX - LightGBM| probability over random reflectances (a
    16 x 16 image: the reshape round trip is checked too)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    img = rng.uniform(0.0, 0.8, (1, len(BANDS), 16, 16)).astype(np.float32)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run([OUTPUT], {INPUT: img})[0]
    want = booster.predict(img[0].reshape(len(BANDS), -1).T).reshape(16, 16)
    err = float(np.abs(got[0, 0] - want).max())
    if got.shape != (1, 1, 16, 16) or err > tol:
        raise SystemExit(f"{path}: the converted graph disagrees with LightGBM (shape {got.shape}, max error {err})")
    return err


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", required=True, help="the s2cloudless wheel (pip download --no-deps s2cloudless)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import onnx

    model, booster = build_graph(booster_text(args.wheel))
    meta = {
        "idfcr.name": "s2cloudless",
        "idfcr.version": os.path.basename(args.wheel).split("-")[1],
        "idfcr.bands": str(len(BANDS)),
        "idfcr.band_names": ",".join(BANDS),
        "idfcr.input_scale": "0.0001",
        "idfcr.licence": LICENCE,
        "idfcr.credit": CREDIT,
    }
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, args.out)
    err = check(args.out, booster)
    print(f"{args.out}: {os.path.getsize(args.out) / 1e6:.1f} MB, {booster.num_trees()} trees, "
          f"max |ONNX - LightGBM| {err:.2e}")


if __name__ == "__main__":
    main()
