"""The model-card section on blending (shared by the RGB and Sentinel-2
cards): which calibration ships, what it gains and costs against the raw
model and doing nothing, how often clear input comes back unchanged, and
how good a cloud detector p is, from `calibrate.py`'s JSON."""

from __future__ import annotations

import json
import os


def blend_section(calibration_json: str) -> list[str]:
    if not os.path.exists(calibration_json):
        return ["## Blending", "", "No calibration: the runtime writes the raw model output.", ""]
    with open(calibration_json) as f:
        r = json.load(f)
    c, raw, nothing = r["chosen"], r["raw_model"], r["do_nothing"]
    cal = c["calibration"]
    ramp = f"clip((a - {cal['t0']:.2f}) / {cal['t1'] - cal['t0']:.2f}, 0, 1)"
    det = r.get("detector", {})
    if cal.get("source") == "detector" and (det.get("config") or {}).get("extra_in"):
        source = [
            "a blend gate's output `a` (`idfcr_train/training/train_gate.py`: the cloud detector's small",
            "convolutional U-Net reading the input, this model's correction (output - input) and its attention,",
            "trained to minimise the blended output's error on the training scene blocks, with clear images as",
            f"their own input; {det['step']} steps, {det['wall_s'] / 3600:.2f} CPU-hours), inside the same graph,",
        ]
    elif cal.get("source") == "detector":
        source = [
            "a dedicated cloud detector's opacity `a` (`idfcr_train/models/detector.py`: a small convolutional",
            "U-Net trained on synthetic clouds over colour-augmented clear RICE2, RICE1 and Sentinel-2",
            "RGB images and on real RICE pairs" + (f", {det['step']} steps, {det['wall_s'] / 3600:.2f} CPU-hours"
                                                  if det else "") + "), inside the same graph,",
        ]
    else:
        source = ["this model's cloudy-attention map `a`,"]
    if cal.get("att_t0") is not None:
        # The second cue: the model's own attention, joined by max (models/probability.py).
        source += ["and this model's own cloudy-attention map `m` as a second cue (it finds the thin cirrus over",
                   "dark sea that the detector misses),"]
        ramp = (f"max({ramp}, clip((m - {cal['att_t0']:.2f}) / {cal['att_t1'] - cal['att_t0']:.2f}, 0, 1))")
    if cal.get("shape") == "round":
        feather = [f"p = k x B3({ramp}), with B3 three box means of radius "
                   f"ceil(({cal['dilate_px']} + {cal['blur_px']}) / 3) px (round, exactly 0 beyond three radii)",
                   f"and k the gain that keeps p = 1 up to {cal['dilate_px']} px beyond a detection."]
    else:
        feather = [f"p = blur_{cal['blur_px']}(dilate_{cal['dilate_px']}({ramp})) (radii in pixels)."]
    lines = [
        "## Blending by the cloud probability (the default output)",
        "",
        "The runtime writes output = p x model + (1 - p) x input, where p comes from",
        *source,
        "calibrated and feathered inside the graph:",
        *feather,
        "Where p is 0 the input comes back bit",
        "for bit; `--raw` writes the model's output everywhere. The calibration's numbers were chosen on the",
        f"validation images ({r['val_images']} images of {r['val_blocks']}, checkpoint step "
        f"{r['checkpoint_step']}): the best mean PSNR among the {r['candidates_meeting_40db']} grid points",
        r.get("selection_rule", "whose clear references, given as input, come back at 40 dB or better") + ".",
        "",
        "| output | validation PSNR | worst image vs doing nothing | clear input comes back at (min) |"
        + (" demo PSNR | demo clear input |" if "demo_psnr" in c else ""),
        "|---|---|---|---|" + ("---|---|" if "demo_psnr" in c else ""),
    ]

    def row(label, s, base=False):
        cells = [label, f"{s['val_psnr']:.2f}",
                 "0.00" if base else f"{s['val_worst_vs_nothing']:+.2f}",
                 "-" if base else f"{s['clear_in_psnr_min']:.1f} dB"]
        if "demo_psnr" in c:
            cells += [f"{s['demo_psnr']:.2f}", "-" if base else f"{s['demo_clear_in_psnr']:.1f} dB"]
        return "| " + " | ".join(cells) + " |"

    lines += [row("**blended (default)**", c), row("raw model (`--raw`)", raw), row("doing nothing", nothing, True)]
    syn = r["synthetic_clouds_on_val_clear"]
    lines += [
        "",
        f"Synthetic clouds over the validation clear images: doing nothing {syn['nothing']:.2f} dB, raw",
        f"{syn['raw']:.2f} dB, blended {syn['blend']:.2f} dB.",
        "",
        "p as a cloud detector (p > 0.5 against cloud opacity > 0.1, where the opacity is known):",
        "",
        "| data | precision | recall |",
        "|---|---|---|",
    ]
    for k, v in r["precision_recall"].items():
        lines.append(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} |")
    if r.get("selection_note"):
        lines += ["", r["selection_note"]]
    lines += ["", f"Measured with `{r['command']}` ({os.path.basename(calibration_json)}).", ""]
    lines += all_images_section(calibration_json.replace(".calibration.json", ".blend_all.json"), r.get("val_ids"))
    detectors = calibration_json.replace(".calibration.json", ".detectors.json")
    if os.path.exists(detectors):
        lines += s2cloudless_section(detectors)
    return lines


def all_images_section(path: str, seen_ids: list[str] | None = None) -> list[str]:
    """The shipped graph's blend on every validation image (`blend_all.py`):
    the calibration was chosen on a subset (`seen_ids`, when its JSON names
    them), and this is where it was not."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        r = json.load(f)
    seen = (f"the calibration saw {len(seen_ids)} of them" if seen_ids else "the calibration saw every ninth")
    if seen_ids:
        from idfcr_train.reports.blend_all import summarise

        unseen = [row for row in r["rows"] if row["id"] not in set(seen_ids)]
        if unseen:
            r = {**r, "unseen": summarise(unseen)}
    lines = [
        f"On all {r['all']['n']} validation images ({seen}), through the exported graph:",
        "",
        "| images | blended | raw | doing nothing | blended SSIM | > 0.5 dB below nothing (blended / raw) | clear input back below 40 dB | clear input, worst |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in [k for k in r if k in ("all", "unseen") or k.startswith("block")]:
        s = r[key]
        label = {"all": "all", "unseen": "not seen by the calibration"}.get(key, f"block {key[5:]}")
        lines.append(f"| {label} ({s['n']}) | {s['blend']:.2f} | {s['raw']:.2f} | {s['nothing']:.2f} | {s['blend_ssim']:.4f} | "
                     f"{s['blend_below_nothing_0_5']} / {s['raw_below_nothing_0_5']} | {s['clear_in_below_40']} | "
                     f"{s['clear_in_min']:.1f} dB |")
    lines += ["", f"Measured with `{r['command']}`.", ""]
    return lines


# src/sentinel2/detector.rs DEFAULT_CALIBRATION: what the runtime uses for a
# model that carries no idfcr.detector_calibration (a test keeps them equal).
DEFAULT_DETECTOR_CALIBRATION = "0.6,0.9,4,2"


def carried_detector_calibration(onnx_path: str) -> str | None:
    """The model's `idfcr.detector_calibration`, if it carries one."""
    import onnx

    m = onnx.load(onnx_path, load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}.get("idfcr.detector_calibration")


def same_calibration(text: str, cal: dict) -> bool:
    """Whether `t0,t1,dilate,blur` is the calibration `cal` (a to_dict())."""
    from idfcr_train.models.probability import Calibration

    return Calibration.from_runtime_text(text).runtime_text() == Calibration.from_dict(cal).runtime_text()


def s2cloudless_section(detectors_json: str) -> list[str]:
    """For the Sentinel-2 L1C groups: `idfcr s2` blends by s2cloudless's
    map by default, calibrated as the model asks; what that gives against
    this model's own p (reports/s2_detectors.py's JSON, whose `runtime`
    row must be the calibration the exported model makes the runtime use)."""
    with open(detectors_json) as f:
        r = json.load(f)
    rt, own, raw = r["runtime"], r["shipped"], r["raw_model"]
    onnx_path = detectors_json.replace(".detectors.json", ".onnx")
    carried = carried_detector_calibration(onnx_path) if os.path.exists(onnx_path) else None
    runs = carried or DEFAULT_DETECTOR_CALIBRATION
    if not same_calibration(runs, rt["calibration"]):
        raise SystemExit(f"{detectors_json} scored the runtime calibration {rt['calibration']} but the model makes "
                         f"the runtime use {runs}: rerun reports.s2_detectors with --runtime {runs}")
    cal = rt["calibration"]
    formula = (f"p = blur_{cal['blur_px']}(dilate_{cal['dilate_px']}(clip((s - {cal['t0']:g}) / "
               f"{cal['t1'] - cal['t0']:.2g}, 0, 1))) on s2cloudless's probability s, radii in 60 m map pixels")
    why = (["carried in this model's metadata (`idfcr.detector_calibration`); chosen on the images below as the",
            f"{r['recommended_runtime']['rule']} (a margin over the 40 dB target, since",
            "the same images choose and score it)."]
           if carried and r.get("recommended_runtime") else
           ["the runtime's default for models that carry no calibration of their own."])

    def row(label, s, base=False):
        return (f"| {label} | {s['val_psnr']:.2f} | {'0.00' if base else format(s['val_worst_vs_nothing'], '+.2f')} | "
                f"{'-' if base else format(s['clear_in_psnr_min'], '.1f') + ' dB'} |")

    return [
        "### L1C inputs: blended by s2cloudless (the default of `idfcr s2`)",
        "",
        "For L1C products and band stacks with s2cloudless's ten bands, `idfcr s2` blends every group",
        "by one s2cloudless map of the scene instead of this model's own p (card: `s2cloudless.md`),",
        f"calibrated for this model: {formula},",
        *why,
        "This model's p above serves L2A products and `--cloud-detector model`. On "
        f"{len(r['images'])} whole images of scenes no model trained on (validation scenes and `sen12mscr_glfcr`;",
        "the same images chose the calibration):",
        "",
        "| output | PSNR | worst image vs doing nothing | clear input comes back at (min) |",
        "|---|---|---|---|",
        row("**blended by s2cloudless (default for L1C)**", rt),
        row("blended by this model's p", own),
        row("raw model (`--raw`)", raw),
        row("doing nothing", r["do_nothing"], True),
        "",
        f"Measured with `{r['command']}` ({os.path.basename(detectors_json)}).",
        "",
    ]
