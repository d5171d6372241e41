// REQUIRES: numpy
// RUN: rm -rf %t && mkdir -p %t && cp %s %t/model.mlir
// RUN: %python -m llq.testing weights %t/w.safetensors a:8x40 b:40x6 c:6 d:4x10:f16
// RUN: llq-opt %t/model.mlir --llq-quantize-rtn="bits=4 group-size=16" --mlir-elide-resource-strings-if-larger=1 | FileCheck %s --check-prefix=G16
// RUN: llq-opt %t/model.mlir --llq-quantize-rtn="bits=3 group-size=0 symmetric=true" --mlir-elide-resource-strings-if-larger=1 | FileCheck %s --check-prefix=SYM

llq.archive @w safetensors "w.safetensors"

// K = 40 at group 16: groups of 16, 16 and a short 8. 40 4-bit codes fill
// 5 words; 40 3-bit codes take 120 bits, 4 words.
// G16-LABEL: func.func @grouped
// G16-DAG: %[[QW:.*]] = arith.constant dense_resource<a.qweight> : tensor<8x5xi32>
// G16-DAG: %[[S:.*]] = arith.constant dense_resource<a.scales> : tensor<8x3xf16>
// G16-DAG: %[[Z:.*]] = arith.constant dense_resource<a.qzeros> : tensor<8x3xi8>
// G16: llq.qlinear %{{.*}}, %[[QW]] scales %[[S]] zeros %[[Z]] {layout = #llq.layout<bitstream>, scheme = #llq.scheme<w4, group = 16, asym>} : tensor<?x40xf32>, tensor<8x5xi32>, tensor<8x3xf16>, tensor<8x3xi8> -> tensor<?x8xf32>
// G16-NOT: llq.linear
// SYM-LABEL: func.func @grouped
// SYM: %[[QW:.*]] = arith.constant dense_resource<a.qweight> : tensor<8x4xi32>
// SYM: %[[S:.*]] = arith.constant dense_resource<a.scales> : tensor<8x1xf16>
// SYM: llq.qlinear %{{.*}}, %[[QW]] scales %[[S]] {layout = #llq.layout<bitstream>, scheme = #llq.scheme<w3, per_channel, sym>}
func.func @grouped(%x: tensor<?x40xf32>) -> tensor<?x8xf32> {
  %w = llq.weight @w["a"] : tensor<8x40xf32>
  %y = llq.linear %x, %w : tensor<?x40xf32>, tensor<8x40xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// A K x N (ONNX MatMul) weight is quantized along K all the same; the bias
// stays a float weight.
// G16-LABEL: func.func @kn_with_bias
// G16-DAG: %[[B:.*]] = llq.weight @w["c"] : tensor<6xf32>
// G16-DAG: %[[QW:.*]] = arith.constant dense_resource<b.qweight> : tensor<6x5xi32>
// G16: llq.qlinear %{{.*}}, %[[QW]] scales %{{.*}} zeros %{{.*}} bias %[[B]]
// G16-SAME: tensor<2x3x40xf32>, tensor<6x5xi32>, tensor<6x3xf16>, tensor<6x3xi8>, tensor<6xf32> -> tensor<2x3x6xf32>
func.func @kn_with_bias(%x: tensor<2x3x40xf32>) -> tensor<2x3x6xf32> {
  %w = llq.weight @w["b"] : tensor<40x6xf32>
  %b = llq.weight @w["c"] : tensor<6xf32>
  %y = llq.linear %x, %w bias %b {weight_kn} : tensor<2x3x40xf32>, tensor<40x6xf32>, tensor<6xf32> -> tensor<2x3x6xf32>
  return %y : tensor<2x3x6xf32>
}

// f16 weights are read as f16; K = 10 is a single short group.
// G16-LABEL: func.func @f16_weight
// G16: arith.constant dense_resource<d.qweight> : tensor<4x2xi32>
// G16: scheme = #llq.scheme<w4, group = 16, asym>
func.func @f16_weight(%x: tensor<1x10xf32>) -> tensor<1x4xf32> {
  %w = llq.weight @w["d"] : tensor<4x10xf16>
  %y = llq.linear %x, %w : tensor<1x10xf32>, tensor<4x10xf16> -> tensor<1x4xf32>
  return %y : tensor<1x4xf32>
}

// A weight computed in the program is not an archived layer: left alone.
// G16-LABEL: func.func @computed_weight
// G16: llq.linear
func.func @computed_weight(%x: tensor<1x4xf32>, %w: tensor<4x4xf32>) -> tensor<1x4xf32> {
  %y = llq.linear %x, %w : tensor<1x4xf32>, tensor<4x4xf32> -> tensor<1x4xf32>
  return %y : tensor<1x4xf32>
}
