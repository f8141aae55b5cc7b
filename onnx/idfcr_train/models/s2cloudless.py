"""Sentinel Hub's s2cloudless pixel classifier as an image-shaped ONNX graph.

s2cloudless (Sinergise; the `s2cloudless` wheel on PyPI, its model
`pixel_s2_cloud_detector_lightGBM_v0.1.txt`; licence CC BY-SA 4.0) is a
LightGBM classifier of single pixels from ten Sentinel-2 L1C bands (top of
atmosphere reflectance, DN / 10000). It was trained on L1C only: L2A
products (surface reflectance, no B10) are outside what it knows.

`build_graph` converts the booster (onnxmltools: a TreeEnsembleClassifier)
and wraps it so that it takes an image (1, 10, H, W) and gives the cloud
probability (1, 1, H, W), the shape every other idfcr graph has. We change
nothing in the trees; the wrapper only reshapes. The converted graph is an
adaptation under the same licence (CC BY-SA 4.0), credited wherever it is
used.

`S2Cloudless` runs such a graph with ONNX Runtime on a 13-band SEN12MS-CR
image (reflectance), for the measurements in reports/s2_detectors.py.
"""

from __future__ import annotations

import numpy as np

from idfcr_train.data.s2 import SEN12MS_BANDS

# The classifier's features, in its order (s2cloudless's MODEL_BAND_IDS).
BANDS = ["B1", "B2", "B4", "B5", "B8", "B8A", "B9", "B10", "B11", "B12"]
MODEL_FILE = "s2cloudless/models/pixel_s2_cloud_detector_lightGBM_v0.1.txt"
LICENCE = "CC BY-SA 4.0"
CREDIT = ("s2cloudless by Sinergise (Sentinel Hub), pixel_s2_cloud_detector_lightGBM_v0.1, "
          "CC BY-SA 4.0; converted to ONNX by idfcr without changing the classifier")
INPUT, OUTPUT = "l1c", "cloud_probability"


def booster_text(wheel: str) -> str:
    """The LightGBM model text inside an s2cloudless wheel."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        return z.read(MODEL_FILE).decode()


def build_graph(model_text: str, opset: int = 15):
    """The booster as an ONNX model: (1, 10, H, W) reflectance in,
    (1, 1, H, W) cloud probability out."""
    import lightgbm
    import onnx
    import onnxmltools
    from onnx import TensorProto, helper
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = lightgbm.Booster(model_str=model_text)
    if booster.num_feature() != len(BANDS):
        raise ValueError(f"the booster has {booster.num_feature()} features, expected {len(BANDS)}")
    trees = onnxmltools.convert_lightgbm(booster, initial_types=[("pixels", FloatTensorType([None, len(BANDS)]))],
                                         zipmap=False, target_opset=opset)
    probs = [o.name for o in trees.graph.output if o.name != "label"][0]

    const = lambda name, vals: helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals)  # noqa: E731
    pre = [
        helper.make_node("Transpose", [INPUT], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "flat_shape"], ["pixels"]),
    ]
    post = [
        helper.make_node("Gather", [probs, "cloud_col"], ["p_flat"], axis=1),
        helper.make_node("Shape", [INPUT], ["in_shape"]),
        helper.make_node("Slice", ["in_shape", "hw_start", "hw_end"], ["hw"]),
        helper.make_node("Concat", ["one_one", "hw"], ["out_shape"], axis=0),
        helper.make_node("Reshape", ["p_flat", "out_shape"], [OUTPUT]),
    ]
    inits = [const("flat_shape", [-1, len(BANDS)]), const("hw_start", [2]), const("hw_end", [4]),
             const("one_one", [1, 1]), helper.make_tensor("cloud_col", TensorProto.INT64, [], [1])]
    graph = helper.make_graph(
        pre + list(trees.graph.node) + post, "s2cloudless",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, len(BANDS), "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 1, "height", "width"])],
        initializer=list(trees.graph.initializer) + inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, booster


def features(l1c13: np.ndarray) -> np.ndarray:
    """(13, H, W) SEN12MS-CR reflectance -> (1, 10, H, W) in the classifier's band order."""
    idx = [SEN12MS_BANDS.index(b) for b in BANDS]
    return np.ascontiguousarray(l1c13[idx][None], dtype=np.float32)


class S2Cloudless:
    """The converted graph, run on whole images."""

    def __init__(self, path: str, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def __call__(self, l1c13: np.ndarray) -> np.ndarray:
        """(13, H, W) reflectance -> (H, W) cloud probability in [0, 1]."""
        return self.session.run([OUTPUT], {INPUT: features(l1c13)})[0][0, 0]
