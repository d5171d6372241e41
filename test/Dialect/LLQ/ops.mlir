// RUN: llq-opt %s | llq-opt | FileCheck %s
// RUN: llq-opt %s --mlir-print-op-generic | llq-opt | FileCheck %s

// CHECK: llq.archive @weights safetensors "{{.*}}model.safetensors"
llq.archive @weights safetensors "model.safetensors"
// CHECK: llq.archive @data raw "{{.*}}model.onnx.data"
llq.archive @data raw "model.onnx.data"

// CHECK-LABEL: func.func @float_linear
func.func @float_linear(%x: tensor<?x?x576xf32>) -> tensor<?x?x1536xf32> {
  // CHECK: %[[W:.*]] = llq.weight @weights["model.layers.0.mlp.up_proj.weight"] : tensor<1536x576xf32>
  %w = llq.weight @weights["model.layers.0.mlp.up_proj.weight"] : tensor<1536x576xf32>
  // CHECK: llq.linear %{{.*}}, %[[W]] : tensor<?x?x576xf32>, tensor<1536x576xf32> -> tensor<?x?x1536xf32>
  %y = llq.linear %x, %w : tensor<?x?x576xf32>, tensor<1536x576xf32> -> tensor<?x?x1536xf32>
  return %y : tensor<?x?x1536xf32>
}

// CHECK-LABEL: func.func @kn_weight_with_bias
func.func @kn_weight_with_bias(%x: tensor<4x64xf32>) -> tensor<4x32xf32> {
  // CHECK: llq.weight @data["w"] {length = 8192 : i64, offset = 128 : i64} : tensor<64x32xf32>
  %w = llq.weight @data["w"] {offset = 128, length = 8192} : tensor<64x32xf32>
  %b = llq.weight @data["b"] {offset = 0, length = 128} : tensor<32xf32>
  // CHECK: llq.linear %{{.*}}, %{{.*}} bias %{{.*}} {weight_kn} : tensor<4x64xf32>, tensor<64x32xf32>, tensor<32xf32> -> tensor<4x32xf32>
  %y = llq.linear %x, %w bias %b {weight_kn} : tensor<4x64xf32>, tensor<64x32xf32>, tensor<32xf32> -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// A 576-wide layer at group 128 has five groups, the last one of 64 columns.
// CHECK-LABEL: func.func @w4_g128_asym
func.func @w4_g128_asym(%x: tensor<?x?x576xf32>, %qw: tensor<576x72xi32>,
                        %s: tensor<576x5xf16>, %z: tensor<576x5xi8>) -> tensor<?x?x576xf32> {
  // CHECK: llq.qlinear %{{.*}}, %{{.*}} scales %{{.*}} zeros %{{.*}} {layout = #llq.layout<bitstream>, scheme = #llq.scheme<w4, group = 128, asym>}
  %y = llq.qlinear %x, %qw scales %s zeros %z
         {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x?x576xf32>, tensor<576x72xi32>, tensor<576x5xf16>, tensor<576x5xi8> -> tensor<?x?x576xf32>
  return %y : tensor<?x?x576xf32>
}

// 3-bit codes straddle words: 576 * 3 / 32 = 54 words per row.
// CHECK-LABEL: func.func @w3_per_channel_sym_bias
func.func @w3_per_channel_sym_bias(%x: tensor<2x576xf32>, %qw: tensor<192x54xi32>,
                                   %s: tensor<192x1xf16>, %b: tensor<192xf32>) -> tensor<2x192xf32> {
  // CHECK: llq.qlinear %{{.*}}, %{{.*}} scales %{{.*}} bias %{{.*}} {{{.*}}scheme = #llq.scheme<w3, per_channel, sym>}
  %y = llq.qlinear %x, %qw scales %s bias %b
         {scheme = #llq.scheme<w3, per_channel, sym>, layout = #llq.layout<bitstream>}
         : tensor<2x576xf32>, tensor<192x54xi32>, tensor<192x1xf16>, tensor<192xf32> -> tensor<2x192xf32>
  return %y : tensor<2x192xf32>
}

// CHECK-LABEL: func.func @schemes
func.func @schemes(%x: tensor<8x128xf32>, %qw8: tensor<16x32xi32>, %s1: tensor<16x1xf16>,
                   %qw4: tensor<16x16xi32>, %s2: tensor<16x2xf16>) -> (tensor<8x16xf32>, tensor<8x16xf32>) {
  // CHECK: #llq.scheme<w8, per_channel, sym, a8 = per_token>
  %a = llq.qlinear %x, %qw8 scales %s1
         {scheme = #llq.scheme<w8, per_channel, sym, a8 = per_token>, layout = #llq.layout<bitstream>}
         : tensor<8x128xf32>, tensor<16x32xi32>, tensor<16x1xf16> -> tensor<8x16xf32>
  // CHECK: #llq.scheme<w4, group = 64, sym, codebook = nf4>
  %b = llq.qlinear %x, %qw4 scales %s2
         {scheme = #llq.scheme<w4, group = 64, sym, codebook = nf4>, layout = #llq.layout<bitstream>}
         : tensor<8x128xf32>, tensor<16x16xi32>, tensor<16x2xf16> -> tensor<8x16xf32>
  return %a, %b : tensor<8x16xf32>, tensor<8x16xf32>
}

// CHECK-LABEL: func.func @observe
func.func @observe(%x: tensor<?x?x576xf32>) {
  // CHECK: llq.observe %{{.*}} {key = "model.layers.0.self_attn.q_proj"} : tensor<?x?x576xf32>
  llq.observe %x {key = "model.layers.0.self_attn.q_proj"} : tensor<?x?x576xf32>
  return
}
