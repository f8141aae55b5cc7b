"""Sentinel-2 training data: scene names, area averaging, group extraction,
time-series pairing and the split by scene."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfcr_train.data.pairs import split_by_block  # noqa: E402
from idfcr_train.data.s2 import (  # noqa: E402
    GROUPS, QUICKLOOK_GAIN, SEN12MS_BANDS, area_average, load_s2, load_s2_l1c, load_s2_rgb, quicklook, s2_rgb_clear,
    scene_of, to_group)


@pytest.mark.parametrize("name,scene", [
    ("ROIs1970_fall_s2_cloudy_136_p139.tif", "ROIs1970_fall_136"),
    ("ROIs1970_fall_s2_136_p139.tif", "ROIs1970_fall_136"),
    ("ROIs1868_summer_s2_31_p100.tif", "ROIs1868_summer_31"),
    ("ROIs1970_fall_139_p839.tif", "ROIs1970_fall_139"),  # sen12mscr_glfcr's naming
    ("s2_ROIs2017_146_ImgNo_3_2018-02-10_patch_0.tif", "ROIs2017_146"),
])
def test_scene_names(name, scene):
    assert scene_of(name) == scene


def test_scene_name_unknown():
    with pytest.raises(ValueError):
        scene_of("random.tif")


def test_area_average_is_the_block_mean():
    x = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    y = area_average(x, 2)
    assert y.shape == (2, 3, 3)  # the odd last column is dropped
    assert y[1, 2, 1] == x[1, 4:6, 2:4].mean()
    assert area_average(x, 1) is x


@pytest.mark.parametrize("group,shape", [("10m", (4, 12, 12)), ("20m", (6, 6, 6)), ("60m", (3, 2, 2)), ("60m_l2a", (2, 2, 2))])
def test_groups_pick_bands_by_name_as_reflectance(group, shape):
    # Band k holds DN 1000 * (k + 1): the group's values say which bands it took.
    raw = np.stack([np.full((12, 12), 1000 * (k + 1), np.uint16) for k in range(13)])
    g = to_group(raw, group)
    assert g.shape == shape and g.dtype == np.float32
    want = [0.1 * (SEN12MS_BANDS.index(b) + 1) for b in GROUPS[group][0]]
    np.testing.assert_allclose(g[:, 0, 0], want, rtol=1e-6)


def _write(path, arr):
    from osgeo import gdal

    ds = gdal.GetDriverByName("GTiff").Create(path, arr.shape[2], arr.shape[1], arr.shape[0], gdal.GDT_UInt16)
    for k in range(arr.shape[0]):
        ds.GetRasterBand(k + 1).WriteArray(arr[k])
    ds = None


def test_load_pairs_time_series_and_split_by_scene(tmp_path):
    pytest.importorskip("osgeo")
    rng = np.random.default_rng(0)
    pr = tmp_path / "pairs"
    (pr / "s2").mkdir(parents=True)
    (pr / "s2_cloudy").mkdir()
    rows = ["cloudy,clear,oriolac_tag"]
    for roi, n in (("ROIs1970_fall", 136), ("ROIs1158_spring", 39)):
        c = f"s2_cloudy/{roi}_s2_cloudy_{n}_p1.tif"
        g = f"s2/{roi}_s2_{n}_p1.tif"
        _write(str(pr / c), rng.integers(1, 5000, (13, 12, 12)).astype(np.uint16))
        _write(str(pr / g), rng.integers(1, 5000, (13, 12, 12)).astype(np.uint16))
        rows.append(f"{c},{g},ok")
    (pr / "pairs.csv").write_text("\n".join(rows) + "\n")
    ts = tmp_path / "ts"
    (ts / "s2").mkdir(parents=True)
    for k in (2, 3, 9, 10):  # 3 and 9 clear, 2 and 10 cloudy
        _write(str(ts / "s2" / f"s2_ROIs2017_146_ImgNo_{k}_2018-01-01_patch_0.tif"),
               np.full((13, 12, 12), 100 * k, np.uint16))
    pairs = load_s2(str(pr), str(ts), "10m")
    ids = sorted(p.id for p in pairs if p.block == "ROIs2017_146")
    assert ids == ["ts10_vs_ts9", "ts2_vs_ts3", "ts3_clear", "ts9_clear"]
    ts10 = next(p for p in pairs if p.id == "ts10_vs_ts9")
    assert ts10.cloudy[0, 0, 0] == pytest.approx(0.1) and ts10.clear[0, 0, 0] == pytest.approx(0.09)
    train, val = split_by_block(pairs, {"ROIs1158_spring_39"})
    assert [p.block for p in val] == ["ROIs1158_spring_39"]
    assert all(p.block != "ROIs1158_spring_39" for p in train)
    # The same pairs with all 13 bands (what s2cloudless reads), in the same order.
    full = load_s2_l1c(str(pr), str(ts))
    assert [(p.id, p.block) for p in full] == [(p.id, p.block) for p in pairs]
    assert full[0].cloudy.shape == (13, 12, 12)
    np.testing.assert_allclose(full[0].cloudy[[1, 2, 3, 7]], pairs[0].cloudy)
    # The same pairs as 8-bit true-colour quick-looks for RGB models.
    rgb = load_s2_rgb(str(pr), str(ts))
    assert [(p.id, p.block) for p in rgb] == [("s2:" + p.id, p.block) for p in pairs]
    assert rgb[0].cloudy_raw.dtype == np.uint8 and rgb[0].cloudy.shape == (3, 12, 12)
    np.testing.assert_allclose(rgb[0].cloudy, np.clip(pairs[0].cloudy[[2, 1, 0]] * QUICKLOOK_GAIN, 0, 1), atol=0.5 / 255)
    # Their clear images alone, once each (pairs that share a clear date give one), as clear-only pairs.
    clear = s2_rgb_clear(rgb)
    distinct = {p.clear_raw.tobytes() for p in rgb}
    assert len(clear) == len(distinct) and len(clear) < len(rgb)
    assert all(p.clear_only and p.cloudy_raw is p.clear_raw for p in clear)
    assert {p.clear_raw.tobytes() for p in clear} == distinct
    assert {p.block for p in clear} == {p.block for p in rgb}


@pytest.mark.parametrize("refl,want", [
    # reflectance (B2, B3, B4, B8) -> 8-bit (red, green, blue): B4 first, saturating above 1 / gain, B8 unused
    ((0.0, 0.0, 0.0, 0.5), (0, 0, 0)),
    ((0.1, 0.16, 0.05, 0.5), (45, 143, 89)),
    ((0.3, 0.29, 1.2, 0.0), (255, 255, 255)),
])
def test_quicklook_is_true_colour_at_the_display_gain(refl, want):
    x = np.array(refl, np.float32).reshape(4, 1, 1)
    assert tuple(int(v) for v in quicklook(x)[:, 0, 0]) == want


@pytest.mark.parametrize("i,ratio,size,want", [
    # (fine pixel, fine px / map px, map size) -> (lower, upper, weight),
    # the same table as src/tiling/probability.rs
    (0, 1 / 6, 4, (0, 1, 0.0)),
    (3, 1 / 6, 4, (0, 1, 0.0833333)),
    (6, 1 / 6, 4, (0, 1, 0.5833333)),
    (23, 1 / 6, 4, (3, 3, 0.0)),
    (5, 1.0, 8, (5, 6, 0.0)),
    (1, 0.5, 4, (0, 1, 0.25)),
])
def test_s2cloudless_map_sampling_matches_the_runtime(i, ratio, size, want):
    from idfcr_train.reports.s2_detectors import sample_bilinear

    m = np.zeros((1, size), np.float32)
    m[0, want[0]] = 1.0  # the lower neighbour alone: sample = 1 - weight
    got = sample_bilinear(m, 1, i + 1, ratio)[0, i]
    expect = (1.0 - want[2]) + (want[2] if want[1] == want[0] else 0.0)
    assert got == pytest.approx(expect, abs=1e-5)
    assert sample_bilinear(np.zeros((3, size), np.float32), 2, i + 1, ratio).max() == 0.0
