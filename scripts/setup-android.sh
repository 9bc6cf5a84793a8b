#!/usr/bin/env bash
# Installs what the Android checks need on Debian 12 (idempotent: only what is missing):
#   - qemu-user (runs the library's aarch64 tests), clang-14 + llvm-14 (assembles tract's arm64
#     kernels; NDK shim compiler; llvm-nm/readelf for the APK checks);
#   - aapt, zipalign, apksigner, android-framework-res (SDK tools and the android.jar stand-in for
#     the NDK shim, see ../shared/android/README.md) and a JDK's keytool; the arm64 package lists
#     (the shim takes Debian's arm64 libunwind);
#   - the Rust targets aarch64-linux-android and aarch64-unknown-linux-musl, and cargo-apk 0.10.0.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
export PATH="$HOME/.cargo/bin:$PATH"

update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "== dpkg --add-architecture arm64"
  as_root dpkg --add-architecture arm64
  update=1
fi
missing=()
for pkg in qemu-user clang-14 llvm-14 aapt zipalign apksigner android-framework-res; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v keytool >/dev/null 2>&1 || missing+=(default-jre-headless)
# make-ndk-shim.sh fetches libunwind-14-dev:arm64 with apt-get download.
apt-cache show libunwind-14-dev:arm64 >/dev/null 2>&1 || update=1
if [ ${#missing[@]} -gt 0 ] || [ "$update" = 1 ]; then
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

installed=$(rustup target list --installed)
for t in aarch64-linux-android aarch64-unknown-linux-musl; do
  grep -qx "$t" <<<"$installed" || { echo "== rustup target add $t"; rustup target add "$t"; }
done

# wgpu-hal's libloading asks for -ldl; musl has dlopen in libc.a, and musl systems ship an empty
# libdl.a for that. Rust's self-contained musl files lack it: add the empty archive there.
musl_lib="$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-musl/lib/self-contained"
if [ -d "$musl_lib" ] && [ ! -f "$musl_lib/libdl.a" ]; then
  echo "== empty libdl.a for aarch64-unknown-linux-musl"
  llvm-ar-14 rcs "$musl_lib/libdl.a"
fi

# cargo-apk: installed once (about 4 minutes on 2 cores), reused afterwards.
if [ "$(cargo apk version 2>/dev/null)" != "cargo-apk 0.10.0" ]; then
  echo "== cargo install cargo-apk 0.10.0"
  cargo install --locked --version 0.10.0 cargo-apk
fi
echo "== android tools ready: $(qemu-aarch64 --version | head -n1); $(cargo apk version)"
