#!/usr/bin/env bash
# One prepared run for a machine with a real GPU (the `device` tool lends one to some sessions,
# 15 minutes in all). It needs no network and no Rust: copy a release build of edgesight into
# gpu-run/edgesight first (gpu-run/ is git-ignored) and pass it along, e.g.
#   mkdir -p gpu-run && cp "$CARGO_TARGET_DIR/release/edgesight" gpu-run/
#   run(command="bash scripts/gpu-device-check.sh", carry=["gpu-run"], timeout_s=500)
# It records which adapter wgpu sees (Vulkan or GL), then the GPU backend's latency and kernel
# profile per model, with the CPU engine on the same machine for reference; results go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${EDGESIGHT_BIN:-gpu-run/edgesight}"
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
exec > >(tee "$out/gpu-check.txt") 2>&1
echo "== machine"; date -u; uname -a; nproc
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5
echo "== Vulkan ICDs"; ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>&1
command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>&1 | grep -E "deviceName|driverName|apiVersion" | head
[ -x "$bin" ] || { echo "no edgesight binary at $bin (see the header of this script)"; exit 1; }
for backend in vulkan gl; do
  echo "== wgpu adapter with WGPU_BACKEND=$backend"
  WGPU_BACKEND=$backend timeout 60 "$bin" --backend gpu bench --clip none.mp4 --model selfie --input 256x256 --runs 3 --out "$out/probe-$backend" 2>&1 | tail -3
  grep -o '"backend": "[^"]*"' "$out/probe-$backend/bench.json" 2>/dev/null
done
# model:input HxW
cases="litepose-s:448x448 bevanet-s:512x1024 litepose-xs:256x256 bevanet-s:1024x2048 movenet-multipose:256x256 selfie:256x256"
for c in $cases; do
  m="${c%%:*}"; hw="${c#*:}"
  echo "== $m $hw on the GPU"
  timeout 120 "$bin" --backend gpu bench --clip none.mp4 --model "$m" --input "$hw" --random-weights --runs 50 --out "$out/gpu-$m-$hw" 2>&1 | grep -v "^note:"
  echo "== $m $hw on the CPU (tract, $(nproc) threads)"
  timeout 60 "$bin" --threads "$(nproc)" bench --clip none.mp4 --model "$m" --input "$hw" --random-weights --runs 5 --out "$out/cpu-$m-$hw" 2>&1 | grep -v "^note:" | tail -2
done
echo "== done"
