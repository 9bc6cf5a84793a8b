#!/usr/bin/env bash
# One prepared run for a machine with a real GPU (the `device` tool lends one to some sessions,
# 15 minutes in all). That machine has no Rust and no network, and the working tree that travels
# is limited to 64 MiB, so the release CLI and the two GPU test binaries travel as one xz bundle
# (they share most of their code, which a large dictionary folds away), with the Vulkan loader:
#   bash scripts/gpu-device-check.sh --pack      # here: gpu-run/ (bundle, commit, models), .gl/*.deb
#   bash scripts/gpu-device-check.sh --slim      # here, when --pack says the tree is too large
#   run(command="bash scripts/gpu-device-check.sh", carry=["gpu-run", ".gl", ".whl"], timeout_s=540)
#   bash scripts/gpu-device-check.sh --restore   # here, after the run, when --slim was used
# There it first checks that wgpu sees a real GPU through Vulkan (else it stops at once, before
# spending the lease), prints the commit the bundle was built from, then runs the GPU parity tests
# (GPU against tract on the same graphs), then per model the GPU backend's latency after a
# sustained warm-up, its dispatch count and per-kernel GPU times (timestamp queries), GPU clocks
# before and after, the CPU engine on the same machine for reference, and PyTorch eager on CUDA on
# the same graphs (scripts/gpu_vs_pytorch.py). Variants of the planner, each selected by an
# environment variable, run from the same bundle: VARIANTS="default nofuse noseparable"
# (EDGESIGHT_GPU_SKIP_RULES=all / separable); also available: direct, igemm, gemm, vec4 (every
# dense convolution forced onto conv_dense / conv_igemm / conv1x1_gemm / conv1x1_vec4 wherever
# that shader applies, EDGESIGHT_GPU_CONV, against the default's choice by timing), e.g.
# VARIANTS="default direct". Results go to $OUT (8 files at most).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# The device tool's limit on what travels: tracked files, untracked files git does not ignore,
# carried folders.
LIMIT_MIB=64

# Bytes that would travel: tracked and untracked-not-ignored files, plus the carried folders.
travel_bytes() {
  { git ls-files -z --cached --others --exclude-standard; for d in gpu-run .gl .whl; do [ -d "$d" ] && find "$d" -type f -print0; done; } |
    xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# Large tracked files the device check does not need (the bundle brings the models it needs).
slim_list() {
  git ls-files -z models tests/data/fixtures | xargs -0 -r stat -c '%s %n' | awk '$1 > 1000000 {print $2}'
}

if [ "${1:-}" = "--slim" ]; then
  # Keeps the large files out of what travels for one run: untracked in the index (the files stay
  # on disk) and ignored; --restore undoes both. Nothing is committed.
  slim_list >.git/gpu-slim.list
  while read -r f; do
    git rm -q --cached -- "$f"
    grep -qxF "/$f" .git/info/exclude 2>/dev/null || echo "/$f" >>.git/info/exclude
  done <.git/gpu-slim.list
  echo "travels now: $(( $(travel_bytes) / 1048576 )) MiB (limit $LIMIT_MIB); undo with --restore after the run"
  exit 0
fi
if [ "${1:-}" = "--restore" ]; then
  [ -f .git/gpu-slim.list ] || { echo "nothing to restore"; exit 0; }
  while read -r f; do
    git reset -q -- "$f"
    grep -vxF "/$f" .git/info/exclude >.git/info/exclude.tmp; mv .git/info/exclude.tmp .git/info/exclude
  done <.git/gpu-slim.list
  rm -f .git/gpu-slim.list
  git status --short | head
  exit 0
fi

if [ "${1:-}" = "--pack" ]; then
  set -e
  : "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR to the build folder}"
  cargo build --release --locked
  tests=$(cargo test --release --locked --no-run --test gpu --test gpu_ops 2>&1 | grep -oE '\(/[^)]*/deps/gpu(_ops)?-[0-9a-f]+\)' | tr -d '()')
  stage=$(mktemp -d)
  strip -o "$stage/edgesight" "$CARGO_TARGET_DIR/release/edgesight"
  for t in $tests; do strip -o "$stage/$(basename "$t" | sed -E 's/-[0-9a-f]+$//')-tests" "$t"; done
  mkdir -p gpu-run/models
  tar cf - -C "$stage" . | xz -T1 --lzma2=preset=9e,dict=192MiB >gpu-run/bundle.tar.xz
  rm -rf "$stage"
  git rev-parse HEAD >gpu-run/commit.txt
  git status --short | grep -q . && echo "(with uncommitted changes)" >>gpu-run/commit.txt
  # The models the check runs (the rest stays behind: see --slim).
  cp models/catalog.json models/selfie.onnx models/meet.onnx models/movenet-multipose.onnx gpu-run/models/
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
  mib=$(( $(travel_bytes) / 1048576 ))
  if [ "$mib" -gt "$LIMIT_MIB" ]; then
    echo "the tree that would travel is $mib MiB, over the device tool's $LIMIT_MIB MiB: run --slim before the run, --restore after"
  else
    echo "the tree that would travel is $mib MiB (limit $LIMIT_MIB)"
  fi
  exit 0
fi

out="${OUT:-gpu-check-out}"
mkdir -p "$out"
exec > >(tee "$out/gpu-check.txt") 2>&1
echo "== machine"; date -u; uname -a; nproc
echo "== bundle built from $(cat gpu-run/commit.txt 2>/dev/null | tr '\n' ' ')"
clocks() { nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu --format=csv,noheader 2>&1 | head -2; }
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
# The models travel in gpu-run/models (the tree may have been slimmed).
[ -f gpu-run/models/catalog.json ] && export EDGESIGHT_MODELS="$root/gpu-run/models"
# The test binaries find tests/data and models through the folder they were built in.
built_in=$(grep -aoE '/[A-Za-z0-9/_.-]*/work/main|/work/main' "$bins/gpu-tests" 2>/dev/null | head -1)
for d in /work/main $built_in; do
  [ -e "$d" ] || { mkdir -p "$(dirname "$d")"; ln -s "$root" "$d"; }
done
mkdir -p "$root/models"
for f in gpu-run/models/*; do [ -f "$root/models/$(basename "$f")" ] || cp "$f" "$root/models/"; done

# Preflight: a real GPU through Vulkan, or stop now.
echo "== preflight: the adapter wgpu picks through Vulkan"
WGPU_BACKEND=vulkan timeout 60 "$bin" --backend gpu bench --clip none.mp4 --model selfie --input 256x256 --runs 3 --out "$bins/probe" 2>&1 | tail -3
adapter=$(grep -o '"backend": "[^"]*"' "$bins/probe/bench.json" 2>/dev/null | head -1)
echo "adapter: ${adapter:-none}"
case "$adapter" in
  *"via Vulkan"*) if echo "$adapter" | grep -qiE 'llvmpipe|lavapipe|swiftshader'; then echo "a CPU emulation, not a GPU: stopping"; exit 2; fi ;;
  *) echo "no GPU through Vulkan: stopping"; exit 2 ;;
esac
echo "== clocks before"; clocks

# Parity on the real GPU: the same tests CI runs on lavapipe.
for t in gpu-tests gpu_ops-tests; do
  [ -x "$bins/$t" ] || continue
  echo "== $t (EDGESIGHT_REQUIRE_GPU=1)"
  EDGESIGHT_REQUIRE_GPU=1 timeout 150 "$bins/$t" --test-threads=1 2>&1 | tee "$out/$t.txt" | grep -E "^test |test result|panicked|error" | head -40
done

# Sustained warm-up: clocks ramp up under load; measure after.
echo "== warm-up (20 s of LitePose-S on the GPU)"
end=$(( $(date +%s) + 20 ))
while [ "$(date +%s)" -lt "$end" ]; do
  timeout 30 "$bin" --backend gpu bench --clip none.mp4 --model litepose-s --input 448x448 --random-weights --runs 50 --out "$bins/warm" >/dev/null 2>&1 || break
done
echo "== clocks after warm-up"; clocks

# model:input HxW, per planner variant (VARIANTS: default, nofuse, noseparable).
cases="${CASES:-litepose-s:448x448 bevanet-s:512x1024 litepose-xs:256x256 movenet-multipose:256x256 selfie:256x256 bevanet-s:1024x2048}"
for variant in ${VARIANTS:-default nofuse noseparable}; do
  skip=; conv=
  case "$variant" in
    nofuse) skip=all ;;
    noseparable) skip=separable ;;
    direct) conv=conv_dense ;;
    igemm) conv=conv_igemm ;;
    gemm) conv=conv1x1_gemm ;;
    vec4) conv=conv1x1_vec4 ;;
  esac
  for c in $cases; do
    m="${c%%:*}"; hw="${c#*:}"
    echo "== $m $hw on the GPU ($variant)"
    EDGESIGHT_GPU_SKIP_RULES=$skip EDGESIGHT_GPU_CONV=$conv timeout 60 "$bin" --backend gpu bench --clip none.mp4 --model "$m" --input "$hw" --random-weights --runs 30 --export-onnx "$bins/onnx-$m-$hw" --out "$bins/gpu-$variant-$m-$hw" 2>&1 | grep -v "^note:"
    [ "$variant" = default ] && ln -sfn "$bins/gpu-$variant-$m-$hw" "$bins/gpu-$m-$hw"
  done
done
echo "== clocks after the GPU runs"; clocks
for c in $cases; do
  m="${c%%:*}"; hw="${c#*:}"
  echo "== $m $hw on the CPU (edgesight, $(nproc) threads)"
  timeout 40 "$bin" --threads "$(nproc)" bench --clip none.mp4 --model "$m" --input "$hw" --random-weights --runs 5 --out "$bins/cpu-$m-$hw" 2>&1 | grep -v "^note:" | tail -2
done
# PyTorch eager on CUDA on the same graphs (onnx2torch travels as a wheel in .whl/).
if ls .whl/onnx2torch-*.whl >/dev/null 2>&1; then
  echo "== PyTorch eager on the same graphs"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 timeout 240 python3 scripts/gpu_vs_pytorch.py "$bins" $(echo $cases | tr ' ' '\n' | grep -E '^(litepose|bevanet)')
fi
(cd "$bins" && tar czhf - $(ls -d probe* gpu-* cpu-* 2>/dev/null | grep -v tests)) >"$out/bench-json.tar.gz"
echo "== done"; date -u
