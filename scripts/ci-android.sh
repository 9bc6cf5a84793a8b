#!/usr/bin/env bash
# The Android checks CI runs after the native test suite (see .ci/run):
#   1. the library's own tests for aarch64 under qemu (target aarch64-unknown-linux-musl, linked
#      with rust-lld): tract's NEON kernels and our code on arm64;
#   2. the signed debug APK, built with the NDK shim from ../shared/android;
#   3. ../shared/android/verify-apk.sh on it (signature, alignment, arm64 code, NativeActivity,
#      only NDK libraries, no text relocations);
#   4. scripts/check-bionic-symbols.py: every undefined libc/libm/libdl symbol exists in bionic at
#      API <= 26 (the app's minSdk).
# Needs scripts/setup-android.sh to have run. Uses CARGO_TARGET_DIR (.ci/run sets a fixed one).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
shared="$repo/../shared/android"
if [ ! -f "$shared/verify-apk.sh" ] || [ ! -f "$shared/make-ndk-shim.sh" ] || ! ls "$shared"/bionic/*.map.txt >/dev/null 2>&1; then
  echo "ci-android: $shared is missing or incomplete (verify-apk.sh, make-ndk-shim.sh, bionic/*.map.txt):" >&2
  echo "  the Android checks need the project's shared folder next to the repository (../shared)" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
now() { date +%s; }

echo "== aarch64 library tests under qemu (aarch64-unknown-linux-musl)"
t0=$(now)
# tract-linalg assembles its arm64 kernels with the cc crate: clang for the target (assembly only,
# no C headers exist for it here); rust-lld links; qemu-aarch64 runs the test binary.
export CC_aarch64_unknown_linux_musl=clang-14 AR_aarch64_unknown_linux_musl=llvm-ar-14
export CFLAGS_aarch64_unknown_linux_musl="--target=aarch64-linux-musl"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64
# Under emulation the checkpoint fuzz loops (platform-independent parsing, run in full by the
# native suite) would take over half an hour: a 20th of their iterations here. There is no GPU
# adapter or display under qemu: those tests skip with a message instead of failing.
env -u EDGESIGHT_REQUIRE_GPU -u EDGESIGHT_REQUIRE_GUI EDGESIGHT_FUZZ_DIVISOR=20 \
  cargo test --release --locked --target aarch64-unknown-linux-musl --no-default-features --lib
echo "== aarch64 tests: $(( $(now) - t0 )) s"

echo "== APK (NDK shim)"
t0=$(now)
bash android/build.sh --shim
apk=$(bash android/build.sh --print-apk)
echo "== APK built: $(( $(now) - t0 )) s"

echo "== verify-apk.sh"
# verify-apk.sh pipes llvm tools into `grep -q` under pipefail: grep exits at the first match and
# the llvm tool, still writing, gets EPIPE and exits 74, failing the check at random (measured:
# 53 of 200 runs of its readelf | grep -q line). Run it with those greps reading all their input
# first; the checks themselves are unchanged.
verify="$CARGO_TARGET_DIR/android-cache/verify-apk.sh"
mkdir -p "$(dirname "$verify")"
sed -e 's/| grep -q /| grep_all /' -e '/^set -euo pipefail$/a grep_all() { local input; input=$(cat); grep -q "$@" <<<"$input"; }' \
  "$shared/verify-apk.sh" > "$verify"
[ "$(grep -c '| grep_all ' "$verify")" = "$(grep -c '| grep -q ' "$shared/verify-apk.sh")" ] && grep -q '^grep_all()' "$verify" \
  || { echo "ci-android: could not prepare verify-apk.sh" >&2; exit 1; }
bash "$verify" "$apk"
echo "== bionic symbols (minSdk 26)"
python3 scripts/check-bionic-symbols.py --api 26 --arch arm64 --maps "$shared/bionic" "$apk"
