#!/usr/bin/env python3
"""PyTorch eager on CUDA against edgesight's wgpu backend, on the same graphs and the same GPU.

Run by scripts/gpu-device-check.sh on the GPU machine, after `edgesight --backend gpu bench
--export-onnx DIR` has measured each model and written the ONNX it ran. Each ONNX graph becomes a
torch.fx module (onnx2torch: one torch op per ONNX node, so the same layers the official PyTorch
models run eagerly), which runs in float32 on CUDA. Its outputs are checked against onnxruntime on
the CPU before any time is quoted.

usage: gpu_vs_pytorch.py DIR model:HxW [model:HxW ...]
DIR/gpu-<model>-<HxW>/bench.json holds edgesight's p50 for that case, DIR/onnx-<model>-<HxW>/ the graph.
"""
import json
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx2torch import convert

RUNS = 50


def p50(fn, runs=RUNS, warmup=10):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(name, onnx_path, shape, edgesight_ms):
    model = onnx.load(onnx_path)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {model.graph.input[0].name: x})
    module = convert(model).cuda().eval()
    rows = []
    with torch.inference_mode():
        xd = torch.from_numpy(x).cuda()
        for label, tf32, autotune in [("fp32", False, False), ("fp32 cudnn.benchmark", False, True), ("tf32 (torch default)", True, False)]:
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = autotune
            out = module(xd)
            outs = out if isinstance(out, (list, tuple)) else [out]
            err = max(float(np.abs(o.float().cpu().numpy() - r).max() / (np.ptp(r) or 1.0)) for o, r in zip(outs, ref))

            def run_only():
                module(xd)
                torch.cuda.synchronize()

            def end_to_end():
                o = module(torch.from_numpy(x).cuda())
                for t in (o if isinstance(o, (list, tuple)) else [o]):
                    t.cpu()

            rows.append((label, p50(run_only), p50(end_to_end), err))
    print(f"{name} {shape[2]}x{shape[3]}: edgesight wgpu p50 {edgesight_ms:.2f} ms (upload, kernels, download)")
    for label, run_ms, e2e_ms, err in rows:
        print(
            f"  torch eager {label:22s} run {run_ms:7.2f} ms, with upload+download {e2e_ms:7.2f} ms"
            f" -> edgesight / torch {edgesight_ms / e2e_ms:.2f}; max|torch-onnxruntime|/range {err:.1e}"
        )
    return {"model": name, "input": list(shape), "edgesight_p50_ms": edgesight_ms,
            "torch": [{"config": l, "run_p50_ms": r, "end_to_end_p50_ms": e, "max_rel_err": err} for l, r, e, err in rows]}


def main():
    bench_dir, cases = sys.argv[1], sys.argv[2:]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, onnxruntime {ort.__version__}")
    results = []
    for case in cases:
        name, hw = case.split(":")
        h, w = (int(v) for v in hw.split("x"))
        try:
            bench = json.load(open(f"{bench_dir}/gpu-{name}-{hw}/bench.json"))
            rows = bench if isinstance(bench, list) else bench.get("inference", bench.get("rows", []))
            ms = next(r["inference_p50_ms"] for r in rows if r["model"] == name)
            results.append(measure(name, f"{bench_dir}/onnx-{name}-{hw}/{name}.onnx", (1, 3, h, w), ms))
        except Exception as e:  # one model failing must not hide the others
            print(f"{name} {hw}: failed: {type(e).__name__}: {e}")
    json.dump(results, open(f"{bench_dir}/gpu-vs-pytorch.json", "w"), indent=1)


if __name__ == "__main__":
    main()
