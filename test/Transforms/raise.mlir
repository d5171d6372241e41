// RUN: llq-opt %s --llq-raise --split-input-file | FileCheck %s

llq.archive @w raw "w.bin"

// ONNX MatMul initializers are stored K x N; the weight takes the name of
// the module that owns it, from the exporter's scopes.
// CHECK-LABEL: func.func @matmul_kn
// CHECK: %[[W:.*]] = llq.weight @w["model.layers.0.mlp.up_proj.weight"]
// CHECK: llq.linear %{{.*}}, %[[W]] {weight_kn} : tensor<?x?x64xf32>, tensor<64x160xf32> -> tensor<?x?x160xf32>
// CHECK-NOT: llq.matmul
func.func @matmul_kn(%x: tensor<?x?x64xf32>) -> tensor<?x?x160xf32> {
  %w = llq.weight @w["val_278"] {offset = 0, length = 40960} : tensor<64x160xf32>
  %y = llq.matmul %x, %w {llq.scopes = "['', 'model', 'model.layers.0', 'model.layers.0.mlp', 'model.layers.0.mlp.up_proj', 'linear_5']"} : tensor<?x?x64xf32>, tensor<64x160xf32> -> tensor<?x?x160xf32>
  return %y : tensor<?x?x160xf32>
}

// -----

llq.archive @w raw "w.bin"

// matmul(x, transpose(W)) keeps W as stored (N x K); TorchScript names give
// the module path too. An unranked result is kept through a cast.
// CHECK-LABEL: func.func @matmul_transposed
// CHECK: %[[W:.*]] = llq.weight @w["model.layers.1.self_attn.q_proj.weight"]
// CHECK: %[[L:.*]] = llq.linear %{{.*}}, %[[W]] : tensor<2x64xf32>, tensor<32x64xf32> -> tensor<2x32xf32>
// CHECK: tensor.cast %[[L]] : tensor<2x32xf32> to tensor<*xf32>
func.func @matmul_transposed(%x: tensor<2x64xf32>) -> tensor<*xf32> {
  %w = llq.weight @w["onnx::MatMul_9"] {offset = 0, length = 8192} : tensor<32x64xf32>
  %t = llq.transpose %w {perm = array<i64: 1, 0>} : tensor<32x64xf32> -> tensor<64x32xf32>
  %y = llq.matmul %x, %t {llq.scopes = "/model/layers.1/self_attn/q_proj/MatMul"} : tensor<2x64xf32>, tensor<64x32xf32> -> tensor<*xf32>
  return %y : tensor<*xf32>
}

// -----

llq.archive @w raw "w.bin"

// Gemm with transB and a bias, and MatMul + Add of a bias vector.
// CHECK-LABEL: func.func @biases
// CHECK: llq.linear %{{.*}}, %{{.*}} bias %{{.*}} : tensor<4x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<4x16xf32>
// CHECK: llq.linear %{{.*}}, %{{.*}} bias %{{.*}} {weight_kn} : tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32> -> tensor<4x16xf32>
// CHECK-NOT: llq.binary
func.func @biases(%x: tensor<4x8xf32>) -> (tensor<4x16xf32>, tensor<4x16xf32>) {
  %w = llq.weight @w["w"] {offset = 0, length = 512} : tensor<16x8xf32>
  %b = llq.weight @w["b"] {offset = 512, length = 64} : tensor<16xf32>
  %y = llq.gemm %x, %w, %b {trans_b} : tensor<4x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<4x16xf32>
  %w2 = llq.weight @w["w2"] {offset = 576, length = 512} : tensor<8x16xf32>
  %m = llq.matmul %x, %w2 : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  %z = llq.binary <add> %m, %b : tensor<4x16xf32>, tensor<16xf32> -> tensor<4x16xf32>
  return %y, %z : tensor<4x16xf32>, tensor<4x16xf32>
}

// -----

// A weight computed in the program is no layer: left alone.
// CHECK-LABEL: func.func @computed_weight
// CHECK: llq.matmul
func.func @computed_weight(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %y = llq.matmul %x, %w : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

llq.archive @w raw "w.bin"

// torch.onnx's RMSNorm: w * (x * reciprocal(sqrt(mean(x^2) + eps))).
// CHECK-LABEL: func.func @rms_norm
// CHECK: %[[N:.*]] = llq.rms_norm %arg0, %{{.*}} {epsilon = 9.99999974E-6 : f32}
// CHECK: tensor.cast %[[N]]
// CHECK-NOT: llq.reduce
func.func @rms_norm(%x: tensor<?x?x64xf32>) -> tensor<*xf32> {
  %w = llq.weight @w["norm"] {offset = 0, length = 256} : tensor<64xf32>
  %two = arith.constant dense<2.0> : tensor<f32>
  %eps = arith.constant dense<1.0e-5> : tensor<f32>
  %sq = llq.binary <pow> %x, %two : tensor<?x?x64xf32>, tensor<f32> -> tensor<?x?x64xf32>
  %mean = llq.reduce <mean> %sq {axes = array<i64: -1>, keepdims = true} : tensor<?x?x64xf32> -> tensor<?x?x1xf32>
  %sum = llq.binary <add> %mean, %eps : tensor<?x?x1xf32>, tensor<f32> -> tensor<?x?x1xf32>
  %rt = llq.unary <sqrt> %sum : tensor<?x?x1xf32> -> tensor<?x?x1xf32>
  %inv = llq.unary <reciprocal> %rt : tensor<?x?x1xf32> -> tensor<?x?x1xf32>
  %n = llq.binary <mul> %x, %inv : tensor<?x?x64xf32>, tensor<?x?x1xf32> -> tensor<?x?x64xf32>
  %y = llq.binary <mul> %w, %n : tensor<64xf32>, tensor<?x?x64xf32> -> tensor<*xf32>
  return %y : tensor<*xf32>
}

// -----

llq.archive @w raw "w.bin"

// Reducing over another axis is not an RMSNorm.
// CHECK-LABEL: func.func @not_rms_norm
// CHECK-NOT: llq.rms_norm
func.func @not_rms_norm(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %w = llq.weight @w["norm"] {offset = 0, length = 256} : tensor<64xf32>
  %eps = arith.constant dense<1.0e-5> : tensor<f32>
  %sq = llq.binary <mul> %x, %x : tensor<4x64xf32>, tensor<4x64xf32> -> tensor<4x64xf32>
  %mean = llq.reduce <mean> %sq {axes = array<i64: 0>, keepdims = true} : tensor<4x64xf32> -> tensor<1x64xf32>
  %sum = llq.binary <add> %mean, %eps : tensor<1x64xf32>, tensor<f32> -> tensor<1x64xf32>
  %rt = llq.unary <sqrt> %sum : tensor<1x64xf32> -> tensor<1x64xf32>
  %n = llq.binary <div> %x, %rt : tensor<4x64xf32>, tensor<1x64xf32> -> tensor<4x64xf32>
  %y = llq.binary <mul> %w, %n : tensor<64xf32>, tensor<4x64xf32> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

// silu(g) * up, with silu spelled g * sigmoid(g).
// CHECK-LABEL: func.func @swiglu
// CHECK: %[[Y:.*]] = llq.swiglu %arg0, %arg1 : tensor<?x160xf32>, tensor<?x160xf32> -> tensor<?x160xf32>
// CHECK: return %[[Y]]
func.func @swiglu(%g: tensor<?x160xf32>, %u: tensor<?x160xf32>) -> tensor<?x160xf32> {
  %s = llq.unary <sigmoid> %g : tensor<?x160xf32> -> tensor<?x160xf32>
  %silu = llq.binary <mul> %g, %s : tensor<?x160xf32>, tensor<?x160xf32> -> tensor<?x160xf32>
  %y = llq.binary <mul> %silu, %u : tensor<?x160xf32>, tensor<?x160xf32> -> tensor<?x160xf32>
  return %y : tensor<?x160xf32>
}

// -----

// LLaMA's rotate-half rotary embedding with cos/sin built from
// concat(freqs, freqs): the halves are equal, so only the first is kept.
// CHECK-LABEL: func.func @rotary
// CHECK-DAG: %[[COS:[0-9]+]] = llq.unary <cos>
// CHECK-DAG: %[[SIN:[0-9]+]] = llq.unary <sin>
// CHECK-DAG: %[[COSU:[0-9]+]] = llq.unsqueeze %[[COS]]
// CHECK-DAG: %[[SINU:[0-9]+]] = llq.unsqueeze %[[SIN]]
// CHECK-DAG: %[[C:[0-9]+]] = llq.slice %[[COSU]][
// CHECK-DAG: %[[S:[0-9]+]] = llq.slice %[[SINU]][
// CHECK: llq.rotary %arg0, %[[C]], %[[S]] : tensor<1x4x?x16xf32>
// CHECK-NOT: llq.concat %{{.*}}, %{{.*}} {axis = -1
func.func @rotary(%x: tensor<1x4x?x16xf32>, %freqs: tensor<1x?x8xf32>) -> tensor<1x4x?x16xf32> {
  %f2 = llq.concat %freqs, %freqs {axis = -1} : tensor<1x?x8xf32>, tensor<1x?x8xf32> -> tensor<1x?x16xf32>
  %cos0 = llq.unary <cos> %f2 : tensor<1x?x16xf32> -> tensor<1x?x16xf32>
  %sin0 = llq.unary <sin> %f2 : tensor<1x?x16xf32> -> tensor<1x?x16xf32>
  %cos = llq.unsqueeze %cos0 {axes = array<i64: 1>} : tensor<1x?x16xf32> -> tensor<1x1x?x16xf32>
  %sin = llq.unsqueeze %sin0 {axes = array<i64: 1>} : tensor<1x?x16xf32> -> tensor<1x1x?x16xf32>
  %c0 = arith.constant dense<0> : tensor<1xi64>
  %c8 = arith.constant dense<8> : tensor<1xi64>
  %big = arith.constant dense<9223372036854775807> : tensor<1xi64>
  %axis = arith.constant dense<3> : tensor<1xi64>
  %one = arith.constant dense<1> : tensor<1xi64>
  %x1 = llq.slice %x[%c0 : %c8 axes %axis steps %one] : tensor<1x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64> -> tensor<1x4x?x8xf32>
  %x2 = llq.slice %x[%c8 : %big axes %axis steps %one] : tensor<1x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64> -> tensor<1x4x?x8xf32>
  %n2 = llq.unary <neg> %x2 : tensor<1x4x?x8xf32> -> tensor<1x4x?x8xf32>
  %rot = llq.concat %n2, %x1 {axis = -1} : tensor<1x4x?x8xf32>, tensor<1x4x?x8xf32> -> tensor<1x4x?x16xf32>
  %a = llq.binary <mul> %x, %cos : tensor<1x4x?x16xf32>, tensor<1x1x?x16xf32> -> tensor<1x4x?x16xf32>
  %b = llq.binary <mul> %rot, %sin : tensor<1x4x?x16xf32>, tensor<1x1x?x16xf32> -> tensor<1x4x?x16xf32>
  %y = llq.binary <add> %a, %b : tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32> -> tensor<1x4x?x16xf32>
  return %y : tensor<1x4x?x16xf32>
}

// -----

// With cos/sin of unknown provenance the halves may differ: no rewrite.
// CHECK-LABEL: func.func @rotary_unknown_tables
// CHECK-NOT: llq.rotary
func.func @rotary_unknown_tables(%x: tensor<1x4x?x16xf32>, %cos: tensor<1x1x?x16xf32>, %sin: tensor<1x1x?x16xf32>) -> tensor<1x4x?x16xf32> {
  %c0 = arith.constant dense<0> : tensor<1xi64>
  %c8 = arith.constant dense<8> : tensor<1xi64>
  %c16 = arith.constant dense<16> : tensor<1xi64>
  %axis = arith.constant dense<-1> : tensor<1xi64>
  %x1 = llq.slice %x[%c0 : %c8 axes %axis] : tensor<1x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64> -> tensor<1x4x?x8xf32>
  %x2 = llq.slice %x[%c8 : %c16 axes %axis] : tensor<1x4x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64> -> tensor<1x4x?x8xf32>
  %n2 = llq.unary <neg> %x2 : tensor<1x4x?x8xf32> -> tensor<1x4x?x8xf32>
  %rot = llq.concat %n2, %x1 {axis = -1} : tensor<1x4x?x8xf32>, tensor<1x4x?x8xf32> -> tensor<1x4x?x16xf32>
  %a = llq.binary <mul> %x, %cos : tensor<1x4x?x16xf32>, tensor<1x1x?x16xf32> -> tensor<1x4x?x16xf32>
  %b = llq.binary <mul> %rot, %sin : tensor<1x4x?x16xf32>, tensor<1x1x?x16xf32> -> tensor<1x4x?x16xf32>
  %y = llq.binary <add> %a, %b : tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32> -> tensor<1x4x?x16xf32>
  return %y : tensor<1x4x?x16xf32>
}

// -----

// Scaled dot-product attention over grouped key/value heads (2 of them,
// repeated twice for 4 query heads), with an additive mask.
// CHECK-LABEL: func.func @attention
// CHECK: %[[A:.*]] = llq.attention %arg0, %arg1, %arg2 mask %arg3 {scale = 2.500000e-01 : f32}
// CHECK: return %[[A]]
func.func @attention(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>, %mask: tensor<1x1x?x?xf32>) -> tensor<1x4x?x16xf32> {
  %shape5 = arith.constant dense<[1, 2, 2, -1, 16]> : tensor<5xi64>
  %shape4 = arith.constant dense<[1, 4, -1, 16]> : tensor<4xi64>
  %ku = llq.unsqueeze %k {axes = array<i64: 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x1x?x16xf32>
  %ke = llq.expand %ku, %shape5 : tensor<1x2x1x?x16xf32>, tensor<5xi64> -> tensor<1x2x2x?x16xf32>
  %kr = llq.reshape %ke, %shape4 : tensor<1x2x2x?x16xf32>, tensor<4xi64> -> tensor<1x4x?x16xf32>
  %vu = llq.unsqueeze %v {axes = array<i64: 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x1x?x16xf32>
  %ve = llq.expand %vu, %shape5 : tensor<1x2x1x?x16xf32>, tensor<5xi64> -> tensor<1x2x2x?x16xf32>
  %vr = llq.reshape %ve, %shape4 : tensor<1x2x2x?x16xf32>, tensor<4xi64> -> tensor<1x4x?x16xf32>
  %s = arith.constant dense<0.5> : tensor<f32>
  %qs = llq.binary <mul> %q, %s : tensor<1x4x?x16xf32>, tensor<f32> -> tensor<1x4x?x16xf32>
  %kt = llq.transpose %kr {perm = array<i64: 0, 1, 3, 2>} : tensor<1x4x?x16xf32> -> tensor<1x4x16x?xf32>
  %kts = llq.binary <mul> %kt, %s : tensor<1x4x16x?xf32>, tensor<f32> -> tensor<1x4x16x?xf32>
  %scores = llq.matmul %qs, %kts : tensor<1x4x?x16xf32>, tensor<1x4x16x?xf32> -> tensor<1x4x?x?xf32>
  %masked = llq.binary <add> %scores, %mask : tensor<1x4x?x?xf32>, tensor<1x1x?x?xf32> -> tensor<1x4x?x?xf32>
  %p = llq.softmax %masked {axis = -1} : tensor<1x4x?x?xf32> -> tensor<1x4x?x?xf32>
  %nan = llq.unary <isnan> %p : tensor<1x4x?x?xf32> -> tensor<1x4x?x?xi1>
  %zero = arith.constant dense<0.0> : tensor<f32>
  %p0 = llq.where %nan, %zero, %p : tensor<1x4x?x?xi1>, tensor<f32>, tensor<1x4x?x?xf32> -> tensor<1x4x?x?xf32>
  %o = llq.matmul %p0, %vr : tensor<1x4x?x?xf32>, tensor<1x4x?x16xf32> -> tensor<1x4x?x16xf32>
  return %o : tensor<1x4x?x16xf32>
}

// -----

// The scale applied to the scores (not to q and k) counts once.
// CHECK-LABEL: func.func @attention_scaled_scores
// CHECK: llq.attention %arg0, %arg1, %arg2 mask %arg3 {scale = 1.250000e-01 : f32}
func.func @attention_scaled_scores(%q: tensor<1x4x?x64xf32>, %k: tensor<1x4x?x64xf32>, %v: tensor<1x4x?x64xf32>, %mask: tensor<1x1x?x?xf32>) -> tensor<1x4x?x64xf32> {
  %kt = llq.transpose %k {perm = array<i64: 0, 1, 3, 2>} : tensor<1x4x?x64xf32> -> tensor<1x4x64x?xf32>
  %qk = llq.matmul %q, %kt : tensor<1x4x?x64xf32>, tensor<1x4x64x?xf32> -> tensor<1x4x?x?xf32>
  %s = arith.constant dense<0.125> : tensor<f32>
  %scores = llq.binary <mul> %qk, %s : tensor<1x4x?x?xf32>, tensor<f32> -> tensor<1x4x?x?xf32>
  %masked = llq.binary <add> %scores, %mask : tensor<1x4x?x?xf32>, tensor<1x1x?x?xf32> -> tensor<1x4x?x?xf32>
  %p = llq.softmax %masked {axis = -1} : tensor<1x4x?x?xf32> -> tensor<1x4x?x?xf32>
  %o = llq.matmul %p, %v : tensor<1x4x?x?xf32>, tensor<1x4x?x64xf32> -> tensor<1x4x?x64xf32>
  return %o : tensor<1x4x?x64xf32>
}
