#!/usr/bin/env bash
# The GPU check (see scripts/device_check.py for what it measures):
#   scripts/device_check.sh --out DIR [--train-minutes N]   on a machine with an NVIDIA GPU
#   scripts/device_check.sh --smoke --out DIR               tiny, on CPU (the test suite runs this)
# Builds the release binary if needed; uses the CI virtual environment's Python
# (scripts/setup.sh --python) when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3
[ -x .venv-ci/bin/python ] && py=.venv-ci/bin/python
bin=target/release/idfcr
if [[ " $* " == *" --smoke "* ]]; then
  bin=target/debug/idfcr
  [ -x "$bin" ] || cargo build --quiet
else
  [ -x "$bin" ] || cargo build --release --quiet
fi
exec "$py" scripts/device_check.py --binary "$PWD/$bin" "$@"
