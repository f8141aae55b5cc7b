"""Random inputs for a shipped ONNX graph, shared by the scripts that time or
measure graphs on their own (`profile_graph.py`, `flops.py`). Needs only
numpy and onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

# ORT type strings of the inputs these graphs declare.
DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def feeds(sess: ort.InferenceSession, side: int, rng: np.random.Generator, *, channels: int = 3,
          value_range: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Every 4-D input as (1, C, side, side), C from the graph or `channels`
    where the graph leaves it free, uniform in `value_range` (an image) or
    standard normal (a latent, or when no range is given); any other input
    (the denoiser's timestep) 500, mid-schedule."""
    out = {}
    for i in sess.get_inputs():
        dtype = DTYPES.get(i.type, np.float32)
        if len(i.shape) == 4:
            c = i.shape[1] if isinstance(i.shape[1], int) else channels
            x = rng.uniform(*value_range, (1, c, side, side)) if value_range else \
                rng.standard_normal((1, c, side, side))
            out[i.name] = x.astype(dtype)
        else:
            out[i.name] = np.full([d if isinstance(d, int) else 1 for d in i.shape], 500, dtype)
    return out
