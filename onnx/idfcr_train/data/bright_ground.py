"""Bright ground that is not cloud: hard negatives for the cloud detector.

What the detector confused on the Landsat 8 demo's clear image were pale,
bright fields (mean of the darkest band 0.64, little spread between bands):
locally they look like haze. RICE2, the detector's main ground, is a dark
scene with few such surfaces, so nothing taught it the difference. The
difference is the shape: a field, a roof, a sand bank or a snow patch is
bright inside sharp, mostly straight edges and keeps the texture of the
ground; a cloud or a haze veil has soft, fractal edges and lowers contrast.

`add_bright_fields` paints a few rotated rectangles and polygons of bright,
pale colour (with a share of the ground's own texture) over a clear image.
Their target stays 0; synthetic clouds may still be added on top
(`synth_clouds.add_clouds`), whose opacity is then the only target.
"""

from __future__ import annotations

import numpy as np


def _polygon_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A filled convex polygon (3 to 6 corners around a centre, sharp edges)
    or a rotated rectangle, covering about 1 to 15 % of the image."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    size = rng.uniform(0.08, 0.3) * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.uniform() < 0.5:
        # Rotated rectangle: fields are mostly that.
        ang = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
        v = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
        a, b = size, size * rng.uniform(0.3, 1.0)
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    n = int(rng.integers(3, 7))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = size * rng.uniform(0.6, 1.2, n)
    corners = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
    inside = np.ones((h, w), bool)
    for i in range(n):
        (x0, y0), (x1, y1) = corners[i], corners[(i + 1) % n]
        # Counter-clockwise corners: inside is to the left of every edge.
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def add_bright_fields(clear: np.ndarray, rng: np.random.Generator, count: tuple[int, int] = (1, 8)) -> np.ndarray:
    """`clear` (bands, H, W) in 0..1 with a few bright, pale, sharp-edged
    patches painted in. Each patch: a base level of 0.45..0.9 with a per-band
    tint up to +-25 % (pink, teal, sand, near white),
    plus 30..80 % of the ground's own detail, so that it is ground, not a
    flat sticker."""
    bands, h, w = clear.shape
    out = clear.copy()
    detail = clear - clear.mean(axis=(1, 2), keepdims=True)
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        mask = _polygon_mask(h, w, rng)
        if not mask.any():
            continue
        level = rng.uniform(0.45, 0.9)
        colour = level * (1.0 + rng.uniform(-0.25, 0.25, bands)).astype(np.float32)
        keep = rng.uniform(0.3, 0.8)
        patch = colour[:, None, None] + keep * detail
        out[:, mask] = patch[:, mask]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
