// REQUIRES: numpy
// RUN: rm -rf %t && mkdir -p %t && cp %s %t/model.mlir
// RUN: %python -m llq.testing weights %t/w.safetensors a:8x40 b:40x6 c:6
// RUN: llq-opt %t/model.mlir --llq-quantize-packed="method=dbllm group-size=16" --mlir-elide-resource-strings-if-larger=1 | FileCheck %s --check-prefix=DB
// RUN: llq-opt %t/model.mlir --llq-quantize-packed="method=nf4 group-size=16 icq=true" --mlir-elide-resource-strings-if-larger=1 | FileCheck %s --check-prefix=NF4
// RUN: not llq-opt %t/model.mlir --llq-quantize-packed="method=bogus" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not llq-opt %t/model.mlir --llq-quantize-packed="method=billm" 2>&1 | FileCheck %s --check-prefix=NOCALIB

llq.archive @w safetensors "w.safetensors"

// K = 40 in groups of 16: three groups, the last short; 40 one-bit codes in
// two words per row. DB-LLM stores alpha1, alpha2 and zeta per group.
// DB-LABEL: func.func @grouped
// DB-DAG: %[[B1:.*]] = arith.constant dense_resource<a.first> : tensor<8x2xi32>
// DB-DAG: %[[B2:.*]] = arith.constant dense_resource<a.second> : tensor<8x2xi32>
// DB-DAG: %[[P:.*]] = arith.constant dense_resource<a.params> : tensor<8x9xf16>
// DB: llq.packed_linear dbllm %{{.*}} parts(%[[B1]], %[[B2]], %[[P]]) {group_size = 16 : i64} : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x9xf16> -> tensor<?x8xf32>
// DB-NOT: llq.linear
// NF4 (blocks of 16): 4-bit codes in five words per row, one int8 constant
// per block, their scale and mean, and an f16 shift per block.
// NF4-LABEL: func.func @grouped
// NF4: llq.packed_linear nf4 %{{.*}} parts(%{{.*}}) {constant_group = 256 : i64, group_size = 16 : i64} : tensor<?x40xf32>, tensor<8x5xi32>, tensor<8x3xi8>, tensor<1xf32>, tensor<1xf32>, tensor<8x3xf16> -> tensor<?x8xf32>
func.func @grouped(%x: tensor<?x40xf32>) -> tensor<?x8xf32> {
  %w = llq.weight @w["a"] : tensor<8x40xf32>
  %y = llq.linear %x, %w : tensor<?x40xf32>, tensor<8x40xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// A K x N weight with a bias: the bias stays a float operand.
// DB-LABEL: func.func @kn_with_bias
// DB: %[[BIAS:.*]] = llq.weight @w["c"] : tensor<6xf32>
// DB: llq.packed_linear dbllm %{{.*}} parts(%{{.*}}, %{{.*}}, %{{.*}}) bias %[[BIAS]]
// DB-SAME: tensor<6x2xi32>, tensor<6x2xi32>, tensor<6x9xf16>, tensor<6xf32> -> tensor<2x3x6xf32>
func.func @kn_with_bias(%x: tensor<2x3x40xf32>) -> tensor<2x3x6xf32> {
  %w = llq.weight @w["b"] : tensor<40x6xf32>
  %b = llq.weight @w["c"] : tensor<6xf32>
  %y = llq.linear %x, %w bias %b {weight_kn} : tensor<2x3x40xf32>, tensor<40x6xf32>, tensor<6xf32> -> tensor<2x3x6xf32>
  return %y : tensor<2x3x6xf32>
}

// BAD: llq-quantize-packed: unknown method 'bogus' (expected billm, pbllm, dbllm, nf4 or quip)
// NOCALIB: llq-quantize-billm needs calibration data (--calib=FILE of token ids)
