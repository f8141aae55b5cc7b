#!/usr/bin/env bash
# The paper's INR ablation (Table V) at a budget that decides it: ControlNets
# trained with K = 1, 2, 3 refinement iterations from one frozen UNet (the
# shipped IND checkpoint's, its ControlNet removed), the same number of batch
# steps each, three seeds per K, then scored on whole validation images
# (`idfcr_train.reports.ind_ablation --full`: mean and spread per K).
#
#   scripts/inr_ablation.sh [STEPS] [WORK]       # defaults: 600 steps, /tmp/inr_ablation
#
# One thread per training run (runs one after another, resumable: a run
# whose .done marker exists is skipped). Conditions: the Pixel-CR
# checkpoint's output on the training images, cached in WORK. Needs the
# Python environment of scripts/setup.sh --python. About 1.5 h of one core
# at 600 steps, then about 15 minutes of scoring on two.
set -euo pipefail
STEPS=${1:-600}
WORK=${2:-/tmp/inr_ablation}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv-ci/bin/python}
DATA=$ROOT/../shared/data/rice2_3s
PIXEL_CR=checkpoints/pixel_cr_rgb.pt
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mkdir -p "$WORK"
cd "$ROOT/onnx"

# The frozen UNet (and autoencoder) of the shipped checkpoint, no ControlNet.
"$PY" - "$WORK/base.pt" <<'EOF'
import sys
import torch
s = torch.load("checkpoints/ind_rgb.pt", map_location="cpu")
for k in ("control", "optim", "optim_stage"):
    s.pop(k, None)
s["steps"]["control"] = 0
s["wall_s"]["control"] = 0.0
torch.save(s, sys.argv[1])
EOF

runs=()
for S in 0 1 2; do
  for K in 1 2 3; do
    C=$WORK/k${K}_s${S}.pt
    runs+=("$C")
    [ -f "$C.done" ] && continue
    cp "$WORK/base.pt" "$C"
    rm -f "$C.control.log.jsonl"
    "$PY" -m idfcr_train.training.train_ind --stage control --data "$DATA" --ckpt "$C" --pixel-cr "$PIXEL_CR" \
      --cond-cache "$WORK/cond.npz" --k-iters "$K" --seed "$S" --max-steps "$STEPS" --hours 100 --threads 1 --resume \
      > "$WORK/k${K}_s${S}.out" 2>&1
    touch "$C.done"
  done
done

"$PY" -m idfcr_train.reports.ind_ablation --full 12 --steps 20 --threads 2 --pixel-cr "$PIXEL_CR" \
  --cond-cache "$WORK/val_cond.npz" --out "$WORK/ablation.json" "${runs[@]}"
