#!/usr/bin/env python3
"""Multiply-add work per pixel of the shipped graphs, and this CPU's practical
FP32 peak, for the README's "Performance" section (run by hand, not in CI).

    /tmp/venv-q/bin/python scripts/flops.py --skip-peak
    /tmp/venv-q/bin/python scripts/flops.py --only pixel_cr_rgb --gemm-size 512 --threads 1
    /tmp/venv-q/bin/python scripts/flops.py --threads 1,2 --json /tmp/flops.json

Counting: every node output of a graph in onnx/models becomes an extra graph
output, ONNX Runtime runs the graph once on a `--size` px input (1 thread,
graph optimisations off so that its nodes are the ONNX nodes), and the real
shape of every tensor is recorded. Static shape inference is not enough: the
window attention reshapes with shapes computed in the graph. Per node, with
FLOPs = 2 x multiply-adds:
- Conv: 2 * N * Cout * Hout * Wout * (Cin / group) * kH * kW;
- ConvTranspose: 2 * N * Cin * Hin * Win * (Cout / group) * kH * kW;
- MatMul, Gemm: 2 * prod(batch dims) * M * K * N (broadcast batch dims);
- bias additions and every other operator (normalisation, activations,
  softmax, shape plumbing) are not counted; the table lists them by type,
  with the elements they write per pixel as a rough measure of their work.
Normalised per pixel: Pixel-CR and S2 graphs per input (= output) pixel,
the IND encoder per input pixel, the decoder per output pixel, the denoiser
per latent pixel and per image pixel (latent / idfcr.factor^2). For sizes
that are multiples of 32 the counts per pixel do not depend on `--size`
(window attention costs the same per pixel in every full window), except
for the denoiser's time-embedding Gemm, a fixed cost per call. Holding every
tensor of a run costs memory: about 1.5 GB at the default 128 px.

Peak: one (n x n) x (n x n) FP32 MatMul in ONNX Runtime (`--gemm-size` n),
1 warm-up and `--reps` timed runs per thread count, best 2 n^3 / seconds.
Other load on the machine lowers it: the load average is printed with it.

Needs the `onnx` package, which .venv-ci does not have: a separate virtual
environment, e.g.
    /usr/bin/python3 -m venv --system-site-packages /tmp/venv-q
    /tmp/venv-q/bin/pip install onnx==1.17.0 numpy==1.24.2 onnxruntime==1.31.1
    /tmp/venv-q/bin/pip install --no-deps ml_dtypes==0.4.1
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from graph_inputs import feeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "onnx", "models")
GRAPHS = ["pixel_cr_rgb", "s2_10m", "s2_20m", "s2_60m", "s2_60m_l2a",
          "ind_rgb_encoder", "ind_rgb_decoder", "ind_rgb_denoiser"]
COUNTED = {"Conv", "ConvTranspose", "MatMul", "Gemm"}


def session(model: bytes | str, threads: int, optimise: bool) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if not optimise:
        # Fusions would rename or merge nodes; shapes are wanted per ONNX node.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def expose_all(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every node output of the main graph as a graph output (type left to ORT).

    Outputs inside If/Loop branches cannot be exposed; `subgraph_ops` checks
    that no counted operator hides there."""
    have = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in have:
                model.graph.output.append(helper.make_empty_tensor_value_info(name))
                have.add(name)
    return model


def subgraph_ops(graph: onnx.GraphProto) -> collections.Counter:
    """Operator types inside the branches of If/Loop/Scan nodes, recursively."""
    ops: collections.Counter = collections.Counter()
    for node in graph.node:
        for attr in node.attribute:
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                ops.update(n.op_type for n in g.node)
                ops.update(subgraph_ops(g))
    return ops


def graph_feeds(sess: ort.InferenceSession, meta: dict[str, str], size: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs for an image of `size` px: latents size / factor (normal),
    images in the graph's declared input range (values change no shape, but
    no branch should see absurd data)."""
    factor = int(meta.get("idfcr.factor", "1"))
    latent_in = meta.get("idfcr.kind") in ("ind_decoder", "ind_denoiser")
    if latent_in:
        return feeds(sess, size // factor, rng, channels=int(meta.get("idfcr.latent_channels", "3")))
    lo, hi = (float(v) for v in meta.get("idfcr.input_range", "0,1").split(","))
    return feeds(sess, size, rng, channels=int(meta.get("idfcr.bands", "3")), value_range=(lo, hi))


def record_shapes(path: str, size: int) -> tuple[onnx.ModelProto, dict, dict, dict]:
    """(model, metadata, feeds, shape of every tensor) after one run at `size` px."""
    model = onnx.load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    # A second copy to widen: `model` keeps the node list without the extra outputs.
    sess = session(expose_all(onnx.load(path)).SerializeToString(), 1, optimise=False)
    feed = graph_feeds(sess, meta, size, np.random.default_rng(0))
    names = [o.name for o in sess.get_outputs()]
    for name, value in zip(names, sess.run(names, feed)):
        shapes[name] = tuple(np.shape(value))
    shapes.update({k: v.shape for k, v in feed.items()})
    return model, meta, feed, shapes


def node_flops(node: onnx.NodeProto, shapes: dict) -> int:
    """FLOPs (2 x multiply-adds) of one Conv/ConvTranspose/MatMul/Gemm node."""
    shape = lambda i: shapes[node.input[i]]  # noqa: E731
    out = shapes[node.output[0]]
    if node.op_type == "Conv":
        # Weight (Cout, Cin/group, kH, kW): each output element is one dot product.
        return 2 * math.prod(out) * math.prod(shape(1)[1:])
    if node.op_type == "ConvTranspose":
        # Weight (Cin, Cout/group, kH, kW): each input element scatters into a kernel.
        return 2 * math.prod(shape(0)) * math.prod(shape(1)[1:])
    if node.op_type == "MatMul":
        # Output (batch..., M, N) after broadcasting; K is A's last dimension.
        return 2 * math.prod(out) * shape(0)[-1]
    trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
    return 2 * math.prod(out) * shape(0)[0 if trans_a else 1]  # Gemm


def pixel_bases(meta: dict, feed: dict, model: onnx.ModelProto, shapes: dict) -> dict[str, int]:
    """Pixels to divide by: {label: count}; the first label is the headline."""
    kind = meta.get("idfcr.kind", "pixel")
    first_in = next(v for v in feed.values() if v.ndim == 4)
    hw = first_in.shape[2] * first_in.shape[3]
    if kind == "ind_decoder":
        out = shapes[model.graph.output[0].name]
        return {"output px": out[2] * out[3]}
    if kind == "ind_denoiser":
        factor = int(meta.get("idfcr.factor", "1"))
        return {"latent px": hw, f"image px (latent / {factor}^2)": hw * factor * factor}
    return {"input px": hw}


def count_graph(name: str, size: int) -> dict:
    """Per-pixel FLOPs of one graph: by operator, by top-level module, what is left out."""
    model, meta, feed, shapes = record_shapes(os.path.join(MODELS, name + ".onnx"), size)
    by_op: collections.Counter = collections.Counter()
    by_part: collections.Counter = collections.Counter()
    other_ops: collections.Counter = collections.Counter()
    other_elems = 0
    for node in model.graph.node:
        if node.op_type in COUNTED:
            flops = node_flops(node, shapes)
            by_op[node.op_type] += flops
            # "/detector/e1/Conv" -> "detector": Pixel-CR's cloud detector, the
            # denoiser's ControlNet ("control") and so on.
            path = node.name.lstrip("/").split("/")
            by_part[path[0] if len(path) > 1 else "(top level)"] += flops
        else:
            other_ops[node.op_type] += 1
            other_elems += sum(math.prod(shapes.get(o, ())) for o in node.output if o)
    hidden = {op: n for op, n in subgraph_ops(model.graph).items() if op in COUNTED}
    if hidden:
        print(f"warning: {name}: {hidden} inside If/Loop branches, not counted", file=sys.stderr)
    bases = pixel_bases(meta, feed, model, shapes)
    px = next(iter(bases.values()))
    total = sum(by_op.values())
    return {
        "graph": name, "kind": meta.get("idfcr.kind", "pixel"), "size_px": size,
        "input_shapes": {k: list(v.shape) for k, v in feed.items()},
        "pixels": bases,
        "flops_total": total,
        "flops_per_px": {label: total / n for label, n in bases.items()},
        "by_op_per_px": {op: f / px for op, f in by_op.most_common()},
        "by_part_per_px": {p: f / px for p, f in by_part.most_common()},
        "nodes": len(model.graph.node),
        "counted_nodes": sum(1 for n in model.graph.node if n.op_type in COUNTED),
        "uncounted_ops": dict(other_ops.most_common()),
        "uncounted_elements_per_px": other_elems / px,
        "counted_in_subgraphs": hidden,
    }


def mflop(x: float) -> str:
    return f"{x / 1e6:8.3f} MFLOP"


def print_graph(r: dict) -> None:
    shown = ", ".join(f"{k} {tuple(v)}" for k, v in r["input_shapes"].items())
    print(f"\n{r['graph']} ({r['kind']}; inputs {shown})")
    for label, v in r["flops_per_px"].items():
        print(f"  total       {mflop(v)} per {label}")
    head = next(iter(r["pixels"]))
    for op, v in r["by_op_per_px"].items():
        print(f"    {op:14s}{mflop(v)} per {head}")
    if len(r["by_part_per_px"]) > 1:
        parts = ", ".join(f"{p} {v / 1e6:.3f}" for p, v in r["by_part_per_px"].items())
        print(f"  by module   {parts} MFLOP per {head}")
    left = r["nodes"] - r["counted_nodes"]
    ops = ", ".join(f"{op} {n}" for op, n in r["uncounted_ops"].items())
    print(f"  counted     {r['counted_nodes']} of {r['nodes']} nodes; "
          f"not counted {left} ({100 * left / r['nodes']:.0f} %): {ops}")
    print(f"  not counted nodes write {r['uncounted_elements_per_px']:.0f} elements per {head}")


def summary(results: dict[str, dict], steps: int) -> dict[str, float]:
    """Headline numbers per image pixel, for the graphs that were counted.

    Keys with " / " are parts of the row before them (printed indented)."""
    out = {}
    px = lambda g: next(iter(results[g]["flops_per_px"].values()))  # noqa: E731
    if "pixel_cr_rgb" in results:
        out["Pixel-CR RGB (with detector)"] = px("pixel_cr_rgb")
        for part, v in results["pixel_cr_rgb"]["by_part_per_px"].items():
            out[f"Pixel-CR RGB / {part}"] = v
    for g in ("s2_10m", "s2_20m", "s2_60m", "s2_60m_l2a"):
        if g in results:
            out[f"S2 {g[3:]}"] = px(g)
    if all(g in results for g in ("ind_rgb_encoder", "ind_rgb_decoder", "ind_rgb_denoiser")):
        # Stage 2 runs the encoder and the decoder once and the denoiser once
        # per sampler step on the latent (src/diffusion/refine.rs); tile halos
        # recomputed at tile seams are not included.
        den = list(results["ind_rgb_denoiser"]["flops_per_px"].values())[1]
        label = f"IND refine DDPM-{steps} (encoder + {steps} x denoiser + decoder)"
        out[label] = px("ind_rgb_encoder") + steps * den + px("ind_rgb_decoder")
        out[f"{label} / {steps} x denoiser"] = steps * den
    if not out:
        return out
    print("\nPer image pixel (FLOPs = 2 x multiply-adds, Conv/ConvTranspose/MatMul/Gemm only):")
    for label, v in out.items():
        shown = "    of which " + label.split(" / ")[1] if " / " in label else "  " + label
        print(f"  {shown:62s}{mflop(v)}")
    return out


def matmul_model(n: int) -> bytes:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak", [a, b], [c])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def measure_peak(n: int, threads: list[int], reps: int) -> dict[int, float]:
    """Best GFLOP/s of an n^3 FP32 MatMul in ORT, per intra-op thread count."""
    rng = np.random.default_rng(0)
    feed = {"a": rng.standard_normal((n, n), np.float32), "b": rng.standard_normal((n, n), np.float32)}
    model, out = matmul_model(n), {}
    for t in threads:
        sess = session(model, t, optimise=True)
        sess.run(None, feed)  # warm-up: buffers, packing, thread pool start
        best = math.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            sess.run(None, feed)
            best = min(best, time.perf_counter() - t0)
        out[t] = 2 * n ** 3 / best / 1e9
        print(f"  {t} thread(s): {out[t]:7.1f} GFLOP/s (best of {reps}, {1e3 * best:.1f} ms per run)")
    return out


def print_at_peak(headline: dict[str, float], peak: dict[int, float]) -> None:
    """Time per megapixel if the counted work ran at the measured peak: the floor
    that a measured time can be compared with (achieved fraction = floor / measured)."""
    print("\nSeconds per megapixel at the measured peak (lower bound):")
    for label, v in headline.items():
        if " / " not in label:
            cells = "  ".join(f"{t} thr {v * 1e6 / (g * 1e9):7.3f} s" for t, g in peak.items())
            print(f"    {label:62s}{cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=GRAPHS, help="count this graph only")
    ap.add_argument("--size", type=int, default=128,
                    help="image size (px) for the shape recording; a multiple of 32 (windows, the RGB graph's "
                         "half-scale run, IND factor)")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps of the worked IND example")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts for the peak")
    ap.add_argument("--gemm-size", type=int, default=4096, help="n of the n x n x n peak MatMul")
    ap.add_argument("--reps", type=int, default=3, help="timed peak runs per thread count (after 1 warm-up)")
    ap.add_argument("--skip-peak", action="store_true")
    ap.add_argument("--json", metavar="OUT", help="write all numbers to this JSON file")
    args = ap.parse_args()
    if args.size % 32:
        ap.error("--size must be a multiple of 32 (attention windows, the RGB graph's half-scale run, "
                 "detector levels, IND factor)")

    results = {g: count_graph(g, args.size) for g in ([args.only] if args.only else GRAPHS)}
    print(f"FLOPs per pixel, shapes recorded at {args.size} x {args.size} px "
          f"(ONNX Runtime {ort.__version__}, onnx {onnx.__version__})")
    for r in results.values():
        print_graph(r)
    headline = summary(results, args.steps)

    peak: dict[int, float] = {}
    if not args.skip_peak:
        threads = [int(t) for t in args.threads.split(",")]
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        n = args.gemm_size
        print(f"\nFP32 peak: ({n} x {n}) x ({n} x {n}) MatMul, "
              f"{os.cpu_count()} CPUs, load average {load}")
        peak = measure_peak(args.gemm_size, threads, args.reps)
        if headline:
            print_at_peak(headline, peak)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size_px": args.size, "steps": args.steps, "graphs": results,
                       "per_image_px": headline, "gemm_size": args.gemm_size,
                       "peak_gflops": {str(t): g for t, g in peak.items()},
                       "loadavg": os.getloadavg()}, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
