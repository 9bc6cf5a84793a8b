#!/usr/bin/env python3
"""Times ONNX files on onnxruntime, 1 and 2 threads: best-effort peer for `edgesight bench`.

usage: ort_bench.py RUNS FILE.onnx:1x3x448x448[:float32|int32] ...
Prints one JSON object per file: {"file", "shape", "ort_1t_p50_ms", "ort_2t_p50_ms"}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def p50(session, feed, runs):
    for _ in range(2):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t) * 1000.0)
    times.sort()
    return times[(len(times) + 1) // 2 - 1]


def main():
    runs = int(sys.argv[1])
    for arg in sys.argv[2:]:
        parts = arg.split(":")
        path, shape = parts[0], [int(d) for d in parts[1].split("x")]
        dtype = parts[2] if len(parts) > 2 else "float32"
        rng = np.random.default_rng(0)
        x = (rng.random(shape) * 255).astype(np.int32) if dtype == "int32" else rng.random(shape, dtype=np.float32)
        row = {"file": path, "shape": shape}
        for threads in (1, 2):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            row[f"ort_{threads}t_p50_ms"] = p50(s, {s.get_inputs()[0].name: x}, runs)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
