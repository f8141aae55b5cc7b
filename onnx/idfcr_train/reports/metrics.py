"""Full-reference metrics on float images in a stated data range.

SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, valid region only, averaged over bands: the same
definition as scikit-image's `structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)` and as `idfcr eval`.
"""

from __future__ import annotations

import numpy as np


def to_byte(a: np.ndarray) -> np.ndarray:
    """Values in 0..1 as a Byte raster holds them (what the default output writes)."""
    return np.round(np.clip(a, 0.0, 1.0) * 255.0) / 255.0


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((pred.astype(np.float64) - ref.astype(np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * np.log10(data_range**2 / mse)


def rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred.astype(np.float64) - ref.astype(np.float64)) ** 2)))


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable correlation, 'valid' region only."""
    n = len(k)
    h, w = img.shape
    tmp = np.zeros((h, w - n + 1))
    for i in range(n):
        tmp += k[i] * img[:, i : i + w - n + 1]
    out = np.zeros((h - n + 1, w - n + 1))
    for i in range(n):
        out += k[i] * tmp[i : i + h - n + 1, :]
    return out


def ssim(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over bands; arrays (bands, H, W) or (H, W)."""
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
    k = _gaussian_kernel()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for x, y in zip(pred.astype(np.float64), ref.astype(np.float64)):
        mx, my = _filter_valid(x, k), _filter_valid(y, k)
        sxx = _filter_valid(x * x, k) - mx * mx
        syy = _filter_valid(y * y, k) - my * my
        sxy = _filter_valid(x * y, k) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        # scikit-image filters the whole image and then drops (11 - 1) // 2
        # pixels at each border: the same pixels as this valid region.
        vals.append(float(s.mean()))
    return float(np.mean(vals))


def blockiness(img: np.ndarray, grid: int = 16, offsets: tuple[int, ...] = (0, 8)) -> float:
    """Window blockiness: mean |neighbour difference| across the borders of a
    `grid`-px lattice at `offsets` (where window attention's regular and
    shifted windows meet), divided by the same mean everywhere else. Natural
    images score about 1.0; visible window edges push it up. `img` is
    (bands, H, W) or (H, W)."""
    x = img.astype(np.float64)
    if x.ndim == 2:
        x = x[None]
    num, den = [], []
    for axis in (1, 2):
        d = np.abs(np.diff(x, axis=axis)).mean(axis=0)  # difference between index i and i+1
        n = d.shape[axis - 1]
        idx = np.arange(1, n + 1)  # the difference at i lies across the border before index i+1
        border = np.zeros(n, bool)
        for o in offsets:
            border |= (idx % grid) == (o % grid)
        if axis == 1:
            num.append(d[border, :].ravel())
            den.append(d[~border, :].ravel())
        else:
            num.append(d[:, border].ravel())
            den.append(d[:, ~border].ravel())
    a, b = np.concatenate(num).mean(), np.concatenate(den).mean()
    return float(a / max(b, 1e-12))
