"""Sentinel-2 training pairs from SEN12MS-CR and SEN12MS-CR-TS, per resolution group.

SEN12MS-CR patches are 13 bands at 10 m (B1..B12 with B8A after B8, TOA
reflectance x 10000, no offset). The 20 m and 60 m groups are derived by
area averaging (2 x 2 and 6 x 6 pixels), which is how the native 20/60 m
pixels relate to the 10 m grid. Values are reflectance (DN / 10000).

Pairs:
- `sen12mscr_oriolac/pairs.csv`: cloudy and clear patches of the same
  ground a few days or weeks apart;
- `sen12mscr_ts_oriolac/s2/`: one patch on 30 dates; each cloudy or hazy
  date is paired with the nearest clear date, and each clear date also
  appears as a (clear, clear) pair, so that the model learns to leave clear
  ground alone (synthetic clouds are drawn over these during training).

Validation is split by scene (ROI + season + scene number), never at random.
"""

from __future__ import annotations

import csv
import os
import re

import numpy as np

from idfcr_train.data.pairs import Pair

# SEN12MS-CR band order.
SEN12MS_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
GROUPS = {
    "10m": (["B2", "B3", "B4", "B8"], 1),
    "20m": (["B5", "B6", "B7", "B8A", "B11", "B12"], 2),
    "60m": (["B1", "B9", "B10"], 6),
    # L2A products have no cirrus band.
    "60m_l2a": (["B1", "B9"], 6),
}
DEFAULT_VAL_SCENES = "ROIs1158_spring_39,ROIs1868_summer_100"
# Clear-sky B10 (cirrus, 1375 nm) reflectance is a few thousandths; a "clear"
# label above this carries cirrus itself (the clear dates of
# ROIs1970_fall_136 sit at 0.044 while their cloudy dates read 0.003-0.015),
# so its B10 teaches nothing right and gets no loss weight.
CIRRUS_LABEL_MAX = 0.01

# SEN12MS-CR-TS dates of ROI 146 by image number (see shared/data/PROVENANCE.md).
TS_CLEAR = {3, 9, 12, 13, 14, 16, 17, 18, 19, 20, 22, 23, 24}
TS_CLOUDY = {0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 15, 21, 25, 26, 27, 28, 29}


def read_bands(path: str) -> np.ndarray:
    """(13, H, W) uint16, with GDAL when Python has it, else tifffile."""
    try:
        from osgeo import gdal

        ds = gdal.Open(path)
        if ds is None:
            raise FileNotFoundError(path)
        return ds.ReadAsArray()
    except ImportError:
        import tifffile

        arr = tifffile.imread(path)
        return np.moveaxis(arr, -1, 0) if arr.shape[-1] == 13 else arr


def area_average(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of (bands, H, W), cropping H and W to multiples of f."""
    if f == 1:
        return x
    b, h, w = x.shape
    h, w = h - h % f, w - w % f
    return x[:, :h, :w].reshape(b, h // f, f, w // f, f).mean(axis=(2, 4))


def to_group(raw: np.ndarray, group: str) -> np.ndarray:
    """13-band DN image -> the group's bands as reflectance on the group's grid."""
    bands, f = GROUPS[group]
    idx = [SEN12MS_BANDS.index(b) for b in bands]
    return area_average(raw[idx].astype(np.float32) / 10000.0, f).astype(np.float32)


def scene_of(name: str) -> str:
    """ROIs1970_fall_s2_cloudy_136_p139.tif -> ROIs1970_fall_136;
    ROIs1970_fall_139_p839.tif (sen12mscr_glfcr) -> ROIs1970_fall_139;
    s2_ROIs2017_146_ImgNo_3_... -> ROIs2017_146."""
    m = re.match(r"(ROIs\d+_[a-z]+)(?:_s2(?:_cloudy)?)?_(\d+)_p\d+", name)
    if m:
        return f"{m.group(1)}_{m.group(2)}"
    m = re.match(r"s2_(ROIs\d+_\d+)_ImgNo", name)
    if m:
        return m.group(1)
    raise ValueError(f"cannot tell the scene of {name}")


def label_weights(clear: np.ndarray, group: str) -> np.ndarray | None:
    """Per-band loss weights of a pair: 0 for a B10 label with cirrus."""
    bands = GROUPS[group][0]
    if "B10" not in bands:
        return None
    w = np.ones(len(bands), np.float32)
    k = bands.index("B10")
    if float(clear[k].mean()) > CIRRUS_LABEL_MAX:
        w[k] = 0.0
    return w


def load_s2(pairs_root: str, ts_root: str | None, group: str) -> list[Pair]:
    pairs = _load_s2(pairs_root, ts_root, group)
    for p in pairs:
        p.band_weight = label_weights(p.clear_raw, group)
    return pairs


def load_s2_l1c(pairs_root: str, ts_root: str | None) -> list[Pair]:
    """The same pairs as `load_s2`, in the same order, with all 13 bands as
    reflectance on the 10 m grid (for a detector that needs every band)."""
    return _load_s2(pairs_root, ts_root, None)


def _load_s2(pairs_root: str, ts_root: str | None, group: str | None) -> list[Pair]:
    def convert(raw: np.ndarray) -> np.ndarray:
        return (raw.astype(np.float32) / 10000.0) if group is None else to_group(raw, group)

    pairs: list[Pair] = []
    with open(os.path.join(pairs_root, "pairs.csv")) as f:
        for r in csv.DictReader(f):
            cloudy = convert(read_bands(os.path.join(pairs_root, r["cloudy"])))
            clear = convert(read_bands(os.path.join(pairs_root, r["clear"])))
            name = os.path.basename(r["clear"])
            pairs.append(Pair(os.path.splitext(name)[0], scene_of(name), cloudy, clear, 1.0))
    if ts_root:
        d = os.path.join(ts_root, "s2")
        by_no = {}
        for name in sorted(os.listdir(d)):
            m = re.search(r"ImgNo_(\d+)_", name)
            if m:
                by_no[int(m.group(1))] = name
        images = {k: convert(read_bands(os.path.join(d, v))) for k, v in by_no.items()}
        clear_nos = sorted(k for k in by_no if k in TS_CLEAR)
        for k in sorted(by_no):
            name = by_no[k]
            if k in TS_CLOUDY and clear_nos:
                c = min(clear_nos, key=lambda j: (abs(j - k), j))
                pairs.append(Pair(f"ts{k}_vs_ts{c}", scene_of(name), images[k], images[c], 1.0))
            elif k in TS_CLEAR:
                pairs.append(Pair(f"ts{k}_clear", scene_of(name), images[k], images[k], 1.0))
    return pairs


# A quick-look's display gain: reflectance 0.29 shows as white, about what
# users' true-colour Sentinel-2 composites use (0..0.3 -> 0..255).
QUICKLOOK_GAIN = 3.5


def quicklook(reflectance_10m: np.ndarray) -> np.ndarray:
    """The 10 m group's (B2, B3, B4, B8) reflectance -> true-colour (B4, B3,
    B2) 8-bit quick-look, (3, H, W) uint8."""
    rgb = reflectance_10m[[2, 1, 0]] * QUICKLOOK_GAIN
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def load_s2_rgb(pairs_root: str, ts_root: str | None = None) -> list[Pair]:
    """The Sentinel-2 pairs of `load_s2(..., "10m")` as 8-bit true-colour
    quick-looks in RGB model units (value / 255), for an RGB model that
    should also know top-of-atmosphere colours (a blue floor from the
    atmosphere's own scattering, which RICE2's tiles lack). Ids are prefixed
    "s2:"; blocks stay the scenes, so `DEFAULT_VAL_SCENES` splits them."""
    out = []
    for p in load_s2(pairs_root, ts_root, "10m"):
        out.append(Pair(f"s2:{p.id}", p.block, quicklook(p.cloudy_raw), quicklook(p.clear_raw), 1.0 / 255.0))
    return out


def s2_rgb_clear(pairs: list[Pair]) -> list[Pair]:
    """The distinct clear quick-looks of `load_s2_rgb`'s pairs as clear-only
    pairs (`Pair.clear_only`): ground in top-of-atmosphere colours for
    synthetic clouds and identity samples, without the real pairs' date
    changes. Ids become "s2clear:" + the clear image's content hash (two
    pairs may share a clear date)."""
    import hashlib

    out, seen = [], set()
    for p in pairs:
        key = hashlib.sha1(p.clear_raw.tobytes()).hexdigest()[:16]
        if key in seen:
            continue
        seen.add(key)
        out.append(Pair(f"s2clear:{key}", p.block, p.clear_raw, p.clear_raw, p.scale, clear_only=True))
    return out
