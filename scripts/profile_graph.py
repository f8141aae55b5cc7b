#!/usr/bin/env python3
"""Where a shipped graph spends its time, by operator type (run by hand, not
in CI): ONNX Runtime's own profiler on the CPU provider, the same thread count
as `idfcr --threads`.

    .venv-ci/bin/python scripts/profile_graph.py onnx/models/ind_rgb_denoiser.onnx --size 128
    .venv-ci/bin/python scripts/profile_graph.py onnx/models/pixel_cr_rgb.onnx --size 512

Every image-like input (rank 4) gets `--size` x `--size` random values with the
channel count the graph declares; rank-1 inputs (the denoiser's timestep) get
500. Prints seconds per run and the share of kernel time per operator type.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time

import numpy as np
import onnxruntime as ort

from graph_inputs import feeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("graph")
    ap.add_argument("--size", type=int, default=128, help="spatial size of the image-like inputs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile")
        so.intra_op_num_threads = args.threads
        session = ort.InferenceSession(args.graph, so, providers=["CPUExecutionProvider"])
        feed = feeds(session, args.size, np.random.default_rng(0))
        session.run(None, feed)  # warm-up: allocations and kernel selection
        t0 = time.time()
        for _ in range(args.runs):
            session.run(None, feed)
        per_run = (time.time() - t0) / args.runs
        with open(session.end_profiling()) as f:
            events = json.load(f)

    total = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
    all_us = sum(total.values()) or 1
    print(f"{os.path.basename(args.graph)}: {per_run:.3f} s per run at {args.size} px, {args.threads} threads")
    for op, us in total.most_common(10):
        print(f"  {op:20s} {100 * us / all_us:5.1f} %")


if __name__ == "__main__":
    main()
