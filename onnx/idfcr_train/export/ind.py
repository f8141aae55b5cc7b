"""Export the IND stage as three ONNX graphs with their contract in the
metadata, and check each against PyTorch.

    python -m idfcr_train.export.ind --ckpt checkpoints/ind_rgb.pt --out-dir models --name ind_rgb --version 0.1

Graphs (opset 17, dynamic batch, height and width):
- `<name>_encoder.onnx`: image (B, bands, H, W) in model units -> latent (B, C, H/f, W/f)
- `<name>_decoder.onnx`: latent -> image (the codebook lookup of Eq. 9 inside)
- `<name>_denoiser.onnx`: (z_t, t float32 (B,), condition latent) -> predicted noise,
  ControlNet and frozen UNet fused

Contract keys (all graphs; the table is onnx/contract_keys.json): idfcr.kind (ind_encoder / ind_decoder / ind_denoiser),
idfcr.name, idfcr.version, idfcr.bands, idfcr.band_names, idfcr.input_scale,
idfcr.input_offset, idfcr.latent_channels, idfcr.factor, idfcr.window_px (sizes
must be multiples of it, in the graph's own input pixels), idfcr.halo_px
(measured, in the graph's own input pixels), idfcr.schedule, idfcr.prediction.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from idfcr_train.export.contract import check as check_contract
from idfcr_train.models.ind import Autoencoder, Denoiser, load_checkpoint

SCHEDULE = "scaled_linear 0.00085 0.012 T=1000"


@torch.no_grad()
def measure_halo(fn, in_ch: int, window: int, scale: float, *, tol: float = 1e-5, seed: int = 0) -> int:
    """How far (input px) a crop border changes `fn`'s output: whole input vs
    a window-aligned crop; `scale` = output px per input px."""
    g = torch.Generator().manual_seed(seed)
    # At least 64 px crops: a decoder's window is 1 latent px, and 16 px
    # is less than its receptive field.
    unit = window * max(1, -(-4 // window))
    size = 32 * unit
    crop0, crop = 8 * unit, 16 * unit
    x = torch.rand(1, in_ch, size, size, generator=g)
    full, part = fn(x), fn(x[:, :, crop0 : crop0 + crop, crop0 : crop0 + crop])
    o0, oc = int(crop0 * scale), int(crop * scale)
    diff = (part - full[:, :, o0 : o0 + oc, o0 : o0 + oc]).abs().amax(1)[0]
    ys, xs = torch.nonzero(diff > tol, as_tuple=True)
    if not len(ys):
        return 0
    d = torch.minimum(torch.minimum(ys, oc - 1 - ys), torch.minimum(xs, oc - 1 - xs))
    halo = int(np.ceil((int(d.max()) + 1) / scale))
    assert halo < crop // 2, f"halo {halo} px reaches the centre of a {crop} px crop: not local"
    return halo


def _export(module, args, names, out_names, dynamic, path, meta):
    check_contract(meta, "ind")
    tmp = path + ".tmp"
    kwargs = dict(input_names=names, output_names=out_names, dynamic_axes=dynamic, opset_version=17)
    try:
        torch.onnx.export(module, args, tmp, dynamo=False, **kwargs)
    except TypeError:  # torch < 2.5 has no `dynamo` argument
        torch.onnx.export(module, args, tmp, **kwargs)
    import onnx

    m = onnx.load(tmp)
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, path)
    os.remove(tmp)


def export_all(ae: Autoencoder, den: Denoiser, out_dir: str, name: str, version: str, band_names: list[str],
               input_scale: float, extra: dict | None = None) -> dict[str, str]:
    ae.eval()
    den.eval()
    f = ae.cfg.factor
    lat = ae.cfg.latent
    win_lat = 2 ** (len(den.unet.cfg.channels) - 1)
    base = {"idfcr.name": name, "idfcr.version": version, "idfcr.bands": str(ae.cfg.in_bands),
            "idfcr.band_names": ",".join(band_names), "idfcr.input_scale": repr(float(input_scale)),
            "idfcr.input_offset": "0.0", "idfcr.latent_channels": str(lat), "idfcr.factor": str(f),
            "idfcr.schedule": SCHEDULE, "idfcr.prediction": "epsilon", **(extra or {})}

    class Enc(torch.nn.Module):
        def __init__(self, ae):
            super().__init__()
            self.ae = ae

        def forward(self, x):
            return self.ae.encode(x)

    class Dec(torch.nn.Module):
        def __init__(self, ae):
            super().__init__()
            self.ae = ae

        def forward(self, z):
            return self.ae.decode(z)

    enc, dec = Enc(ae), Dec(ae)
    bands = ae.cfg.in_bands
    halo_enc = measure_halo(enc, bands, f, 1 / f)
    halo_dec = measure_halo(dec, lat, 1, f)
    halo_den = measure_halo(lambda z: den(z, torch.full((1,), 500.0), z), lat, win_lat, 1.0)
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"{name}_{k}.onnx") for k in ("encoder", "decoder", "denoiser")}
    dyn = {0: "b", 2: "h", 3: "w"}
    _export(enc, (torch.rand(1, bands, 4 * f, 6 * f),), ["image"], ["latent"], {"image": dyn, "latent": dyn},
            paths["encoder"], {**base, "idfcr.kind": "ind_encoder", "idfcr.window_px": str(f),
                               "idfcr.halo_px": str(halo_enc)})
    _export(dec, (torch.randn(1, lat, 4, 6),), ["latent"], ["image"], {"latent": dyn, "image": dyn},
            paths["decoder"], {**base, "idfcr.kind": "ind_decoder", "idfcr.window_px": "1",
                               "idfcr.halo_px": str(halo_dec)})
    _export(den, (torch.randn(1, lat, 2 * win_lat, 3 * win_lat), torch.tensor([500.0]),
                  torch.randn(1, lat, 2 * win_lat, 3 * win_lat)),
            ["z_t", "t", "cond"], ["eps"], {"z_t": dyn, "t": {0: "b"}, "cond": dyn, "eps": dyn},
            paths["denoiser"], {**base, "idfcr.kind": "ind_denoiser", "idfcr.window_px": str(win_lat),
                                "idfcr.halo_px": str(halo_den)})
    return paths


@torch.no_grad()
def parity(ae: Autoencoder, den: Denoiser, paths: dict[str, str], seed: int = 1) -> float:
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    f, lat = ae.cfg.factor, ae.cfg.latent
    win = 2 ** (len(den.unet.cfg.channels) - 1)
    x = torch.rand(1, ae.cfg.in_bands, 8 * f, 10 * f, generator=g)
    z = torch.randn(1, lat, 4 * win, 6 * win, generator=g)
    t = torch.tensor([321.0])
    run = lambda p, feeds: ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, feeds)[0]  # noqa: E731
    errs = [
        np.abs(run(paths["encoder"], {"image": x.numpy()}) - ae.encode(x).numpy()).max(),
        np.abs(run(paths["decoder"], {"latent": z.numpy()}) - ae.decode(z).numpy()).max(),
        np.abs(run(paths["denoiser"], {"z_t": z.numpy(), "t": t.numpy(), "cond": z.numpy()})
               - den(z, t, z).numpy()).max(),
    ]
    return float(max(errs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--name", default="ind_rgb")
    ap.add_argument("--version", default="1")
    ap.add_argument("--band-names", default="red,green,blue")
    ap.add_argument("--input-scale", type=float, default=1 / 255)
    args = ap.parse_args(argv)
    state, ae, den = load_checkpoint(args.ckpt)
    extra = {"idfcr.training_steps": json.dumps(state.get("steps", {})),
             "idfcr.training_hours": json.dumps({k: round(v / 3600, 2) for k, v in state.get("wall_s", {}).items()}),
             "idfcr.k_iters": str(state.get("meta", {}).get("k_iters", ""))}
    paths = export_all(ae, den, args.out_dir, args.name, args.version, args.band_names.split(","),
                       args.input_scale, extra)
    err = parity(ae, den, paths)
    print(f"exported {', '.join(paths.values())}: parity max |torch - ort| = {err:.2e}")
    assert err < 1e-4, f"parity check failed: {err}"


if __name__ == "__main__":
    main()
