#!/usr/bin/env bash
# Install what idfcr needs on a fresh Debian/Ubuntu machine, idempotently:
#   - GDAL (libgdal-dev for building, gdal-bin for the tests' gdalinfo);
#   - the ONNX Runtime shared library, taken from the `onnxruntime` wheel on
#     PyPI into the project cache .cache/onnxruntime (the binary looks there);
#   - with --python: a virtual environment .venv-ci for the Python tests and
#     training
#     (Debian's CPU-only python3-torch with OpenBLAS, which is 50x faster at
#     matrix products than the reference BLAS it otherwise links, plus
#     onnxruntime from PyPI);
#   - with --qgis: Debian's QGIS, to test the Processing script headless.
# Nothing is downloaded at build time; set ORT_VERSION to pick another release.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION="${ORT_VERSION:-1.31.1}"
want_python=0
want_qgis=0
for a in "$@"; do
  [ "$a" = "--python" ] && want_python=1
  [ "$a" = "--qgis" ] && want_qgis=1
done

# The Rust toolchain is the one thing apt cannot give (Debian's rustc is
# older than the crates need): say so here, not as a cargo error later.
rust_minor=$(cargo --version 2>/dev/null | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
if [ -z "$rust_minor" ] || [ "$rust_minor" -lt 85 ]; then
  echo "setup: idfcr needs Rust 1.85 or later (found: $(cargo --version 2>/dev/null || echo none)); install it with rustup: https://rustup.rs" >&2
  exit 1
fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=()
dpkg -s libgdal-dev >/dev/null 2>&1 || pkgs+=(libgdal-dev)
dpkg -s gdal-bin >/dev/null 2>&1 || pkgs+=(gdal-bin)
dpkg -s pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
command -v cc >/dev/null 2>&1 || pkgs+=(build-essential)
if [ "$want_python" = 1 ]; then
  for p in python3-venv python3-pip python3-torch python3-numpy python3-pil python3-pytest python3-onnx python3-gdal python3-skimage python3-libsvm libopenblas0-pthread parallel; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
fi
if [ "$want_qgis" = 1 ]; then
  for p in qgis python3-qgis qgis-providers; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "setup: installing ${pkgs[*]}"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# pip (to fetch the wheel) may be missing on a bare system Python.
if ! python3 -m pip --version >/dev/null 2>&1; then
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi

cache=.cache/onnxruntime
if ! ls "$cache"/libonnxruntime.so."$ORT_VERSION" >/dev/null 2>&1; then
  echo "setup: fetching ONNX Runtime $ORT_VERSION from the PyPI wheel"
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  py=$(command -v python3)
  case "$(uname -m)" in
    x86_64) platform=manylinux_2_28_x86_64 ;;
    aarch64|arm64) platform=manylinux_2_28_aarch64 ;;
    *) echo "setup: no ONNX Runtime wheel for $(uname -m); install libonnxruntime yourself and set ORT_DYLIB_PATH" >&2; exit 1 ;;
  esac
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --platform "$platform" \
      -d "$tmp" "onnxruntime==$ORT_VERSION"
  "$py" - "$tmp" "$cache" <<'PY'
import glob, sys, zipfile, os
tmp, cache = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime.so"):
            with z.open(n) as src, open(os.path.join(cache, base), "wb") as dst:
                dst.write(src.read())
            print("setup: extracted", base)
PY
fi

if [ "$want_python" = 1 ] && [ ! -x .venv-ci/bin/python ]; then
  echo "setup: creating .venv-ci (Debian torch + PyPI onnxruntime)"
  /usr/bin/python3 -m venv --system-site-packages .venv-ci
  .venv-ci/bin/pip install -q "onnxruntime==$ORT_VERSION"
fi
# scikit-video and image-quality: the NIQE and BRISQUE references that
# `idfcr quality` is checked against (onnx/tests/test_noref.py); their
# dependencies come from Debian (NumPy, SciPy, Pillow, scikit-image, libsvm).
if [ "$want_python" = 1 ] && ! .venv-ci/bin/python -c "import skvideo, imquality" 2>/dev/null; then
  .venv-ci/bin/pip install -q --no-deps "scikit-video==1.1.11" "image-quality==1.2.7"
fi
echo "setup: ok (ONNX Runtime in $cache)"
