#!/bin/bash
# Train (or resume) the four Sentinel-2 group models one after the other, on
# SEN12MS-CR pairs and the SEN12MS-CR-TS time series (validation scenes held
# out whole). Budgets are wall-clock hours per model for this run; the
# checkpoints in onnx/checkpoints carry the step count across runs.
#
#   scripts/train_s2_models.sh [HOURS_10M] [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../onnx"
H10=${1:-0.55}
PY=${2:-../.venv/bin/python}
DATA=../../shared/data
D="--data $DATA/sen12mscr_oriolac --ts-data $DATA/sen12mscr_ts_oriolac --config cpu --dim 32 --heads 4 --shifted-windows --batch 8 --eval-every 100 --eval-n 6 --resume"
$PY -m idfcr_train.train_pixel_cr --s2-group 60m $D --ckpt checkpoints/s2_60m.pt --window 8 --crop 32 --hours 0.25 --threads 1
$PY -m idfcr_train.train_pixel_cr --s2-group 60m_l2a $D --ckpt checkpoints/s2_60m_l2a.pt --window 8 --crop 32 --hours 0.2 --threads 1
$PY -m idfcr_train.train_pixel_cr --s2-group 20m $D --ckpt checkpoints/s2_20m.pt --window 16 --crop 64 --hours 0.35 --threads 1
$PY -m idfcr_train.train_pixel_cr --s2-group 10m $D --ckpt checkpoints/s2_10m.pt --window 16 --crop 128 --hours "$H10" --threads 2
