#!/bin/bash
# Train (or resume) the RGB IND models: autoencoder, UNet, ControlNet with
# iterative noise refinement, then the INR ablation (K = 1, 2, 3 at one small
# budget, each from the same frozen UNet). Budgets are wall-clock hours for
# this run; onnx/checkpoints/ind_rgb.pt carries the step counts across runs.
#
#   scripts/train_ind_rgb.sh [AE_H] [UNET_H] [CONTROL_H] [ABLATION_STEPS] [PYTHON]
#
# The Pixel-CR outputs that condition the ControlNet are computed once on the
# whole training images (beside the autoencoder, one thread each) and cached
# outside the repository: they are derived imagery.
set -euo pipefail
cd "$(dirname "$0")/../onnx"
AE_H=${1:-0.4}
UNET_H=${2:-0.45}
CTRL_H=${3:-0.5}
ABL=${4:-150}
PY=${5:-../.venv-ci/bin/python}
DATA=../../shared/data/rice2_3s
CKPT=checkpoints/ind_rgb.pt
CACHE=${IDFCR_COND_CACHE:-/tmp/idfcr_ind_rgb_cond.npz}
T="$PY -m idfcr_train.training.train_ind --data $DATA --pixel-cr checkpoints/pixel_cr_rgb.pt --cond-cache $CACHE"

$T --stage ae --ckpt $CKPT --hours "$AE_H" --threads 1 --resume &
AE=$!
$T --stage cond --ckpt $CKPT --threads 1
wait $AE
$T --stage unet --ckpt $CKPT --hours "$UNET_H" --threads 2 --resume
# The ablation starts from this frozen UNet with an untrained ControlNet.
[ -f /tmp/ind_rgb_unet.pt ] || cp $CKPT /tmp/ind_rgb_unet.pt
$T --stage control --ckpt $CKPT --k-iters 3 --hours "$CTRL_H" --threads 2 --resume
for K in 1 2 3; do
    cp /tmp/ind_rgb_unet.pt /tmp/ind_rgb_k$K.pt
    $T --stage control --ckpt /tmp/ind_rgb_k$K.pt --k-iters $K --max-steps "$ABL" --hours 1 --threads 2 --resume
done
