#!/bin/bash
# Train (or resume) the four Sentinel-2 group models one after the other, on
# SEN12MS-CR pairs and the SEN12MS-CR-TS time series (validation scenes held
# out whole). Budgets are wall-clock hours per model for this run; the
# checkpoints in onnx/checkpoints carry the step count across runs.
#
#   scripts/train_s2_models.sh [HOURS_10M] [PYTHON] [GROUPS]
#
# Window 8 (not Pixel-CR's 16): attention cost grows with the square of the
# window's pixel count, and these CPU budgets buy four times more steps.
set -euo pipefail
cd "$(dirname "$0")/../onnx"
H10=${1:-0.45}
PY=${2:-../.venv-ci/bin/python}
WANT=${3:-"60m 60m_l2a 20m 10m"}
DATA=../../shared/data
D="--data $DATA/sen12mscr_oriolac --ts-data $DATA/sen12mscr_ts_oriolac --config cpu --dim 32 --heads 4 --shifted-windows --batch 8 --eval-every 100 --eval-n 6 --resume"
want() { [[ " $WANT " == *" $1 "* ]]; }
want 60m && $PY -m idfcr_train.training.train_pixel_cr --s2-group 60m $D --ckpt checkpoints/s2_60m.pt --window 8 --crop 32 --hours 0.25 --threads 1
want 60m_l2a && $PY -m idfcr_train.training.train_pixel_cr --s2-group 60m_l2a $D --ckpt checkpoints/s2_60m_l2a.pt --window 8 --crop 32 --hours 0.2 --threads 1
want 20m && $PY -m idfcr_train.training.train_pixel_cr --s2-group 20m $D --ckpt checkpoints/s2_20m.pt --window 8 --crop 64 --hours 0.35 --threads 1
want 10m && $PY -m idfcr_train.training.train_pixel_cr --s2-group 10m $D --ckpt checkpoints/s2_10m.pt --window 8 --crop 96 --hours "$H10" --threads 2
