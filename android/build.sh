#!/usr/bin/env bash
# Builds the signed debug APK of edgesight for Android (arm64-v8a, minSdk 26) and prints its path.
#
#   With a real NDK and SDK (users):
#     export ANDROID_NDK_ROOT=$HOME/Android/Sdk/ndk/27.2.12479018   # any NDK r25 or newer
#     export ANDROID_HOME=$HOME/Android/Sdk                          # build-tools + a platform (android.jar)
#     bash android/build.sh
#     adb install -r "$(bash android/build.sh --print-apk)"
#
#   Without an NDK (this project's CI): bash android/build.sh --shim
#     builds an NDK-shaped toolchain from Debian packages with ../shared/android/make-ndk-shim.sh
#     (clang-14, rust-lld, stub system libraries; see scripts/setup-android.sh for the packages).
#
# Needs: rustup target aarch64-linux-android, cargo-apk 0.10.0 (installed here once if missing),
# keytool (a debug keystore is generated once if missing).
# Environment: CARGO_TARGET_DIR (default: <repo>/target); EDGESIGHT_ANDROID_CACHE: where the shim
# toolchain and the debug keystore are kept (default: $CARGO_TARGET_DIR/android-cache).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
cache="${EDGESIGHT_ANDROID_CACHE:-$CARGO_TARGET_DIR/android-cache}"
apk="$CARGO_TARGET_DIR/release/apk/edgesight.apk"
CARGO_APK_VERSION=0.10.0

die() { echo "android/build.sh: $*" >&2; exit 1; }

shim=0
case "${1:-}" in
  --shim) shim=1 ;;
  --print-apk) echo "$apk"; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (use --shim to build without an NDK, --print-apk for the APK's path)" ;;
esac

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
mkdir -p "$cache"

if [ "$shim" = 1 ]; then
  shared="$repo/../shared/android"
  [ -f "$shared/make-ndk-shim.sh" ] || die "$shared/make-ndk-shim.sh is missing: --shim needs the project's shared folder next to the repository (../shared/android)"
  # Rebuilt when the script or the Rust toolchain (its rust-lld path is baked in) changes.
  # The shim's wrappers name their own folder: a shim copied or moved from elsewhere is rebuilt.
  stamp="$(sha256sum "$shared/make-ndk-shim.sh" | cut -c1-64) $(rustc --print sysroot) $cache/shim"
  if [ "$(cat "$cache/shim/.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "== NDK shim -> $cache/shim"
    bash "$shared/make-ndk-shim.sh" "$cache/shim" >/dev/null
    echo "$stamp" > "$cache/shim/.stamp"
  fi
  export ANDROID_HOME="$cache/shim/sdk" ANDROID_NDK_ROOT="$cache/shim/ndk"
else
  [ -n "${ANDROID_NDK_ROOT:-}" ] && [ -d "$ANDROID_NDK_ROOT" ] \
    || die "set ANDROID_NDK_ROOT to an Android NDK (r25 or newer), or use --shim (see the comment at the top)"
  [ -n "${ANDROID_HOME:-${ANDROID_SDK_ROOT:-}}" ] || die "set ANDROID_HOME to an Android SDK with build-tools and a platform"
  export ANDROID_HOME="${ANDROID_HOME:-$ANDROID_SDK_ROOT}"
fi

rustup target list --installed 2>/dev/null | grep -qx aarch64-linux-android \
  || die "the Rust target is missing: rustup target add aarch64-linux-android"

# cargo-apk: reuse an installed 0.10.0 (CI installs it once), else install it (about 4 minutes).
if [ "$(cargo apk version 2>/dev/null)" != "cargo-apk $CARGO_APK_VERSION" ]; then
  echo "== cargo install cargo-apk $CARGO_APK_VERSION"
  cargo install --locked --version "$CARGO_APK_VERSION" cargo-apk
fi

# A debug keystore (the Android SDK's usual one, made here so nothing needs the SDK's tools).
keystore="$cache/debug.keystore"
if [ ! -f "$keystore" ]; then
  command -v keytool >/dev/null || die "keytool not found (Debian: apt-get install default-jdk-headless)"
  keytool -genkeypair -keystore "$keystore" -storepass android -keypass android -alias androiddebugkey \
    -dname "CN=Android Debug,O=Android,C=US" -keyalg RSA -keysize 2048 -validity 10000 >/dev/null 2>&1 \
    || die "keytool could not create $keystore"
fi
export CARGO_APK_RELEASE_KEYSTORE="$keystore" CARGO_APK_RELEASE_KEYSTORE_PASSWORD=android

# Assets: the bundled ONNX models and their catalogue (not the untrained .pth fixtures).
rm -rf "$here/assets"
mkdir -p "$here/assets"
cp "$repo"/models/*.onnx "$repo/models/catalog.json" "$here/assets/"

cd "$here"
# cargo-apk has no --locked: check that Cargo.lock is complete first.
cargo metadata --locked --format-version 1 >/dev/null || die "android/Cargo.lock is out of date (run cargo update -w in android/)"
cargo apk build --release
[ -f "$apk" ] || die "cargo apk did not produce $apk"
echo "APK: $apk"
