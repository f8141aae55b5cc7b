#!/usr/bin/env bash
# Run the QGIS Processing script (examples/qgis/idfcr_processing.py) for real
# with qgis_process, headless: a successful run writes the outputs, and a
# failing run (band count mismatch) makes QGIS report idfcr's error.
# Needs Debian's qgis package (scripts/setup.sh --qgis) and a built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's qgis_process wrapper adds --noversioncheck, which qgis_process
# itself rejects; call the real binary.
QP=/usr/bin/qgis_process.bin
[ -x "$QP" ] || QP=$(command -v qgis_process)
bin="$PWD/target/debug/idfcr"
[ -x "$bin" ] || cargo build --quiet
export QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"   # a throwaway QGIS profile
scripts="$HOME/.local/share/QGIS/QGIS3/profiles/default/processing/scripts"
mkdir -p "$scripts"
cp examples/qgis/idfcr_processing.py "$scripts/"
cp testdata/demo/landsat8_cloudy.tif "$work/in.tif"
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); else echo "FAILED: $1"; fail=$((fail+1)); fi; }

"$QP" list 2>/dev/null > "$work/list.txt" || true
check "the script is listed" "grep -q 'script:idfcr_remove' '$work/list.txt'"

"$QP" run script:idfcr_remove -- INPUT="$work/in.tif" OUTPUT="$work/out.tif" MASK="$work/mask.tif" \
  BINARY="$bin" MODEL="$PWD/testdata/models/tiny_swin.onnx" DEVICE=1 > "$work/ok.txt" 2>&1 || true
check "a run writes the output" "test -s '$work/out.tif'"
check "a run writes the mask" "test -s '$work/mask.tif'"
check "progress reaches QGIS" "grep -q '100 - done' '$work/ok.txt'"
check "the output is georeferenced" "gdalinfo '$work/out.tif' | grep -q 'UTM zone 21N'"

# A cloud mask with no cloud: the input comes back as it was.
gdal_translate -q -b 1 -scale 0 255 0 0 "$work/in.tif" "$work/clear_mask.tif"
"$QP" run script:idfcr_remove -- INPUT="$work/in.tif" OUTPUT="$work/masked.tif" CLOUD_MASK="$work/clear_mask.tif" \
  BINARY="$bin" MODEL="$PWD/testdata/models/tiny_swin.onnx" DEVICE=1 > "$work/masked.txt" 2>&1 || true
check "a clear cloud mask passes the input through" \
  "'$bin' eval '$work/masked.tif' '$work/in.tif' --json - | grep -q '\"rmse\": 0.0'"

# A GeoPackage of two layers: QGIS passes the picked one ("|layername=clouds",
# no features: nothing is cloud), not the other ("aoi", the whole scene).
echo '{"type":"FeatureCollection","features":[]}' > "$work/clouds.geojson"
echo '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[0,-9000000],[1000000,-9000000],[1000000,0],[0,0],[0,-9000000]]]}}]}' > "$work/aoi.geojson"
ogr2ogr -q -f GPKG -a_srs EPSG:32621 -nln clouds -nlt POLYGON "$work/two.gpkg" "$work/clouds.geojson"
ogr2ogr -q -update -a_srs EPSG:32621 -nln aoi "$work/two.gpkg" "$work/aoi.geojson"
"$QP" run script:idfcr_remove -- INPUT="$work/in.tif" OUTPUT="$work/layer.tif" CLOUD_MASK="$work/two.gpkg|layername=clouds" \
  BINARY="$bin" MODEL="$PWD/testdata/models/tiny_swin.onnx" DEVICE=1 > "$work/layer.txt" 2>&1 || true
check "a picked GeoPackage layer is the cloud mask" \
  "'$bin' eval '$work/layer.tif' '$work/in.tif' --json - | grep -q '\"rmse\": 0.0'"

# A bundled model by name (looked up in IDFCR_MODEL_DIR, which reaches idfcr
# through QGIS): the same output as the file.
IDFCR_MODEL_DIR="$PWD/testdata/models" "$QP" run script:idfcr_remove -- INPUT="$work/in.tif" \
  OUTPUT="$work/named.tif" BINARY="$bin" MODEL_NAME=tiny_swin DEVICE=1 > "$work/named.txt" 2>&1 || true
check "a bundled model by name runs as its file" \
  "'$bin' eval '$work/named.tif' '$work/out.tif' --json - | grep -q '\"rmse\": 0.0'"

set +e
"$QP" run script:idfcr_remove -- INPUT="$work/in.tif" OUTPUT="$work/bad.tif" \
  BINARY="$bin" MODEL="$PWD/testdata/models/tiny_conv4.onnx" DEVICE=1 > "$work/bad.txt" 2>&1
code=$?
set -e
check "a failing run fails in QGIS" "[ $code -ne 0 ]"
check "QGIS shows idfcr's error" "grep -q 'expects 4' '$work/bad.txt'"
check "nothing is left at the failed output" "test ! -e '$work/bad.tif'"
echo "qgis: $pass passed, $fail failed"
[ "$fail" = 0 ]
