#!/usr/bin/env bash
# GNU parallel on one big machine (or several with --sshlogin): N shards,
# each an `idfcr batch --shard i/N` with its share of the threads.
#
#   ./run_shards.sh scenes.txt /data/clear 4
set -euo pipefail
LIST=${1:?list of inputs}
OUT=${2:?output folder}
SHARDS=${3:-4}
IDFCR=${IDFCR:-idfcr}
THREADS=$(( $(nproc) / SHARDS ))
[ "$THREADS" -ge 1 ] || THREADS=1
# -q: parallel hands the command to a shell again, which would split a list
# or output path holding a blank, a quote or a $.
seq 0 $((SHARDS - 1)) | parallel -q --halt never --line-buffer \
  "$IDFCR" batch --list "$LIST" --out-dir "$OUT" --skip-existing --shard {}/"$SHARDS" \
  --threads "$THREADS" -q --summary "$OUT/summary_{}.json" ${IDFCR_ARGS:-}
