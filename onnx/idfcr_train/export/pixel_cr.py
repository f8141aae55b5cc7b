"""Export Pixel-CR to ONNX with its contract in the metadata, and check it.

    python -m idfcr_train.export.pixel_cr --ckpt checkpoints/pixel_cr_rgb.pt \
        --out models/pixel_cr_rgb.onnx --scores models/pixel_cr_rgb.scores.json

The contract (keys in onnx/contract_keys.json, checked by contract.py; read
by the Rust runtime, see src/models/contract.rs):
    idfcr.name, idfcr.version, idfcr.bands, idfcr.band_names,
    idfcr.input_scale, idfcr.input_offset   model = (pixel + offset) * scale
    idfcr.window_px                         H and W multiples of this
    idfcr.halo_px                           how far a tile border disturbs the output (measured)
    idfcr.outputs                           "clear,attention"
    idfcr.input_range                       "lo,hi": nominal raster values of the training data
    idfcr.detector_calibration              "t0,t1,dilate,blur": how the runtime calibrates s2cloudless
                                            for this model (Sentinel-2 groups; --detector-calibration)
    idfcr.probability, idfcr.calibration    "calibrated" and its parameters, when the checkpoint
                                            holds a calibration (calibrate.py): the second output
                                            is then the cloud probability p the runtime blends by
plus free-form idfcr.training_data, idfcr.scores.

Opset 17, TorchScript exporter (one self-contained file), dynamic batch,
height and width.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
import torch

from idfcr_train.export.contract import check as check_contract
from idfcr_train.models import ensemble, scales
from idfcr_train.models.pixel_cr import PixelCR, load_checkpoint
from idfcr_train.models.probability import Calibration, WithProbability, feather_reach
from idfcr_train import REPO_ROOT

INPUT = "cloudy"
OUTPUTS = ("clear", "attention")


@torch.no_grad()
def measure_halo(model: PixelCR, *, trials: int = 2, tol: float = 1e-5, seed: int = 0,
                 bands: int | None = None, window: int | None = None, span: int = 1) -> int:
    """How far (px) a crop border changes the output: run on a big input and
    on window-aligned crops of it, and find the deepest pixel (distance from
    the crop border) whose output differs by more than `tol`. A module with
    one output (the cloud detector) gets `bands` and `window` given; `span`
    scales the test image for models that reach farther (a blend gate adds
    its reach to the network's)."""
    w = window or scales.window_of(model)
    bands = bands or model.cfg.in_bands
    if not isinstance(model(torch.zeros(1, bands, 2 * w, 2 * w)), tuple):
        one = model
        model = lambda x: (one(x), one(x)[:, :1])  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    # Big enough for the feathering of the calibrated probability (up to
    # 32 px beyond the network's own reach).
    span = max(span, context_span(model, w))
    size, crop0, crop = 24 * w * span, 6 * w * span, 12 * w * span
    worst = 0
    for _ in range(trials):
        x = torch.rand(1, bands, size, size, generator=gen)
        full, fa = model(x)
        part, pa = model(x[:, :, crop0 : crop0 + crop, crop0 : crop0 + crop])
        ref = full[:, :, crop0 : crop0 + crop, crop0 : crop0 + crop]
        refa = fa[:, :, crop0 : crop0 + crop, crop0 : crop0 + crop]
        diff = torch.maximum((part - ref).abs().amax(1), (pa - refa).abs().amax(1))[0]
        ys, xs = torch.nonzero(diff > tol, as_tuple=True)
        if len(ys):
            d = torch.minimum(torch.minimum(ys, crop - 1 - ys), torch.minimum(xs, crop - 1 - xs))
            worst = max(worst, int(d.max()) + 1)
    assert worst < crop // 2, f"halo {worst} px reaches the centre of a {crop} px crop: the model is not local"
    return worst


def context_span(model, w: int) -> int:
    """The test image's scale for `measure_halo` when `model` holds a
    context branch (models/context.py): its convolutions reach about
    `reach_px` beyond the windows, twice that through a half-scale run, and
    the crop's half must exceed the whole reach."""
    from idfcr_train.models.context import ContextBranch, reach_px

    modules = model.modules() if isinstance(model, torch.nn.Module) else []
    reach = max((reach_px(m.factor, m.dilations) for m in modules if isinstance(m, ContextBranch)), default=0)
    return 1 + math.ceil(2 * reach / (6 * w)) if reach else 1


def per_head_attention(model: torch.nn.Module) -> None:
    """Exported graphs compute window attention one head at a time: the same
    numbers with a third of the peak memory (see WindowAttention.per_head)."""
    from idfcr_train.models.pixel_cr import WindowAttention

    for m in model.modules():
        if isinstance(m, WindowAttention):
            m.per_head = True


def export_onnx(model: PixelCR, path: str, metadata: dict[str, str], *, opset: int = 17) -> None:
    check_contract(metadata, "pixel_cr")
    model.eval()
    w = scales.window_of(model)
    dummy = torch.rand(1, model.cfg.in_bands, 2 * w, 3 * w)
    tmp = path + ".tmp"
    kwargs = dict(
        input_names=[INPUT],
        output_names=list(OUTPUTS),
        dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"},
                      OUTPUTS[0]: {0: "batch", 2: "height", 3: "width"},
                      OUTPUTS[1]: {0: "batch", 2: "height", 3: "width"}},
        opset_version=opset,
        do_constant_folding=True,
    )
    try:
        torch.onnx.export(model, (dummy,), tmp, dynamo=False, **kwargs)
    except TypeError:  # torch < 2.5 has no `dynamo` argument
        torch.onnx.export(model, (dummy,), tmp, **kwargs)
    import onnx

    m = onnx.load(tmp)
    del m.metadata_props[:]
    for k, v in metadata.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    m.producer_name = "idfcr"
    onnx.save(m, path)
    os.remove(tmp)
    for side in (tmp + ".data",):
        if os.path.exists(side):
            os.remove(side)


@torch.no_grad()
def parity(model: PixelCR, path: str, *, h: int | None = None, w: int | None = None, seed: int = 1) -> float:
    """Max |PyTorch - onnxruntime| over both outputs on random input."""
    import onnxruntime as ort

    win = scales.window_of(model)
    h, w = h or 3 * win, w or 5 * win
    x = torch.rand(1, model.cfg.in_bands, h, w, generator=torch.Generator().manual_seed(seed))
    ref = model(x)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(list(OUTPUTS), {INPUT: x.numpy()})
    return max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got))


def contract(model: PixelCR, *, name: str, version: str, band_names: list[str], input_scale: float,
             input_offset: float = 0.0, halo_px: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    cfg = model.cfg
    assert len(band_names) == cfg.in_bands, f"{len(band_names)} band names for {cfg.in_bands} bands"
    meta = {
        "idfcr.name": name,
        "idfcr.version": version,
        "idfcr.bands": str(cfg.in_bands),
        "idfcr.band_names": ",".join(band_names),
        "idfcr.input_scale": repr(float(input_scale)),
        "idfcr.input_offset": repr(float(input_offset)),
        "idfcr.window_px": str(scales.window_of(model)),
        "idfcr.halo_px": str(halo_px),
        "idfcr.outputs": ",".join(OUTPUTS),
        "idfcr.config": json.dumps(cfg.to_dict()),
    }
    meta.update(extra or {})
    return meta


def detector_calibration(text: str) -> str:
    """`t0,t1,dilate,blur` checked by the runtime's rules
    (src/tiling/probability.rs, Calibration::parse), normalised."""
    try:
        return Calibration.from_runtime_text(text).runtime_text()
    except ValueError as e:
        raise SystemExit(f"--detector-calibration {e}") from None


def write_reference(onnx_path: str, out_dir: str, name: str, bands: int, h: int, w: int, seed: int,
                    extra: dict | None = None) -> None:
    """Random input and Python onnxruntime's outputs for `onnx_path`, as
    NAME.{input,clear,attention}.bin (float32 LE) and NAME.ref.json."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).random((1, bands, h, w), dtype=np.float32)
    clear, att = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(list(OUTPUTS), {INPUT: x})
    for suffix, arr in (("input", x), ("clear", clear), ("attention", att)):
        arr.astype("<f4").tofile(os.path.join(out_dir, f"{name}.{suffix}.bin"))
    with open(os.path.join(out_dir, f"{name}.ref.json"), "w") as f:
        json.dump({"input_shape": list(x.shape), "clear_shape": list(clear.shape),
                   "attention_shape": list(att.shape), **(extra or {})}, f, indent=1)
        f.write("\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="pixel_cr_rgb")
    ap.add_argument("--version", default="1")
    ap.add_argument("--band-names", default="red,green,blue")
    ap.add_argument("--input-scale", type=float, default=1 / 255)
    ap.add_argument("--input-offset", type=float, default=0.0)
    ap.add_argument("--input-range", default="0,255",
                    help="nominal raster values of the training data, lo,hi (8-bit RGB 0,255; Sentinel-2 DN 0,10000)")
    ap.add_argument("--scores", help="JSON file with validation scores to embed")
    ap.add_argument("--training-data", default="RICE2 (rice2_3s), scene blocks 0,1,4,5,6,8 + synthetic clouds")
    ap.add_argument("--detector-calibration", metavar="T0,T1,DILATE,BLUR",
                    help="how the runtime calibrates s2cloudless's map (60 m px) for this model's blend "
                         "(idfcr.detector_calibration; reports.s2_detectors measures it); absent: the runtime's default")
    ap.add_argument("--shifts", default=None, metavar="DY,DX;...",
                    help="run the network at these shifts too and average the clear outputs (a shift ensemble, "
                         "models/ensemble.py; e.g. '8,8': fewer window borders, twice the compute); the attention "
                         "and so the calibrated probability stay the unshifted run's")
    ap.add_argument("--shifted-ckpt", default=None, metavar="CKPT",
                    help="with --shifts: run this checkpoint's network (same architecture) at the shifts instead of "
                         "--ckpt's; the unshifted run, its attention and --ckpt's calibration stay --ckpt's")
    ap.add_argument("--half-scale", default=None, metavar="WEIGHT[,SIGMA]",
                    help="take the clear output's low frequencies (Gaussian, SIGMA px, default 2) from a run at half "
                         "resolution, by WEIGHT (models/scales.py): more context for thick cloud, a quarter more "
                         "compute, tiles multiples of twice the window; the attention stays the full-resolution run's")
    ap.add_argument("--ref-dir", default=os.path.join(REPO_ROOT, "testdata", "models"),
                    help="where to write the Python reference input/outputs the Rust parity test reads")
    args = ap.parse_args(argv)
    ensemble.check_options(args.shifts, args.shifted_ckpt)

    model, state = load_checkpoint(args.ckpt)
    extra = {"idfcr.training_data": args.training_data, "idfcr.training_steps": str(state["step"]),
             "idfcr.training_hours": f"{state['wall_s'] / 3600:.2f}", "idfcr.input_range": args.input_range}
    if args.shifts:
        model, other = ensemble.from_options(model, args.shifts, args.shifted_ckpt)
        if other is not None:
            extra["idfcr.shifted_training_steps"] = str(other["step"])
            # A second network trained on from the first's weights carries the
            # first's hours in its own clock: the longer clock is the total.
            extra["idfcr.training_hours"] = f"{max(state['wall_s'], other['wall_s']) / 3600:.2f}"
        extra["idfcr.shift_ensemble"] = ";".join(f"{dy},{dx}" for dy, dx in model.shifts)
    # How far the attention reaches: a half-scale graph's attention is the
    # graph it wraps (measured as a whole: a sigmoid saturated on random input
    # would hide the attention's own reach), its clear output reaches farther.
    attention_halo = None
    if args.half_scale:
        try:
            weight, sigma = scales.parse(args.half_scale)
            half = scales.HalfScale(model, weight, sigma).eval()
        except ValueError as e:
            raise SystemExit(f"--half-scale: {e}") from None
        attention_halo = measure_halo(model)
        model = half
        extra["idfcr.half_scale"] = f"{weight},{sigma}"
    # After the ensemble is built: one call reaches both of its networks.
    per_head_attention(model)
    halo = measure_halo(model)
    attention_halo = attention_halo or halo
    if state.get("probability_carried_from"):
        raise SystemExit(f"{args.ckpt}: its calibration is {state['probability_carried_from']}'s, chosen on that "
                         "network's output; run training.calibrate --write-ckpt on this checkpoint first")
    if state.get("probability"):
        # The second output becomes the calibrated probability. Its reach is
        # the network's plus the feathering; measured on random input the
        # probability is often 0 everywhere, which would hide that, so the
        # structural bound is taken too.
        cal = Calibration.from_dict(state["probability"])
        detector = None
        if cal.source == "detector":
            from idfcr_train.models.detector import load_detector

            detector = load_detector(state["detector"])
        reach = halo
        if detector is not None:
            # Measured on the logits: a sigmoid saturated on random input
            # (a gate fed no correction says 0 everywhere) hides its reach.
            n_extra = detector.extra_in
            det_reach = measure_halo(
                lambda x: detector.logits(x, torch.zeros_like(x[:, :1]).expand(-1, n_extra, -1, -1) if n_extra else None),
                bands=model.cfg.in_bands, window=model.cfg.window)
            if n_extra:
                # A blend gate reads the network's output: the two reaches add up.
                reach = halo + det_reach
            else:
                # With the attention as a second cue, p also reaches as far as the attention does.
                reach = max(det_reach, attention_halo) if cal.att_t0 is not None else det_reach
            print(f"detector halo {det_reach} px (network {halo} px)")
        model = WithProbability(model, cal, detector).eval()
        extra.update({"idfcr.probability": "calibrated", "idfcr.calibration": json.dumps(cal.to_dict())})
        span = 2 if detector is not None and detector.extra_in else 1
        halo = max(measure_halo(model, span=span), halo, reach + feather_reach(cal))
    if args.detector_calibration:
        extra["idfcr.detector_calibration"] = detector_calibration(args.detector_calibration)
    if args.scores:
        with open(args.scores) as f:
            extra["idfcr.scores"] = json.dumps(json.load(f)["summary"])
    meta = contract(model, name=args.name, version=args.version, band_names=args.band_names.split(","),
                    input_scale=args.input_scale, input_offset=args.input_offset, halo_px=halo, extra=extra)
    export_onnx(model, args.out, meta)
    err = parity(model, args.out)
    print(f"exported {args.out}: halo {halo} px, parity max |torch - ort| = {err:.2e}")
    assert err < 1e-4, f"parity check failed: {err}"

    win = scales.window_of(model)
    write_reference(args.out, args.ref_dir, args.name, model.cfg.in_bands, 2 * win, 3 * win, seed=11,
                    extra={"halo_px": halo, "window_px": win, "model": os.path.relpath(args.out, args.ref_dir)})


if __name__ == "__main__":
    main()
