#!/usr/bin/env bash
# The README's first command: install what is needed, build, and run the headless job on the
# bundled clip with the bundled default models. Extra arguments go to `edgesight video`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo run --release --locked -- video assets/vtest-4s.mp4 --out out/demo "$@"
echo "annotated video: out/demo/annotated.mp4; per-frame results: out/demo/frames.jsonl; timings: out/demo/report.json"
