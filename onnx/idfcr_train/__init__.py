"""idfcr's model code: networks (`models`), training data (`data`), trainers
and calibration (`training`), ONNX export with the idfcr contract (`export`),
scores, comparisons and cards (`reports`). Run modules from `onnx/`, e.g.
`python -m idfcr_train.training.train_pixel_cr --help`."""

import os

#: The repository's `onnx/` folder (checkpoints, models, the contract key table).
ONNX_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The repository root (testdata, scripts).
REPO_ROOT = os.path.dirname(ONNX_DIR)
