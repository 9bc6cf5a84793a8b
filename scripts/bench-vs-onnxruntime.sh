#!/usr/bin/env bash
# edgesight (CPU engine: tract + edgesight's own kernels) against onnxruntime on the very same
# ONNX graphs, 1 and 2 threads each, in one run. Models built from checkpoints get seeded random
# weights (speed does not depend on weights).
# usage: [REPEAT=N] [EDGESIGHT_BIN=FILE] scripts/bench-vs-onnxruntime.sh [RUNS] [MODEL...]
#   EDGESIGHT_BIN measures that binary (e.g. a copy of an earlier build) instead of building this tree;
#   BENCH_OUT sets the output folder (default bench-out/vs-ort).
#   (needs python3; installs onnxruntime+numpy from PyPI if missing)
# Prints a table per repetition and, with REPEAT > 1, the median of each column over the
# repetitions (a shared machine makes single runs differ by 2x); markdown in bench-out/vs-ort/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
shift || true
out="${BENCH_OUT:-bench-out/vs-ort}"
mkdir -p "$out"
python3 -c "import onnxruntime, numpy" 2>/dev/null || python3 -m pip install -q onnxruntime numpy
if [ -n "${EDGESIGHT_BIN:-}" ]; then
  bin="$EDGESIGHT_BIN"
else
  cargo build --release --locked -q
  bin="${CARGO_TARGET_DIR:-target}/release/edgesight"
fi

# model:input HxW:layout:dtype
cases=(
  "litepose-xs:256x256:nchw:float32"
  "litepose-s:448x448:nchw:float32"
  "bevanet-s:512x1024:nchw:float32"
  "movenet-multipose:256x256:nhwc:int32"
  "selfie:256x256:nhwc:float32"
)
tract_p50() { # threads model hw
  "$bin" --backend cpu --threads "$1" bench --model "$2" --input "$3" --random-weights --runs "$runs" \
      --export-onnx "$out/onnx" --out "$out/$2-$1t" >/dev/null
  python3 -c "import json;print(json.load(open('$out/$2-$1t/bench.json'))[0]['inference_p50_ms'])"
}
repeat="${REPEAT:-1}"
: >"$out/rows.jsonl"
for rep in $(seq 1 "$repeat"); do
printf '%-18s %-9s %9s %9s %8s %9s %9s %8s\n' model input "es 1t" "ORT 1t" "ratio" "es 2t" "ORT 2t" "ratio"
for c in "${cases[@]}"; do
  IFS=: read -r model hw layout dtype <<<"$c"
  if [ $# -gt 0 ] && [[ " $* " != *" $model "* ]]; then continue; fi
  h="${hw%x*}"; w="${hw#*x}"
  t1=$(tract_p50 1 "$model" "$hw")
  if [ "$layout" = nchw ]; then shape="1x3x${h}x${w}"; else shape="1x${h}x${w}x3"; fi
  ort=$(python3 scripts/ort_bench.py "$runs" "$out/onnx/$model.onnx:$shape:$dtype")
  t2=$(tract_p50 2 "$model" "$hw")
  python3 - "$model" "$hw" "$t1" "$t2" "$ort" "$out/rows.jsonl" <<'PY'
import json, sys
model, hw, t1, t2, ort, rows = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5]), sys.argv[6]
o1, o2 = ort["ort_1t_p50_ms"], ort["ort_2t_p50_ms"]
print(f"{model:<18} {hw:<9} {t1:9.1f} {o1:9.1f} {t1 / o1:8.2f} {t2:9.1f} {o2:9.1f} {t2 / o2:8.2f}", flush=True)
with open(rows, "a") as f:
    f.write(json.dumps({"model": model, "input": hw, "es1": t1, "ort1": o1, "es2": t2, "ort2": o2}) + "\n")
PY
done
done
python3 - "$out/rows.jsonl" "$out/table.md" "$repeat" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
repeat = int(sys.argv[3])
med = lambda xs: statistics.median(xs)
lines = ["| model | input | edgesight 1t ms | ORT 1t ms | edgesight / ORT 1t | edgesight 2t ms | ORT 2t ms | edgesight / ORT 2t |",
         "|---|---|---|---|---|---|---|---|"]
if repeat > 1:
    print(f"median over {repeat} repetitions (ratios: median of the per-repetition ratios):")
for model in dict.fromkeys(r["model"] for r in rows):
    rs = [r for r in rows if r["model"] == model]
    e1, o1, e2, o2 = (med([r[k] for r in rs]) for k in ("es1", "ort1", "es2", "ort2"))
    q1, q2 = med([r["es1"] / r["ort1"] for r in rs]), med([r["es2"] / r["ort2"] for r in rs])
    if repeat > 1:
        print(f"{model:<18} {rs[0]['input']:<9} {e1:9.1f} {o1:9.1f} {q1:8.2f} {e2:9.1f} {o2:9.1f} {q2:8.2f}")
    lines.append(f"| {model} | {rs[0]['input']} | {e1:.1f} | {o1:.1f} | {q1:.2f} | {e2:.1f} | {o2:.1f} | {q2:.2f} |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
echo "(p50 of $runs runs after 2 warm-up runs each; ratio < 1: edgesight faster; ONNX files in $out/onnx; table in $out/table.md)"
