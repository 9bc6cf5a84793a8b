#!/usr/bin/env python3
"""Multiply-accumulates per inference of an ONNX graph (Conv, ConvTranspose, MatMul, Gemm).

usage: onnx_macs.py FILE.onnx:1x3x256x256 ...   -> one JSON line per file: {"file", "gmacs", "by_op"}
Shapes come from onnx's shape inference with the input fixed to the given shape.
"""
import json
import sys

import onnx
from onnx import shape_inference


def dims(vi):
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def main():
    for arg in sys.argv[1:]:
        path, shape = arg.split(":")
        shape = [int(d) for d in shape.split("x")]
        model = onnx.load(path)
        inp = model.graph.input[0]
        for d, v in zip(inp.type.tensor_type.shape.dim, shape):
            d.ClearField("dim_param")
            d.dim_value = v
        model = shape_inference.infer_shapes(model)
        shapes = {vi.name: dims(vi) for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
        shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
        by_op = {}
        for n in model.graph.node:
            macs = 0
            if n.op_type == "Conv":
                w, y = shapes.get(n.input[1]), shapes.get(n.output[0])
                if w and y:
                    macs = prod(y) * prod(w[1:])  # out elements x (Cin/group x kh x kw)
            elif n.op_type == "ConvTranspose":
                w, x = shapes.get(n.input[1]), shapes.get(n.input[0])
                if w and x:
                    macs = prod(x) * prod(w[1:])  # in elements x (Cout/group x kh x kw)
            elif n.op_type in ("MatMul", "Gemm"):
                a, y = shapes.get(n.input[0]), shapes.get(n.output[0])
                if a and y:
                    trans_a = any(at.name == "transA" and at.i for at in n.attribute)
                    macs = prod(y) * (a[-2] if trans_a else a[-1])
            if macs:
                by_op[n.op_type] = by_op.get(n.op_type, 0) + macs
        total = sum(by_op.values())
        print(json.dumps({"file": path, "gmacs": total / 1e9, "by_op": {k: v / 1e9 for k, v in by_op.items()}}))


def prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


if __name__ == "__main__":
    main()
