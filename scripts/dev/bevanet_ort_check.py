#!/usr/bin/env python3
"""One-off dev check, not part of the product: runs the BEVANet-S graph that the Rust fixture
test writes on request with onnxruntime and compares it with the official fixture output.

  BEVANET_ONNX_OUT=/tmp/bevanet-s.onnx cargo test --release --lib fixture_parity_with_the_official
  pip install onnx onnxruntime
  python3 scripts/dev/bevanet_ort_check.py /tmp/bevanet-s.onnx [fixtures dir]
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

path = sys.argv[1]
fixtures = sys.argv[2] if len(sys.argv) > 2 else "../shared/reference/fixtures"
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
ops = sorted({n.op_type for n in model.graph.node})
print(f"{len(model.graph.node)} nodes, opset {model.opset_import[0].version}: {' '.join(ops)}")
x = np.load(f"{fixtures}/BEVANet-S.input.npy")
ref = np.load(f"{fixtures}/BEVANet-S.outputs.npz")["out0"]
out = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
d = float(np.abs(out - ref).max())
m = float(np.abs(ref).max())
print(f"onnxruntime {ort.__version__}: max |diff| {d:.3e}, max |official out0| {m:.6f}, ratio {d / m:.2e}")
print(f"argmax agreement {(out.argmax(1) == ref.argmax(1)).mean():.4f}")
sys.exit(0 if d <= 1e-4 * m else 1)
