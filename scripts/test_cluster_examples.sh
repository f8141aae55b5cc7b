#!/usr/bin/env bash
# Run the cluster examples' commands locally: the Slurm array script once per
# task id (as sbatch would), the Kubernetes Job's container command once per
# completion index, and the GNU parallel script; then check that every input
# was processed exactly once in each case.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/target/debug/idfcr"
[ -x "$bin" ] || cargo build --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export IDFCR="$bin" IDFCR_ARGS="--model $PWD/testdata/models/tiny_conv.onnx --device cpu"
for i in $(seq 1 9); do
  gdal_translate -q -srcwin $((i * 40)) $((i * 30)) 48 40 testdata/demo/landsat8_cloudy.tif "$work/scene_$i.tif"
done
ls "$work"/scene_*.tif > "$work/scenes.txt"
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); else echo "FAILED: $1"; fail=$((fail+1)); fi; }
once() {  # every input done exactly once across the summaries in $1
  python3 - "$1" <<'PY'
import glob, json, sys
done = [i["input"] for f in glob.glob(sys.argv[1] + "/summary_*.json") for i in json.load(open(f))["items"] if i["status"] == "ok"]
want = open(sys.argv[1] + "/../scenes.txt").read().split()
sys.exit(0 if sorted(done) == sorted(want) else 1)
PY
}

# Slurm: --array=0,2 then a rerun of the missing task (--array=1): each task
# keeps its shard whatever the array it was started in.
mkdir -p "$work/slurm"
for id in 0 2 1; do
  SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 SLURM_CPUS_PER_TASK=1 \
    bash examples/slurm/idfcr_array.sbatch "$work/scenes.txt" "$work/slurm" 3
done
check "slurm array: every input once" "once '$work/slurm'"

# Kubernetes Indexed Job: the container command with the list and outputs mapped to $work.
mkdir -p "$work/k8s"
cmd=$(python3 -c "
import re, sys
text = open('examples/kubernetes/idfcr-indexed-job.yaml').read()
block = text.split('- >-', 1)[1].split('volumeMounts', 1)[0]
print(' '.join(l.strip() for l in block.strip().splitlines()))")
cmd=${cmd//\/archive\/scenes.txt/$work/scenes.txt}
cmd=${cmd//\/archive\/clear/$work/k8s}
cmd=${cmd/exec idfcr/exec \"\$IDFCR\"}
for idx in 0 1 2 3; do
  JOB_COMPLETION_INDEX=$idx SHARDS=4 sh -c "$cmd $IDFCR_ARGS"
done
check "kubernetes indexed job: every input once" "once '$work/k8s'"

# GNU parallel, on an output folder whose name holds a blank and a quote.
if command -v parallel >/dev/null; then
  par="$work/par d'x"
  mkdir -p "$par"
  examples/parallel/run_shards.sh "$work/scenes.txt" "$par" 3 >/dev/null
  check "gnu parallel: every input once" "once \"\$par\""
else
  echo "gnu parallel not installed (apt-get install parallel); skipped"
fi
echo "cluster examples: $pass passed, $fail failed"
[ "$fail" = 0 ]
