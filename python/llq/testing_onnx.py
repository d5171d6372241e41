"""Malformed and edge-case ONNX files for the importer's tests.

    python -m llq.testing_onnx OUT_DIR

writes unknown-op.onnx, missing-external.onnx (+ no data file),
size-mismatch.onnx, undefined-input.onnx, old-opset.onnx and
typed-data.onnx (a valid model whose weight is float_data, not raw_data).
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inits, inputs, outputs, opset=18, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    m = helper.make_model(graph, opset_imports=imports)
    m.ir_version = 9
    return m


def _io():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    return x, y


def write_all(out):
    os.makedirs(out, exist_ok=True)
    x, y = _io()
    w = numpy_helper.from_array(np.arange(32, dtype=np.float32).reshape(8, 4) / 10, "w")

    m = _model([helper.make_node("FancyMatMul", ["x", "w"], ["y"], name="node_fancy",
                                 domain="com.example")], [w], [x], [y], domains=["com.example"])
    onnx.save(m, os.path.join(out, "unknown-op.onnx"))

    ext = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[8, 4])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "missing.onnx.data"), ("offset", "0"), ("length", "128")):
        e = ext.external_data.add()
        e.key, e.value = k, v
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="node_mm")], [ext], [x], [y])
    onnx.save(m, os.path.join(out, "missing-external.onnx"))

    bad = numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")
    bad.raw_data = bad.raw_data[:100]
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="node_mm")], [bad], [x], [y])
    onnx.save(m, os.path.join(out, "size-mismatch.onnx"))

    m = _model([helper.make_node("MatMul", ["x", "nowhere"], ["y"], name="node_mm")], [w], [x], [y])
    onnx.save(m, os.path.join(out, "undefined-input.onnx"))

    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="node_mm")], [w], [x], [y], opset=11)
    onnx.save(m, os.path.join(out, "old-opset.onnx"))

    typed = helper.make_tensor("w", TensorProto.FLOAT, [8, 32],
                               (np.arange(256, dtype=np.float32) / 100).tolist())
    y2 = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 32])
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="node_mm")], [typed], [x], [y2])
    onnx.save(m, os.path.join(out, "typed-data.onnx"))


if __name__ == "__main__":
    write_all(sys.argv[1])
