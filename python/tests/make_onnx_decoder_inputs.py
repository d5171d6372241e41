#!/usr/bin/env python3
"""Generates the .onnx files the C++ ONNX decoder tests read.

The files are checked in under unittests/Import/Inputs/; this script only
documents how they were made (the C++ tests hard-code the values below, so
change both together). It needs the `onnx` and `numpy` packages:

    python python/tests/make_onnx_decoder_inputs.py [output-dir]

Outputs:
  features.onnx   every feature the decoder handles, all data inside the file:
                  raw_data and typed-field (float_data, int64_data, int32_data
                  for float16/bfloat16/int8/bool, double_data, uint64_data)
                  initializers, a Constant with a tensor attribute, every
                  attribute type, an If with then/else subgraphs reading an
                  outer value, node metadata_props, dim_param/dim_value shapes,
                  opset imports for "" and "com.microsoft".
  tiny.onnx       a small MatMul+Add model saved with external data
  tiny.onnx.data  (all tensors in one file, size_threshold=0).
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "..", "unittests", "Import", "Inputs")


def make_features():
    # Initializers. numpy_helper.from_array writes raw_data; helper.make_tensor
    # with raw=False writes the typed fields.
    w = numpy_helper.from_array(
        (np.arange(12, dtype=np.float32) * 0.5).reshape(4, 3), "W")
    five = numpy_helper.from_array(np.array(5, dtype=np.int64), "five")
    b = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.25, -1.5, 2.0])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    h = helper.make_tensor("h", TensorProto.FLOAT16, [2],
                           np.array([1.0, -2.0], dtype=np.float16))
    bf = helper.make_tensor("bf", TensorProto.BFLOAT16, [2], [1.0, -2.0])
    i8 = helper.make_tensor("i8", TensorProto.INT8, [2], [-3, 7])
    flags = helper.make_tensor("flags", TensorProto.BOOL, [3],
                               [True, False, True])
    d = helper.make_tensor("d", TensorProto.DOUBLE, [1], [1.5])
    u32 = helper.make_tensor("u32", TensorProto.UINT32, [2], [7, 4000000000])

    mm = helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm")
    add = helper.make_node("Add", ["mm", "b"], ["added"], name="add")
    for key, value in [("source", "layer0"), ("note", "bias")]:
        entry = add.metadata_props.add()
        entry.key, entry.value = key, value
    const = helper.make_node(
        "Constant", [], ["c"], name="const",
        value=numpy_helper.from_array(np.array([7, 8], dtype=np.int64),
                                      "const_val"))
    fused = helper.make_node(
        "FusedThing", ["added", "", "c"], ["z", ""], name="fused",
        domain="com.microsoft",
        alpha=0.5,
        count=3,
        mode="fast",
        weight=helper.make_tensor("wt", TensorProto.FLOAT, [2], [1.0, 2.0]),
        scales=[0.5, 1.5],
        axes=[-1, 0, 2],
        tags=["a", "bc"],
        pair=[helper.make_tensor("p0", TensorProto.INT32, [1], [11]),
              helper.make_tensor("p1", TensorProto.INT32, [1], [12])])
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["then_out"], name="then_id")],
        "then_g", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT,
                                       ["N", 3])])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["z"], ["else_out"], name="else_neg")],
        "else_g", [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT,
                                       ["N", 3])])
    if_node = helper.make_node("If", ["cond"], ["y"], name="if",
                               then_branch=then_g, else_branch=else_g)
    reshape = helper.make_node("Reshape", ["y", "shape"], ["out"],
                               name="reshape")

    graph = helper.make_graph(
        [mm, add, const, fused, if_node, reshape], "main",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        initializer=[w, five, b, shape, h, bf, i8, flags, d, u32],
        value_info=[helper.make_tensor_value_info("mm", TensorProto.FLOAT,
                                                  ["N", 3])])
    model = helper.make_model(
        graph, producer_name="llq-test",
        opset_imports=[helper.make_opsetid("", 17),
                       helper.make_opsetid("com.microsoft", 1)])
    model.producer_version = "1.0"
    model.ir_version = 8
    helper.set_model_props(model, {"author": "llq", "purpose": "decoder test"})
    return model


def make_tiny():
    w = numpy_helper.from_array(
        (np.arange(16, dtype=np.float32) / 4).reshape(4, 4), "W")
    b = numpy_helper.from_array(np.array([1, 2, 3, 4], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm"),
         helper.make_node("Add", ["mm", "b"], ["y"], name="add")],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[w, b])
    model = helper.make_model(graph, producer_name="llq-test",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)

    features = make_features()
    onnx.save(features, os.path.join(out, "features.onnx"))

    tiny = make_tiny()
    onnx.checker.check_model(tiny)
    data = os.path.join(out, "tiny.onnx.data")
    if os.path.exists(data):
        os.remove(data)  # onnx.save appends to an existing data file.
    onnx.save(tiny, os.path.join(out, "tiny.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="tiny.onnx.data",
              size_threshold=0)

    for name in ("features.onnx", "tiny.onnx", "tiny.onnx.data"):
        print(name, os.path.getsize(os.path.join(out, name)), "bytes")
    for t in onnx.load(os.path.join(out, "tiny.onnx"),
                       load_external_data=False).graph.initializer:
        print(t.name, {e.key: e.value for e in t.external_data})


if __name__ == "__main__":
    main()
