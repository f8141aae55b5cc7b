#!/usr/bin/env bash
# Everything CI runs: set-up (idempotent), Rust tests, Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --python --qgis
# Habits: formatting and lints fail the build (skipped, with a note, where
# the toolchain lacks the component).
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; else echo "test.sh: rustfmt not installed, format check skipped"; fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --all-targets --locked -- -D warnings
else
  echo "test.sh: clippy not installed, lint check skipped"
fi
# Built first, so that the limit below times the tests alone.
cargo test --locked --no-run
# A hung test fails the run in minutes, not at CI's 90 (a fork deadlock in
# a test once did that); the whole suite takes about 4.
started=$SECONDS
timeout --kill-after=30 1200 cargo test --locked || {
  rc=$?
  if [ $((SECONDS - started)) -ge 1200 ]; then
    echo "test.sh: cargo test ran past 20 minutes (a hung test?)" >&2
  fi
  exit "$rc"
}
# The QGIS Processing script, run for real by qgis_process.
./scripts/test_qgis.sh
# The Slurm, Kubernetes and GNU parallel examples' commands, run locally.
./scripts/test_cluster_examples.sh
# Python side (model code): Debian's CPU torch in .venv-ci (see scripts/setup.sh).
.venv-ci/bin/python -m pytest onnx/tests -q
