#!/usr/bin/env bash
# Installs what edgesight needs on Debian 12 / Ubuntu: ffmpeg (video in and out), a Rust
# toolchain new enough for tract (>= 1.91, from rustup; Debian's own rustc is too old), and what
# the live demo builds and runs with (libclang, X11/OpenGL libraries, Xvfb for its tests).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
if ! command -v cargo >/dev/null 2>&1 && ! [ -x "$HOME/.cargo/bin/cargo" ]; then
  missing+=(curl ca-certificates)
fi
# Live demo: libclang for the camera bindings (bindgen, at build time); X11, xkbcommon and Mesa's
# Vulkan (lavapipe) and OpenGL (llvmpipe) when there is no GPU, for wgpu, at run time; Xvfb for the window tests.
for pkg in libclang-dev libx11-6 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 libgl1 libegl1 libgl1-mesa-dri libvulkan1 mesa-vulkan-drivers xvfb xauth; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if ! [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "== installing Rust with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
  echo "note: add Rust to PATH in new shells: source \"\$HOME/.cargo/env\""
fi
echo "== ready: $(ffmpeg -version | head -n1 | cut -d' ' -f1-3); $(PATH="$HOME/.cargo/bin:$PATH" cargo --version)"
