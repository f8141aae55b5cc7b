"""`idfcr quality` agrees with the reference Python implementations on the
demo images and on generated ones: NIQE with scikit-video's `niqe`, BRISQUE
with the `image-quality` package's `brisque.score`.

Both packages predate the SciPy, NumPy and scikit-image versions installed
here, so the few pieces they relied on are put back as they were:
scikit-video's `scipy.misc.imresize(..., 'bicubic', mode='F')` was Pillow's
bicubic resize of a float image and `np.int` was `int`; image-quality's
`from libsvm import svmutil` is Debian's `svmutil`, and its call of
`rgb2gray` on an already grey image returned the image (scikit-image < 0.19).
Runs the debug binary that `cargo test` built."""

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


@pytest.fixture(scope="module")
def imquality_brisque():
    import sys
    import types

    svmutil = pytest.importorskip("svmutil")
    sys.modules.setdefault("libsvm", types.SimpleNamespace(svmutil=svmutil))
    import skimage.color

    rgb2gray = skimage.color.rgb2gray
    skimage.color.rgb2gray = lambda im: im if np.ndim(im) == 2 else rgb2gray(im)
    brisque = pytest.importorskip("imquality.brisque")
    return lambda rgb: float(brisque.score(rgb))


def write(path, arr):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), arr.shape[2], arr.shape[1], arr.shape[0], gdal.GDT_Byte)
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None


def grey(path):
    a = gdal.Open(str(path)).ReadAsArray().astype(np.float32)
    return 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2] if a.ndim == 3 else a


def images(tmp_path):
    """The demo pair and three generated 8-bit images (grey and RGB)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:250, 0:300]
    smooth = 128 + 60 * np.sin(xx / 13) * np.cos(yy / 17) + 20 * np.sin(xx * yy / 900)
    paths = [os.path.join(ROOT, "testdata", "demo", n) for n in ("landsat8_cloudy.tif", "landsat8_clear.tif")]
    for k, arr in enumerate([
        smooth[None],
        np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255)[None],
        np.stack([np.clip(smooth * f + rng.normal(0, 5, smooth.shape), 0, 255) for f in (0.9, 1.0, 0.7)]),
    ]):
        p = tmp_path / f"g{k}.tif"
        write(p, arr.astype(np.uint8))
        paths.append(str(p))
    return paths


def run_quality(paths):
    out = subprocess.run([BINARY, "quality", *paths, "--json"], capture_output=True, text=True, check=True)
    return {r["input"]: r for r in json.loads(out.stdout)}


@pytest.mark.usefixtures("idfcr_binary")
def test_niqe_matches_scikit_video(tmp_path, skvideo_niqe):
    paths = images(tmp_path)
    got = run_quality(paths)
    for p in paths:
        assert got[p]["niqe"] == pytest.approx(skvideo_niqe(grey(p)), rel=1e-3), p


@pytest.mark.usefixtures("idfcr_binary")
def test_brisque_matches_image_quality(tmp_path, imquality_brisque):
    paths = [p for p in images(tmp_path) if gdal.Open(p).RasterCount == 3]
    got = run_quality(paths)
    for p in paths:
        rgb = np.moveaxis(gdal.Open(p).ReadAsArray(), 0, -1).astype(np.uint8)
        assert got[p]["brisque"] == pytest.approx(imquality_brisque(rgb), abs=1e-2), p


@pytest.mark.usefixtures("idfcr_binary")
def test_quality_refuses_small_images(tmp_path):
    write(tmp_path / "s.tif", np.zeros((1, 100, 100), np.uint8))
    out = subprocess.run([BINARY, "quality", str(tmp_path / "s.tif")], capture_output=True, text=True)
    assert out.returncode == 1 and "NIQE needs at least" in out.stderr and "s.tif" in out.stderr
