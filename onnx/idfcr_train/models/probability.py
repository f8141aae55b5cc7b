"""The cloud probability that decides where a model's output replaces the
input: output = p x model + (1 - p) x input (the Rust pipeline blends in
raster units, so where p is exactly 0 the input comes back bit for bit).

p comes from the network's cloudy-attention map `a`, calibrated and
feathered inside the exported graph (so tiling stays exact, and the halo
measured at export covers the feathering):

    p = blur_s( dilate_r( clip((a - t0) / (t1 - t0), 0, 1) ) )

- below `t0` the model found no cloud: p is exactly 0 there;
- `dilate_r` (a max filter of radius r) keeps cloud edges, which the
  attention map tends to miss, inside p = 1;
- `blur_s` (a box mean of radius s) feathers p so that no seam shows
  between blended and untouched pixels. A mean of zeros is exactly 0, so
  pixels farther than r + s from any detection stay untouched.

The four numbers are chosen on validation images by `calibrate.py` and
stored in the checkpoint ("probability") and the model card.

`shape="round"` (the RGB model since 0.4) replaces the square max filter
and box mean, whose square patches showed on the contact sheets, with three
box means of radius rb = ceil((dilate + blur) / 3) (close to a Gaussian:
round iso-lines) and a gain that keeps p = 1 up to `dilate` px beyond a
detection's edge:

    p = clip(k x B_rb(B_rb(B_rb(d))), 0, 1),  k = 1 / (kernel weight beyond dilate)

Still exactly 0 farther than 3 rb from any detection (`feather_reach`). `source="detector"`:
`a` comes from the dedicated cloud detector (models/detector.py), not the
attention head.

`att_t0`/`att_t1` (with the detector as source): the model's own
cloudy-attention map as a second cue, with its own ramp, joined by max
before the feathering:

    d = max(clip((a - t0) / (t1 - t0)), clip((att - att_t0) / (att_t1 - att_t0)))

The detector misses thin cirrus over dark sea (RICE2 block 9: it says
0.14-0.19 there, less than on clear river banks), which the Pixel-CR
attention head, trained on the same real pairs with presence targets,
finds at 0.3-0.5 while staying near 0.05 on clear sea.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from idfcr_train.models.detector import detector_map
from idfcr_train.models.scales import window_of


# src/tiling/probability.rs Calibration::MAX_RADIUS_PX.
RUNTIME_MAX_RADIUS_PX = 64


@dataclass
class Calibration:
    t0: float = 0.3
    t1: float = 0.6
    dilate_px: int = 4
    blur_px: int = 8
    shape: str = "box"  # "box" (max filter + box mean) or "round" (one Gaussian)
    source: str = "attention"  # "attention" (the model's head) or "detector"
    # With source "detector": the model's attention as a second cue (None: off).
    att_t0: float | None = None
    att_t1: float | None = None

    def to_dict(self) -> dict:
        # Without the second cue the dict is what it was before it existed.
        return {k: v for k, v in asdict(self).items() if v is not None or not k.startswith("att_")}

    @staticmethod
    def from_dict(d: dict) -> "Calibration":
        return Calibration(**d)

    @staticmethod
    def from_runtime_text(text: str, **kw) -> "Calibration":
        """`t0,t1,dilate_px,blur_px`, the form of a model's
        `idfcr.detector_calibration`, checked by the runtime's rules
        (src/tiling/probability.rs, Calibration::parse); ValueError if not."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4:
            raise ValueError(f"{text}: want T0,T1,DILATE,BLUR")
        t0, t1, d, b = float(parts[0]), float(parts[1]), int(parts[2]), int(parts[3])
        if not (0 <= t0 < t1 <= 1) or not (0 <= d <= RUNTIME_MAX_RADIUS_PX and 0 <= b <= RUNTIME_MAX_RADIUS_PX):
            raise ValueError(f"{text}: need 0 <= T0 < T1 <= 1 and radii 0..{RUNTIME_MAX_RADIUS_PX}")
        return Calibration(t0=t0, t1=t1, dilate_px=d, blur_px=b, **kw)

    def runtime_text(self) -> str:
        """The `t0,t1,dilate_px,blur_px` form (float noise such as
        0.30000000000000004 printed as 0.3)."""
        return f"{self.t0:g},{self.t1:g},{self.dilate_px},{self.blur_px}"


def _ramp(a: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    return ((a - t0) / max(t1 - t0, 1e-6)).clamp(0.0, 1.0)


def detection(att: torch.Tensor, cal: Calibration, attention: torch.Tensor | None = None) -> torch.Tensor:
    """The ramped map before feathering: `att`'s ramp, joined by max with
    the model's `attention` ramp when the calibration names one."""
    d = _ramp(att, cal.t0, cal.t1)
    if cal.att_t0 is not None:
        assert attention is not None and cal.att_t1 is not None, "this calibration also reads the model's attention"
        d = torch.maximum(d, _ramp(attention, cal.att_t0, cal.att_t1))
    return d


def cloud_probability(att: torch.Tensor, cal: Calibration, cache: dict | None = None,
                      attention: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, H, W) attention in [0, 1] -> calibrated, feathered p in [0, 1].
    `attention`: the model's own map, read when `cal.att_t0` is set.

    `cache` (calibration grids only): round feathering of the same maps with
    the same thresholds and box radius is computed once; only the gain differs."""
    if cal.shape == "round" and cache is not None:
        key = (id(att), cal.t0, cal.t1, id(attention), cal.att_t0, cal.att_t1,
               _round_radius(cal.dilate_px, cal.blur_px))
        if key not in cache:
            cache[key] = _round_feather(detection(att, cal, attention), 0, cal.dilate_px + cal.blur_px, gain=False)
        return (_round_gain(cal.dilate_px, cal.blur_px) * cache[key]).clamp(0.0, 1.0)
    p = detection(att, cal, attention)
    if cal.shape == "round":
        return _round_feather(p, cal.dilate_px, cal.blur_px)
    assert cal.shape == "box", f"unknown feathering shape {cal.shape!r}"
    # Both filters are separable (rows, then columns): the same result as
    # the square window, at 2k instead of k^2 operations per pixel.
    if cal.dilate_px > 0:
        r = cal.dilate_px
        p = F.max_pool2d(p, (1, 2 * r + 1), stride=1, padding=(0, r))
        p = F.max_pool2d(p, (2 * r + 1, 1), stride=1, padding=(r, 0))
    if cal.blur_px > 0:
        s = cal.blur_px
        # count_include_pad=False: at an image edge the mean is over real
        # pixels only, so p does not fade towards the border.
        p = F.avg_pool2d(p, (1, 2 * s + 1), stride=1, padding=(0, s), count_include_pad=False)
        p = F.avg_pool2d(p, (2 * s + 1, 1), stride=1, padding=(s, 0), count_include_pad=False)
    return p.clamp(0.0, 1.0)


def _box3_kernel(rb: int) -> torch.Tensor:
    """The 1-D kernel of three box means of radius rb (length 6 rb + 1)."""
    box = torch.ones(2 * rb + 1, dtype=torch.float64) / (2 * rb + 1)
    k = box
    for _ in range(2):
        k = torch.nn.functional.conv1d(k.view(1, 1, -1), box.flip(0).view(1, 1, -1), padding=2 * rb).view(-1)
    return k


def _round_radius(dilate_px: int, blur_px: int) -> int:
    """Box radius of each of the three passes: their support, 3 x radius,
    covers dilate + blur."""
    return max(1, -(-(dilate_px + blur_px) // 3))


def feather_reach(cal: Calibration) -> int:
    """How far (px) p can reach beyond a detection: the tile halo it adds."""
    if cal.shape == "round":
        return 0 if cal.dilate_px + cal.blur_px <= 0 else 3 * _round_radius(cal.dilate_px, cal.blur_px)
    return cal.dilate_px + cal.blur_px


def _round_gain(dilate_px: int, blur_px: int) -> float:
    # Three box means of a straight edge leave, at distance x outside it,
    # the kernel's weight beyond x: p reaches 1 at x = dilate.
    if dilate_px + blur_px <= 0:
        return 1.0
    k = _box3_kernel(_round_radius(dilate_px, blur_px))
    return float(1.0 / k[len(k) // 2 + dilate_px:].sum())


def _round_feather(d: torch.Tensor, dilate_px: int, blur_px: int, gain: bool = True) -> torch.Tensor:
    if dilate_px + blur_px <= 0:
        return d
    rb = _round_radius(dilate_px, blur_px)
    p = d
    # Three separable box means approach a Gaussian (round iso-lines, no
    # square patches) with exactly zero beyond 3 x rb; count_include_pad=
    # False: at an image edge the mean is over real pixels only.
    for _ in range(3):
        p = F.avg_pool2d(p, (1, 2 * rb + 1), stride=1, padding=(0, rb), count_include_pad=False)
        p = F.avg_pool2d(p, (2 * rb + 1, 1), stride=1, padding=(rb, 0), count_include_pad=False)
    return (_round_gain(dilate_px, blur_px) * p).clamp(0.0, 1.0) if gain else p


class WithProbability(nn.Module):
    """A Pixel-CR model whose second output is the calibrated probability
    instead of the raw attention map (what `export/pixel_cr.py` writes)."""

    def __init__(self, model: nn.Module, cal: Calibration, detector: nn.Module | None = None):
        super().__init__()
        assert (detector is not None) == (cal.source == "detector"), "calibration source and detector disagree"
        self.model = model
        self.detector = detector
        self.cal = cal
        self.cfg = model.cfg
        # Tiles keep the wrapped graph's multiple (a half-scale run doubles it).
        self.window_px = window_of(model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clear, att = self.model(x)
        if self.detector is not None:
            # A blend gate (training/train_gate.py) also reads what the model did.
            return clear, cloud_probability(detector_map(self.detector, x, clear, att), self.cal, attention=att)
        return clear, cloud_probability(att, self.cal)


def blend(cloudy, pred, p):
    """p x pred + (1 - p) x cloudy, where p == 0 gives cloudy exactly."""
    return cloudy + p * (pred - cloudy)
