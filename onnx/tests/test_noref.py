"""`idfcr quality` (NIQE) agrees with scikit-video's `niqe` on the demo
images and on generated ones. scikit-video 1.1.11 is the reference the
issue names; it predates SciPy 1.3 and NumPy 1.24, so its two missing
pieces are filled in as they were: `scipy.misc.imresize(..., 'bicubic',
mode='F')` was Pillow's bicubic resize of a float image, and `np.int` was
`int`. Runs the debug binary that `cargo test` built."""

import json
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "target", "debug", "idfcr")

gdal = pytest.importorskip("osgeo.gdal")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def skvideo_niqe():
    import scipy.misc

    if not hasattr(np, "int"):
        np.int = int

    def imresize(arr, size, interp="bicubic", mode=None):
        im = Image.fromarray(np.asarray(arr, np.float32), mode="F")
        new = (int(im.size[0] * size), int(im.size[1] * size))
        return np.asarray(im.resize(new, resample=Image.BICUBIC), np.float32)

    scipy.misc.imresize = imresize
    measure = pytest.importorskip("skvideo.measure")
    return lambda g: float(measure.niqe(g)[0])


def write(path, arr):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), arr.shape[2], arr.shape[1], arr.shape[0], gdal.GDT_Byte)
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None


def grey(path):
    a = gdal.Open(str(path)).ReadAsArray().astype(np.float32)
    return 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2] if a.ndim == 3 else a


@pytest.mark.skipif(not os.path.exists(BINARY), reason="build the binary first (cargo build)")
def test_niqe_matches_scikit_video(tmp_path, skvideo_niqe):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:250, 0:300]
    smooth = 128 + 60 * np.sin(xx / 13) * np.cos(yy / 17) + 20 * np.sin(xx * yy / 900)
    images = [os.path.join(ROOT, "testdata", "demo", n) for n in ("landsat8_cloudy.tif", "landsat8_clear.tif")]
    for k, arr in enumerate([
        smooth[None],
        np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255)[None],
        np.stack([np.clip(smooth * f + rng.normal(0, 5, smooth.shape), 0, 255) for f in (0.9, 1.0, 0.7)]),
    ]):
        p = tmp_path / f"g{k}.tif"
        write(p, arr.astype(np.uint8))
        images.append(str(p))
    out = subprocess.run([BINARY, "quality", *images, "--json"], capture_output=True, text=True, check=True)
    got = {r["input"]: r["niqe"] for r in json.loads(out.stdout)}
    for p in images:
        want = skvideo_niqe(grey(p))
        assert got[p] == pytest.approx(want, rel=1e-3), p


@pytest.mark.skipif(not os.path.exists(BINARY), reason="build the binary first (cargo build)")
def test_quality_refuses_small_images(tmp_path):
    write(tmp_path / "s.tif", np.zeros((1, 100, 100), np.uint8))
    out = subprocess.run([BINARY, "quality", str(tmp_path / "s.tif")], capture_output=True, text=True)
    assert out.returncode == 1 and "NIQE needs at least" in out.stderr and "s.tif" in out.stderr
