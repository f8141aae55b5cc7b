"""Real clouds in top-of-atmosphere colours, labelled by s2cloudless.

The RGB detector's only real clouds were RICE2's, labelled by the difference
to a clear image of another date (a field that changed crop counts as cloud)
and seen in RICE2's one dim palette. A user's true-colour Landsat 8 or
Sentinel-2 crop has the atmosphere's blue floor and is often stretched
(the Landsat 8 demo: a 1-99 % stretch); there the detector fires on clear,
pale ground.

Here every SEN12MS-CR image (cloudy and clear dates, pairs and time series)
becomes a true-colour quick-look (`data.s2.quicklook`, what the RGB model
sees) with a per-pixel target from s2cloudless run on all its L1C bands: a
detector that sees ten bands, including cirrus and the short-wave infrared,
labels cloud and haze on images where the RGB detector must learn to see
them from three. s2cloudless is itself a classifier with errors (it flags
some bright ground), so the target is a ramp around its own threshold, not
a truth; `teacher_target` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from idfcr_train.data.pairs import split_by_block

# s2cloudless's threshold for its pixel probability (the library's default
# 0.4) maps to target 0.5, the RGB detector's own decision point; below 0.2
# (what it gives clear ground) the target is 0, above 0.6 it is 1.
TEACHER_LO, TEACHER_HI = 0.2, 0.6
# A designated clear image that s2cloudless flags over more than this share
# is left out: the dataset's curators saw clear ground and s2cloudless sees
# cirrus (the clear dates of ROIs1970_fall_136 carry B10 reflectance 0.044),
# which three visible bands cannot show. A label the input cannot support
# would teach the detector to flag clear ground.
CLEAR_DISAGREEMENT_MAX = 0.5


@dataclass
class TeacherImage:
    """One quick-look (3, H, W) in 0..1 and its target (H, W) in 0..1."""
    id: str
    block: str
    rgb: np.ndarray
    target: np.ndarray


def teacher_target(prob: np.ndarray) -> np.ndarray:
    """s2cloudless probability -> detector target: 0 below TEACHER_LO, 1
    above TEACHER_HI, linear between."""
    return np.clip((prob - TEACHER_LO) / (TEACHER_HI - TEACHER_LO), 0.0, 1.0).astype(np.float32)


def quicklook_l1c(l1c13: np.ndarray) -> np.ndarray:
    """(13, H, W) reflectance -> the 8-bit quick-look's values / 255, (3, H, W)
    float: the same picture `data.s2.quicklook` makes from the 10 m group."""
    from idfcr_train.data.s2 import SEN12MS_BANDS, quicklook

    ten_m = l1c13[[SEN12MS_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]]
    return quicklook(ten_m).astype(np.float32) / 255.0


def load_teacher_images(pairs_root: str, ts_root: str | None, model_path: str,
                        val_scenes: str | None = None, threads: int = 1
                        ) -> tuple[list[TeacherImage], list[TeacherImage]]:
    """(training, validation) quick-looks with s2cloudless targets, split by
    scene. Every distinct image once: a clear date shared by several pairs
    (the time series) is not repeated; a clear image s2cloudless calls
    cloudy is left out (`CLEAR_DISAGREEMENT_MAX`)."""
    from idfcr_train.data.s2 import DEFAULT_VAL_SCENES, load_s2_l1c
    from idfcr_train.models.s2cloudless import S2Cloudless

    det = S2Cloudless(model_path, threads)
    pairs = load_s2_l1c(pairs_root, ts_root)
    train, val = split_by_block(pairs, set((val_scenes or DEFAULT_VAL_SCENES).split(",")))

    def images(ps) -> list[TeacherImage]:
        out, seen = [], set()
        for p in ps:
            for tag, img in (("cloudy", p.cloudy), ("clear", p.clear)):
                key = (p.block, img.tobytes()[:4096], float(img.sum()))
                if key in seen:
                    continue
                seen.add(key)
                t = teacher_target(det(img))
                if tag == "clear" and float((t > 0.5).mean()) > CLEAR_DISAGREEMENT_MAX:
                    continue
                out.append(TeacherImage(f"{p.id}:{tag}", p.block, quicklook_l1c(img), t))
        return out

    return images(train), images(val)
