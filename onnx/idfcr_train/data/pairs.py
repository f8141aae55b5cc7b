"""Paired training data: RICE-layout folders and paired GeoTIFFs.

A dataset is a list of `Pair`s held in memory as float32 (bands, H, W) in
model units (8-bit values / 255, Sentinel-2 DN / 10000). Validation is split
by scene block, never at random: neighbouring RICE tiles are pieces of the
same Landsat scene, so a random split leaks.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np


@dataclass
class Pair:
    """One (cloudy, clear) pair. Arrays are (bands, H, W) in model units,
    float32; `load_rice` keeps 8-bit data as uint8 (4x less memory) and
    these properties convert on access."""

    id: str
    block: str
    cloudy_raw: np.ndarray
    clear_raw: np.ndarray
    scale: float = 1.0
    # Per-band loss weight (bands,), None: all ones. A band whose "clear"
    # label is not clear (cirrus in Sentinel-2's B10) gets 0.
    band_weight: np.ndarray | None = None
    # Only the clear image is real (cloudy_raw is the same array): the pair
    # serves synthetic clouds and identity samples, never a real pair, so
    # that ground without a usable cloudy date (or whose cloudy date is
    # another season) teaches cloud removal without teaching recolouring.
    clear_only: bool = False

    @property
    def cloudy(self) -> np.ndarray:
        return self.cloudy_raw.astype(np.float32) * self.scale

    @property
    def clear(self) -> np.ndarray:
        return self.clear_raw.astype(np.float32) * self.scale


def _read_png(path: str) -> np.ndarray:
    """(3, H, W) uint8."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return arr.transpose(2, 0, 1).copy()


def _read_tiff(path: str) -> np.ndarray:
    """(bands, H, W) in the file's own integer type."""
    from osgeo import gdal  # optional: only paired GeoTIFF folders need it

    ds = gdal.Open(path)
    if ds is None:
        raise FileNotFoundError(f"{path}: GDAL cannot open it")
    arr = ds.ReadAsArray()
    return arr[None] if arr.ndim == 2 else arr


def _read(path: str) -> tuple[np.ndarray, float]:
    """Pixels and the scale to model units: 8-bit data / 255; 16-bit data is
    taken as reflectance x 10000 (Landsat/Sentinel-2 products)."""
    if path.lower().endswith((".tif", ".tiff")):
        arr = _read_tiff(path)
        return arr, (1 / 255 if arr.dtype == np.uint8 else 1e-4)
    return _read_png(path), 1 / 255


def load_rice(root: str) -> list[Pair]:
    """RICE layout: `pairs.csv` (id, scene_block, cloudy, clear) beside
    `cloudy_image/` and `ground_truth/`. Without pairs.csv, pairs are matched
    by file name and every pair is its own block. Files are PNG/JPEG or
    (Geo)TIFF, 8-bit or 16-bit (see `_read`)."""
    csv_path = os.path.join(root, "pairs.csv")
    rows = []
    if os.path.exists(csv_path):
        with open(csv_path) as f:
            for r in csv.DictReader(f):
                rows.append((r["id"], r.get("scene_block") or r["id"], r["cloudy"], r["clear"]))
    else:
        for name in sorted(os.listdir(os.path.join(root, "cloudy_image"))):
            stem = os.path.splitext(name)[0]
            rows.append((stem, stem, f"cloudy_image/{name}", f"ground_truth/{name}"))
    assert rows, f"{root}: no pairs found (expected pairs.csv or cloudy_image/ + ground_truth/)"
    pairs = []
    for i, b, c, g in rows:
        (cloudy, scale), (clear, _) = _read(os.path.join(root, c)), _read(os.path.join(root, g))
        assert cloudy.shape == clear.shape, f"{root}: pair {i} has shapes {cloudy.shape} and {clear.shape}"
        pairs.append(Pair(i, b, cloudy, clear, scale))
    return pairs


def in_id_range(pair_id: str, span: str | None) -> bool:
    """Whether a numeric id lies in "LO-HI" (inclusive); False without a span."""
    if not span:
        return False
    lo, hi = (int(v) for v in span.split("-"))
    return pair_id.isdigit() and lo <= int(pair_id) <= hi


def split_by_block(pairs: list[Pair], val_blocks: set[str]) -> tuple[list[Pair], list[Pair]]:
    train = [p for p in pairs if p.block not in val_blocks]
    val = [p for p in pairs if p.block in val_blocks]
    assert train and val, f"split by blocks {sorted(val_blocks)} left train={len(train)}, val={len(val)}"
    return train, val


def check_held_out(state: dict, blocks: str, what: str, data: str | None = None) -> None:
    """Refuse to score (or calibrate) a checkpoint on scene blocks it trained
    on: every block in `blocks` must be one the checkpoint held out (its
    stored meta.val_blocks). A checkpoint trained on another dataset than
    `data` (by folder name), or one that stores no split, is not checked."""
    meta = state.get("meta", {})
    held = meta.get("val_blocks")
    if not held:
        return
    if data and meta.get("data") and os.path.basename(os.path.normpath(data)) != meta["data"]:
        return
    trained_on = sorted(set(blocks.split(",")) - set(str(held).split(",")))
    if trained_on:
        raise SystemExit(
            f"{what}: trained on block(s) {','.join(trained_on)} (it held out {held}); "
            "scoring there would measure training data, not unseen scenes"
        )


def random_crop_pair(
    cloudy: np.ndarray, clear: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Same random crop and one of the 8 dihedral transforms for both images
    (any dtype; the caller converts)."""
    _, h, w = cloudy.shape
    assert h >= crop and w >= crop, f"image {h}x{w} smaller than crop {crop}"
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    a, b = cloudy[:, y : y + crop, x : x + crop], clear[:, y : y + crop, x : x + crop]
    k = int(rng.integers(0, 4))
    a, b = np.rot90(a, k, axes=(1, 2)), np.rot90(b, k, axes=(1, 2))
    if rng.uniform() < 0.5:
        a, b = a[:, :, ::-1], b[:, :, ::-1]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def random_palette(bands: int, rng: np.random.Generator):
    """A random monotone colour map per band (another sensor's stretch,
    colour balance or atmosphere), to be applied identically to an input and
    its label: `f = random_palette(3, rng); a, b = f(a), f(b)`.

    RICE2, our only RGB pairs, has one stretch; a model trained on it alone
    repaints other palettes (the Landsat 8 demo) in RICE2's colours. With the
    same map on both sides the task is unchanged but the palette is no
    longer a cue: sometimes permuted bands, a per-band gain and offset, a
    global gain and gamma. Values stay in 0..1."""
    perm = rng.permutation(bands) if rng.uniform() < 0.3 else None
    gain = (rng.uniform(0.75, 1.3, size=(bands, 1, 1)) * rng.uniform(0.6, 1.6)).astype(np.float32)
    offset = rng.uniform(-0.03, 0.08, size=(bands, 1, 1)).astype(np.float32)
    gamma = float(rng.uniform(0.6, 1.6))

    def apply(img: np.ndarray) -> np.ndarray:
        if perm is not None:
            img = img[perm]
        y = np.clip(img * gain, 0.0, 1.0) ** gamma + offset
        return np.clip(y, 0.0, 1.0).astype(np.float32)

    return apply


def random_stretch(reference: np.ndarray, rng: np.random.Generator, max_gain: float = 10.0):
    """A random linear stretch of the kind users put on their own scenes (a
    percentile stretch: QGIS's cumulative cut, `gdal_translate -scale`),
    fitted on `reference` (bands, H, W) in 0..1 and applied identically to an
    input and its label: `f = random_stretch(label, rng); a, b = f(a), f(b)`.

    RICE2 tiles come from one stretch of whole scenes, so a 512 px tile is
    dim and flat (mean within-image deviation 0.03); a user's stretched crop
    spans 0..1 (the Landsat 8 demo: 0.1-0.3). The reference's lower and upper
    percentiles (0.5-5 and 95-99.5, drawn) go to 0 and 1, jointly for all
    bands (keeps the colour balance) or per band (a colour-balancing
    stretch), half and half; the gain is capped so flat crops stay natural."""
    axis = None if rng.uniform() < 0.5 else (1, 2)
    q_lo, q_hi = float(rng.uniform(0.5, 5.0)), float(rng.uniform(95.0, 99.5))
    lo = np.reshape(np.percentile(reference, q_lo, axis=axis), (-1, 1, 1)).astype(np.float32)
    hi = np.reshape(np.percentile(reference, q_hi, axis=axis), (-1, 1, 1)).astype(np.float32)
    span = np.maximum(hi - lo, 1.0 / max_gain).astype(np.float32)

    def apply(img: np.ndarray) -> np.ndarray:
        return np.clip((img - lo) / span, 0.0, 1.0).astype(np.float32)

    return apply


def random_lift(bands: int, rng: np.random.Generator):
    """A random per-band affine squeeze into a higher sub-range, applied
    identically to an input and its label: `f = random_lift(3, rng); a, b =
    f(a), f(b)`.

    RICE2's clear tiles have about equal floors in every band (1st
    percentile 0.15-0.22); a scene with a colour cast does not (the Landsat
    8 demo: red from 0.00, blue from 0.53). A model trained on RICE2 alone
    reads a raised floor in one band as haze and darkens the whole scene;
    with the same squeeze on both sides a raised floor is no longer a cue by
    itself. Each band independently, half the time: gain 0.4-1 and an
    offset that keeps values within 0..1."""
    lift = rng.uniform(size=(bands, 1, 1)) < 0.5
    gain = np.where(lift, rng.uniform(0.4, 1.0, size=(bands, 1, 1)), 1.0).astype(np.float32)
    offset = (rng.uniform(size=(bands, 1, 1)) * (1.0 - gain)).astype(np.float32)

    def apply(img: np.ndarray) -> np.ndarray:
        return np.clip(img * gain + offset, 0.0, 1.0).astype(np.float32)

    return apply


def align_label(cloudy: np.ndarray, clear: np.ndarray, *, tol: float = 0.04,
                min_share: float = 0.2) -> np.ndarray:
    """The clear label with its colours fitted to the cloudy input's date.

    RICE2's cloudy and clear images are different dates: fields change colour,
    water levels and sun angle differ. Trained on raw pairs, a model learns to
    recolour clear ground towards the label date, which then shows on every
    clear pixel of a user's scene. Here each band of the label gets a gain and
    offset fitted on pixels that are clear in both images: those that, after
    the robust per-band shift between the dates, differ by less than `tol`
    (cloud and haze differ far more). The fit is refined once on the pixels
    it explains. The label is kept unchanged when fewer than `min_share`
    of the pixels qualify (cloud over most of the image), when the fit is
    implausible, or when it brightens and flattens the label (what haze
    does): a wrong fit would teach the model to keep cloud.

    Arrays are (bands, H, W) float in model units; returns float32."""
    d = (cloudy - clear).astype(np.float64)
    calm = np.abs(d).mean(axis=0)
    calm = calm <= np.quantile(calm, 0.3)
    gain = np.ones(clear.shape[0])
    off = np.array([np.median(d[b][calm]) for b in range(clear.shape[0])])
    for _ in range(2):
        pred = gain[:, None, None] * clear + off[:, None, None]
        keep = np.abs(cloudy - pred).mean(axis=0) < tol
        if keep.mean() < min_share:
            return clear.astype(np.float32)
        for b in range(clear.shape[0]):
            x, y = clear[b][keep].astype(np.float64), cloudy[b][keep].astype(np.float64)
            if x.std() > 1e-3:
                gain[b], off[b] = np.polyfit(x, y, 1)
            else:
                gain[b], off[b] = 1.0, float(np.mean(y - x))
    if not (np.all((0.8 <= gain) & (gain <= 1.25)) and np.all(np.abs(off) <= 0.1)):
        return clear.astype(np.float32)
    out = gain[:, None, None] * clear + off[:, None, None]
    # Haze looks like a date change that brightens and flattens the image
    # (gain < 1, brighter on average): never fold that into the label.
    if gain.mean() < 1.0 and out.mean() > clear.mean():
        return clear.astype(np.float32)
    return np.clip(out, 0.0, None).astype(np.float32)
