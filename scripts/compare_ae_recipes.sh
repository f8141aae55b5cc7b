#!/usr/bin/env bash
# Autoencoder recipes for stage 2 at an equal budget (issue 17: the
# autoencoder's round trip is where detail goes). Each recipe trains from
# scratch for STEPS optimiser steps (batch 8, 128 px crops; steps, not
# minutes, so that other work on the machine does not bias the comparison;
# each checkpoint records its wall time) on the RICE2 training blocks, then
# all are scored on the validation blocks' full images by
# idfcr_train.reports.ae_ceiling.
#   scripts/compare_ae_recipes.sh [STEPS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../onnx"
steps="${1:-1000}"
out="${2:-/tmp/ae_recipes}"
mkdir -p "$out"
py=../.venv-ci/bin/python
export OPENBLAS_NUM_THREADS=1
declare -A recipes=(
  [vq1024_l4_f4]="--codebook 1024 --ae-latent 4 --ae-channels 32,64,128"
  [kl_l4_f4]="--kl --ae-latent 4 --ae-channels 32,64,128"
  [kl_l8_f4]="--kl --ae-latent 8 --ae-channels 32,64,128"
  [kl_l4_f2]="--kl --ae-latent 4 --ae-channels 32,64"
)
for name in vq1024_l4_f4 kl_l4_f4 kl_l8_f4 kl_l4_f2; do
  [ -f "$out/$name.pt" ] && continue
  # shellcheck disable=SC2086
  $py -m idfcr_train.training.train_ind --stage ae --data ../../shared/data/rice2_3s --ckpt "$out/$name.part.pt" \
      ${recipes[$name]} --max-steps "$steps" --hours 10 --threads 2 --save-minutes 100 > "$out/$name.log" 2>&1
  mv "$out/$name.part.pt" "$out/$name.pt"
done
$py -m idfcr_train.reports.ae_ceiling --threads 2 --out "$out/table.json" \
    --ckpt "$out/vq1024_l4_f4.pt" "$out/kl_l4_f4.pt" "$out/kl_l8_f4.pt" "$out/kl_l4_f2.pt"
