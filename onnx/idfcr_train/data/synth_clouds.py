"""Synthetic clouds: turn a clear image into a (cloudy, clear) training pair.

Cloud shapes come from fractal (1/f^beta) noise, which looks like real
cumulus and stratus fields far better than blobs do. Three layers:

- thick cloud: a soft-thresholded fractal field, nearly opaque in its core,
  bright and slightly per-band coloured;
- thin haze: a low-frequency, low-opacity veil over large areas;
- shadows (optional): the thick-cloud mask shifted along a sun direction,
  darkening the ground beneath.

Everything works on float arrays (bands, H, W) in reflectance-like units
(0..1 for 8-bit RGB divided by 255) and on any number of bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def fractal_noise(h: int, w: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise filtered to a 1/f^beta power spectrum, scaled to 0..1."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal((h, fx.shape[1])) + 1j * rng.standard_normal((h, fx.shape[1]))) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(h, w))
    lo, hi = field.min(), field.max()
    return ((field - lo) / (hi - lo + 1e-12)).astype(np.float32)


@dataclass
class CloudParams:
    """Ranges the generator draws from; each pair draws its own values."""

    thick_cover: tuple[float, float] = (0.0, 0.6)  # fraction of the image under thick cloud
    haze_opacity: tuple[float, float] = (0.0, 0.5)
    cloud_brightness: tuple[float, float] = (0.75, 1.0)
    band_tint: float = 0.05  # per-band jitter of the cloud colour
    shadow_probability: float = 0.5
    shadow_strength: tuple[float, float] = (0.3, 0.7)
    shadow_shift_frac: tuple[float, float] = (0.02, 0.08)


def add_clouds(
    clear: np.ndarray,
    rng: np.random.Generator,
    params: CloudParams | None = None,
    band_brightness: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (cloudy, cloud_alpha). `clear` is (bands, H, W) float in 0..1.

    `band_brightness` scales the cloud colour per band (clouds are darker in
    the short-wave infrared than in the visible, for example); default ones.
    """
    p = params or CloudParams()
    bands, h, w = clear.shape
    bb = np.ones(bands, np.float32) if band_brightness is None else np.asarray(band_brightness, np.float32)

    # Thick cloud: threshold a fractal field so that the requested fraction
    # is covered, with a soft edge proportional to the field's spread.
    cover = rng.uniform(*p.thick_cover)
    field = fractal_noise(h, w, rng.uniform(3.0, 3.8), rng)
    if cover > 0.005:
        thr = np.quantile(field, 1.0 - cover)
        soft = rng.uniform(0.03, 0.15)
        thick = np.clip((field - thr) / soft, 0.0, 1.0) ** rng.uniform(0.6, 1.5)
    else:
        thick = np.zeros((h, w), np.float32)

    haze_op = rng.uniform(*p.haze_opacity)
    haze = haze_op * fractal_noise(h, w, rng.uniform(3.0, 4.0), rng) if haze_op > 0.01 else np.zeros((h, w), np.float32)

    ground = clear.copy()
    if cover > 0.005 and rng.uniform() < p.shadow_probability:
        ang = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(*p.shadow_shift_frac) * max(h, w)
        dy, dx = int(round(dist * np.sin(ang))), int(round(dist * np.cos(ang)))
        shadow = np.roll(thick, (dy, dx), axis=(0, 1))
        ground = ground * (1.0 - rng.uniform(*p.shadow_strength) * shadow)[None]

    alpha = 1.0 - (1.0 - thick) * (1.0 - haze)
    brightness = rng.uniform(*p.cloud_brightness)
    colour = brightness * bb * (1.0 + p.band_tint * rng.standard_normal(bands).astype(np.float32))
    # Cloud tops are not flat: modulate their brightness a little.
    texture = 0.9 + 0.1 * fractal_noise(h, w, 2.0, rng)
    cloud = colour[:, None, None] * texture[None]
    cloudy = ground * (1.0 - alpha[None]) + cloud * alpha[None]
    return np.clip(cloudy, 0.0, max(1.0, float(clear.max()))).astype(np.float32), alpha.astype(np.float32)


# Thick-cloud reflectance per Sentinel-2 band relative to the visible, as
# measured under the thick clouds of the training scene ROIs1970_fall_136
# (SEN12MS-CR): brighter in the red edge and NIR, darker in the water-vapour
# and short-wave infrared bands, almost nothing in the cirrus band for low cloud.
S2_CLOUD_BRIGHTNESS = {"B1": 0.9, "B2": 0.9, "B3": 0.86, "B4": 0.95, "B5": 0.98, "B6": 1.0, "B7": 1.02,
                       "B8": 1.01, "B8A": 1.05, "B9": 0.6, "B10": 0.025, "B11": 0.76, "B12": 0.62}
