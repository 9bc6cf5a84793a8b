#!/usr/bin/env bash
# edgesight (tract, CPU) against onnxruntime on the very same ONNX graphs, in one run.
# Models built from checkpoints get seeded random weights (speed does not depend on weights).
# usage: scripts/bench-vs-onnxruntime.sh [RUNS]   (needs python3; installs onnxruntime+numpy from PyPI if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
out=bench-out/vs-ort
mkdir -p "$out"
python3 -c "import onnxruntime, numpy" 2>/dev/null || python3 -m pip install -q onnxruntime numpy
cargo build --release --locked -q
bin="${CARGO_TARGET_DIR:-target}/release/edgesight"

# model:input HxW:layout:dtype
cases=(
  "litepose-xs:256x256:nchw:float32"
  "litepose-s:448x448:nchw:float32"
  "bevanet-s:512x1024:nchw:float32"
  "movenet-multipose:256x256:nhwc:int32"
  "selfie:256x256:nhwc:float32"
)
printf '%-20s %-10s %12s %12s %12s %14s %14s\n' model input "tract ms" "ORT 1t ms" "ORT 2t ms" "tract/ORT 1t" "tract/ORT 2t"
for c in "${cases[@]}"; do
  IFS=: read -r model hw layout dtype <<<"$c"
  h="${hw%x*}"; w="${hw#*x}"
  "$bin" bench --model "$model" --input "$hw" --random-weights --runs "$runs" \
      --export-onnx "$out/onnx" --out "$out/$model" >/dev/null
  tract=$(python3 -c "import json;print(json.load(open('$out/$model/bench.json'))[0]['inference_p50_ms'])")
  if [ "$layout" = nchw ]; then shape="1x3x${h}x${w}"; else shape="1x${h}x${w}x3"; fi
  ort=$(python3 scripts/ort_bench.py "$runs" "$out/onnx/$model.onnx:$shape:$dtype")
  python3 - "$model" "$hw" "$tract" "$ort" <<'PY'
import json, sys
model, hw, tract, ort = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
o1, o2 = ort["ort_1t_p50_ms"], ort["ort_2t_p50_ms"]
print(f"{model:<20} {hw:<10} {tract:12.1f} {o1:12.1f} {o2:12.1f} {tract / o1:14.2f} {tract / o2:14.2f}")
PY
done
echo "(p50 of $runs runs after 2 warm-up runs each; tract runs single-threaded; ONNX files in $out/onnx)"
