"""`idfcr eval` agrees with scikit-image (PSNR, SSIM, RMSE within 1e-3) on
a few generated images. Runs the debug binary that `cargo test` built."""

import json
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "target", "debug", "idfcr")

gdal = pytest.importorskip("osgeo.gdal")
skm = pytest.importorskip("skimage.metrics")


def write(path, arr, gdal_type):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), arr.shape[2], arr.shape[1], arr.shape[0], gdal_type)
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None


@pytest.mark.usefixtures("idfcr_binary")
@pytest.mark.parametrize("seed,dtype,gdal_type,data_range", [
    (0, np.uint8, 1, None),        # Byte: range 255 from the type
    (1, np.uint16, 2, 10000.0),    # reflectance x 10000, range given
    (2, np.float32, 6, 1.0),       # reflectance 0..1
])
def test_eval_matches_scikit_image(tmp_path, seed, dtype, gdal_type, data_range):
    rng = np.random.default_rng(seed)
    scale = {np.uint8: 255, np.uint16: 10000, np.float32: 1.0}[dtype]
    yy, xx = np.mgrid[0:37, 0:53]
    ref = np.stack([(0.5 + 0.4 * np.sin(xx / (5 + b)) * np.cos(yy / 7)) for b in range(3)]) * scale
    pred = np.clip(ref + rng.normal(0, 0.05 * scale, ref.shape), 0, scale)
    ref, pred = ref.astype(dtype), pred.astype(dtype)
    write(tmp_path / "p.tif", pred, gdal_type)
    write(tmp_path / "r.tif", ref, gdal_type)
    cmd = [BINARY, "eval", str(tmp_path / "p.tif"), str(tmp_path / "r.tif"), "--json", "-"]
    if data_range:
        cmd += ["--data-range", str(data_range)]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    rng_used = data_range or 255.0
    assert report["data_range"] == rng_used
    for b, got in enumerate(report["images"][0]["bands"]):
        p, r = pred[b].astype(np.float64), ref[b].astype(np.float64)
        want_psnr = skm.peak_signal_noise_ratio(r, p, data_range=rng_used)
        want_ssim = skm.structural_similarity(p, r, data_range=rng_used, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False)
        want_rmse = float(np.sqrt(np.mean((p - r) ** 2)))
        assert got["psnr"] == pytest.approx(want_psnr, abs=1e-3)
        assert got["ssim"] == pytest.approx(want_ssim, abs=1e-3)
        assert got["rmse"] == pytest.approx(want_rmse, abs=1e-3 * scale)


def test_paired_report_compares_the_same_images_and_refuses_others(tmp_path):
    from idfcr_train.reports.paired import compare_rows

    def rows(psnrs, ids=("1", "2", "3")):
        return [{"id": i, "block": "3" if i != "3" else "9", "psnr": p, "ssim": 0.9, "baseline_psnr": 20.0}
                for i, p in zip(ids, psnrs)]

    t = compare_rows(rows([30.0, 19.0, 25.0]), rows([28.0, 21.0, 25.0]))
    # (group, images, a - b mean, a wins, b wins, a below nothing, b below nothing)
    cases = [("all", 3, 0.0, 1, 1, 1, 0), ("block 3", 2, 0.0, 1, 1, 1, 0), ("block 9", 1, 0.0, 0, 0, 0, 0)]
    for group, n, mean, aw, bw, ab, bb in cases:
        r = t[group]
        assert r["images"] == n and abs(r["a_minus_b"]["mean_db"] - mean) < 1e-9, group
        assert (r["a_minus_b"]["a_wins"], r["a_minus_b"]["b_wins"]) == (aw, bw), group
        assert (r["a_below_nothing_0_5"], r["b_below_nothing_0_5"]) == (ab, bb), group
    with pytest.raises(SystemExit, match="different images"):
        compare_rows(rows([30.0, 19.0, 25.0]), rows([30.0, 19.0, 25.0], ids=("1", "2", "4")))
