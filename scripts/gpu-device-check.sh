#!/usr/bin/env bash
# One prepared run for a machine with a real GPU (the `device` tool lends one to some sessions,
# 15 minutes in all). That machine has no Rust and no network, and the working tree that travels
# is limited to 64 MiB, so the release CLI and the two GPU test binaries travel as one xz bundle
# (they share most of their code, which a large dictionary folds away), with the Vulkan loader:
#   bash scripts/gpu-device-check.sh --pack      # here: writes gpu-run/bundle.tar.xz and .gl/*.deb
#   run(command="bash scripts/gpu-device-check.sh", carry=["gpu-run", ".gl", ".whl"], timeout_s=480)
# There it records the adapter wgpu picks, runs the GPU parity tests (GPU against tract on the
# same graphs) on the real GPU, then the GPU backend's latency and kernel profile per model,
# with the CPU engine on the same machine for reference, and PyTorch eager on CUDA on the same
# graphs (scripts/gpu_vs_pytorch.py). Results go to $OUT (8 files at most).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${1:-}" = "--pack" ]; then
  set -e
  : "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR to the build folder}"
  cargo build --release --locked
  tests=$(cargo test --release --locked --no-run --test gpu --test gpu_ops 2>&1 | grep -oE '\(/[^)]*/deps/gpu(_ops)?-[0-9a-f]+\)' | tr -d '()')
  stage=$(mktemp -d)
  strip -o "$stage/edgesight" "$CARGO_TARGET_DIR/release/edgesight"
  for t in $tests; do strip -o "$stage/$(basename "$t" | sed -E 's/-[0-9a-f]+$//')-tests" "$t"; done
  mkdir -p gpu-run
  tar cf - -C "$stage" . | xz -T1 --lzma2=preset=9e,dict=192MiB >gpu-run/bundle.tar.xz
  rm -rf "$stage"
  if ! ls .gl/*.deb >/dev/null 2>&1; then
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>.git/info/exclude
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update >/dev/null
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  if ! ls .whl/onnx2torch-*.whl >/dev/null 2>&1; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
    python3 -m pip download -q --no-deps --only-binary=:all: -d .whl onnx2torch==1.5.15
  fi
  ls -la gpu-run .gl .whl
  exit 0
fi

out="${OUT:-gpu-check-out}"
mkdir -p "$out"
exec > >(tee "$out/gpu-check.txt") 2>&1
echo "== machine"; date -u; uname -a; nproc
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5
# The image may lack the Vulkan loader (libvulkan.so.1): unpack the carried one.
if ! ldconfig -p | grep -q 'libvulkan.so.1' && ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
echo "== Vulkan loader and ICDs"; ldconfig -p | grep libvulkan; ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>&1; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"

bins=/tmp/edgesight-gpu
mkdir -p "$bins"
if [ -f gpu-run/bundle.tar.xz ]; then
  xz -dc gpu-run/bundle.tar.xz | tar xf - -C "$bins" || python3 -c "import lzma,tarfile,sys; tarfile.open(fileobj=lzma.open('gpu-run/bundle.tar.xz')).extractall('$bins')"
fi
bin="${EDGESIGHT_BIN:-$bins/edgesight}"
[ -x "$bin" ] || { echo "no edgesight binary at $bin (run this script with --pack first)"; exit 1; }
# The test binaries find tests/data and models through the folder they were built in.
built_in=$(grep -aoE '/[A-Za-z0-9/_.-]*/work/main|/work/main' "$bins/gpu-tests" 2>/dev/null | head -1)
for d in /work/main $built_in; do
  [ -e "$d" ] || { mkdir -p "$(dirname "$d")"; ln -s "$root" "$d"; }
done

for backend in vulkan gl; do
  echo "== wgpu adapter with WGPU_BACKEND=$backend"
  WGPU_BACKEND=$backend timeout 60 "$bin" --backend gpu bench --clip none.mp4 --model selfie --input 256x256 --runs 3 --out "$bins/probe-$backend" 2>&1 | tail -3
  grep -o '"backend": "[^"]*"' "$bins/probe-$backend/bench.json" 2>/dev/null
done

# Parity on the real GPU: the same tests CI runs on lavapipe.
for t in gpu-tests gpu_ops-tests; do
  [ -x "$bins/$t" ] || continue
  echo "== $t (EDGESIGHT_REQUIRE_GPU=1)"
  EDGESIGHT_REQUIRE_GPU=1 timeout 150 "$bins/$t" --test-threads=1 2>&1 | tee "$out/$t.txt" | grep -E "^test |test result|panicked|error" | head -40
done

# model:input HxW
cases="${CASES:-litepose-s:448x448 bevanet-s:512x1024 litepose-xs:256x256 movenet-multipose:256x256 selfie:256x256 bevanet-s:1024x2048}"
for c in $cases; do
  m="${c%%:*}"; hw="${c#*:}"
  echo "== $m $hw on the GPU"
  timeout 60 "$bin" --backend gpu bench --clip none.mp4 --model "$m" --input "$hw" --random-weights --runs 30 --export-onnx "$bins/onnx-$m-$hw" --out "$bins/gpu-$m-$hw" 2>&1 | grep -v "^note:"
  echo "== $m $hw on the CPU (edgesight, $(nproc) threads)"
  timeout 40 "$bin" --threads "$(nproc)" bench --clip none.mp4 --model "$m" --input "$hw" --random-weights --runs 5 --out "$bins/cpu-$m-$hw" 2>&1 | grep -v "^note:" | tail -2
done
# PyTorch eager on CUDA on the same graphs (onnx2torch travels as a wheel in .whl/).
if ls .whl/onnx2torch-*.whl >/dev/null 2>&1; then
  echo "== PyTorch eager on the same graphs"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 timeout 240 python3 scripts/gpu_vs_pytorch.py "$bins" $(echo $cases | tr ' ' '\n' | grep -E '^(litepose|bevanet)')
fi
(cd "$bins" && tar czf - $(ls -d probe-* gpu-* cpu-* 2>/dev/null | grep -v tests)) >"$out/bench-json.tar.gz"
echo "== done"; date -u
