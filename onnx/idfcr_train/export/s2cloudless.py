"""Convert s2cloudless's LightGBM pixel classifier to an image-shaped ONNX
graph (models/s2cloudless.py) and check it against LightGBM itself.

    pip download --no-deps -d /tmp/wheels s2cloudless==1.7.3
    pip install lightgbm onnxmltools        # conversion only, not at run time
    python -m idfcr_train.export.s2cloudless --wheel /tmp/wheels/s2cloudless-1.7.3-py3-none-any.whl \
        --out /tmp/s2cloudless.onnx

The graph carries its origin and licence (CC BY-SA 4.0) in its metadata.

    python -m idfcr_train.export.s2cloudless --parity-fixture ../testdata/models

writes the runtime parity reference (tests/parity.rs): a small 13-band
DN stack with a cloud in it, and the p that the measurement
(reports/s2_detectors.py: 6 x 6 block means, the graph, the calibration
of src/sentinel2/detector.rs, bilinear sampling) gives its 10 m grid.
"""

from __future__ import annotations

import argparse
import json
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


FIXTURE_SIZE = 96  # 10 m pixels: a 16 x 16 map


def fixture_dn(size: int = FIXTURE_SIZE) -> np.ndarray:
    """(13, size, size) uint16 DNs: ground with a gradient and a bright,
    soft cloud off the centre (B10 stays dark, as for a low cloud)."""
    from idfcr_train.data.s2 import SEN12MS_BANDS

    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cloud = np.exp(-((x - 0.7 * size) ** 2 + (y - 0.3 * size) ** 2) / (2 * (size / 14) ** 2))
    dn = np.empty((13, size, size), np.uint16)
    for k, b in enumerate(SEN12MS_BANDS):
        ground = 0.04 + 0.015 * k + 0.1 * (x + y) / (2 * size)
        top = 0.02 if b == "B10" else 0.55
        dn[k] = np.round((ground * (1 - cloud) + top * cloud) * 10000)
    return dn


def write_parity_fixture(folder: str, onnx_path: str, group_model: str) -> None:
    import torch

    from idfcr_train.data.s2 import area_average
    from idfcr_train.models.probability import Calibration, cloud_probability
    from idfcr_train.models.s2cloudless import S2Cloudless
    from idfcr_train.reports.s2_detectors import sample_bilinear

    dn = fixture_dn()
    p60 = S2Cloudless(onnx_path)(area_average(dn.astype(np.float32) / 10000.0, 6))
    # The test runs the 10 m group: its bundled model says how the map is
    # calibrated (else the runtime's default, src/sentinel2/detector.rs).
    from idfcr_train.reports.card_blend import DEFAULT_DETECTOR_CALIBRATION, carried_detector_calibration

    text = carried_detector_calibration(group_model) or DEFAULT_DETECTOR_CALIBRATION
    cal = Calibration.from_runtime_text(text)
    pc = cloud_probability(torch.from_numpy(p60)[None, None], cal)[0, 0].numpy()
    p10 = sample_bilinear(pc, FIXTURE_SIZE, FIXTURE_SIZE, 1 / 6)
    dn.astype("<u2").tofile(os.path.join(folder, "s2cloudless.dn.bin"))
    p10.astype("<f4").tofile(os.path.join(folder, "s2cloudless.p10m.bin"))
    with open(os.path.join(folder, "s2cloudless.ref.json"), "w") as f:
        json.dump({"size": FIXTURE_SIZE, "bands": 13, "calibration": cal.to_dict(),
                   "calibrated_for": os.path.basename(group_model),
                   "p_min": float(p10.min()), "p_max": float(p10.max()),
                   "written_by": "python -m idfcr_train.export.s2cloudless --parity-fixture"}, f, indent=1)
        f.write("\n")
    print(f"{folder}: p in [{p10.min():.3f}, {p10.max():.3f}], {np.mean(p10 == 0):.0%} exactly 0")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help="the s2cloudless wheel (pip download --no-deps s2cloudless)")
    ap.add_argument("--out", help="where to write the converted graph")
    ap.add_argument("--parity-fixture", metavar="DIR", help="write the runtime parity reference into DIR")
    ap.add_argument("--onnx", default=os.path.join(os.path.dirname(__file__), "..", "..", "models", "s2cloudless.onnx"),
                    help="the graph --parity-fixture runs")
    ap.add_argument("--group-model", default=os.path.join(os.path.dirname(__file__), "..", "..", "models", "s2_10m.onnx"),
                    help="the 10 m group model whose detector calibration --parity-fixture applies")
    args = ap.parse_args(argv)
    if args.parity_fixture:
        write_parity_fixture(args.parity_fixture, args.onnx, args.group_model)
        return
    if not (args.wheel and args.out):
        ap.error("--wheel and --out are needed to convert")
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
