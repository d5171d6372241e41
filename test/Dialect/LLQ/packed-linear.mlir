// RUN: llq-opt %s | llq-opt | FileCheck %s
// RUN: llq-opt %s --mlir-print-op-generic | llq-opt | FileCheck %s

// An 8 x 40 layer in each packed format: 40 one-bit codes take 2 words per
// row, 40 four-bit codes 5, 40 two-bit codes 3.

// CHECK-LABEL: func.func @dbllm
// CHECK: llq.packed_linear dbllm %{{.*}} parts(%{{.*}}, %{{.*}}, %{{.*}}) bias %{{.*}} {group_size = 16 : i64} : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x9xf16>, tensor<8xf32> -> tensor<?x8xf32>
func.func @dbllm(%x: tensor<?x40xf32>, %b1: tensor<8x2xi32>, %b2: tensor<8x2xi32>, %p: tensor<8x9xf16>, %bias: tensor<8xf32>) -> tensor<?x8xf32> {
  %y = llq.packed_linear dbllm %x parts(%b1, %b2, %p) bias %bias {group_size = 16 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x9xf16>, tensor<8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// The residual and sparse planes' widths depend on the salient count.
// CHECK-LABEL: func.func @billm
// CHECK: llq.packed_linear billm {{.*}} {group_size = 128 : i64}
func.func @billm(%x: tensor<?x40xf32>, %c: tensor<2xi32>, %s: tensor<8x2xi32>, %r: tensor<8x1xi32>, %sp: tensor<8x2xi32>, %a: tensor<8x4xf16>) -> tensor<?x8xf32> {
  %y = llq.packed_linear billm %x parts(%c, %s, %r, %sp, %a) {group_size = 128 : i64}
         : tensor<?x40xf32>, tensor<2xi32>, tensor<8x2xi32>, tensor<8x1xi32>, tensor<8x2xi32>, tensor<8x4xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// CHECK-LABEL: func.func @pbllm
// CHECK: llq.packed_linear pbllm
func.func @pbllm(%x: tensor<?x40xf32>, %s: tensor<8x2xi32>, %m: tensor<8x2xi32>, %o: tensor<9xi32>, %c: tensor<5xi8>, %bs: tensor<8xf16>, %ss: tensor<8xf16>) -> tensor<?x8xf32> {
  %y = llq.packed_linear pbllm %x parts(%s, %m, %o, %c, %bs, %ss) {group_size = 0 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<9xi32>, tensor<5xi8>, tensor<8xf16>, tensor<8xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// CHECK-LABEL: func.func @nf4_icq
// CHECK: llq.packed_linear nf4 {{.*}} {constant_group = 256 : i64, group_size = 64 : i64}
func.func @nf4_icq(%x: tensor<?x40xf32>, %q: tensor<8x5xi32>, %a: tensor<8x1xi8>, %s: tensor<1xf32>, %m: tensor<1xf32>, %t: tensor<8x1xf16>) -> tensor<?x8xf32> {
  %y = llq.packed_linear nf4 %x parts(%q, %a, %s, %m, %t) {group_size = 64 : i64, constant_group = 256 : i64}
         : tensor<?x40xf32>, tensor<8x5xi32>, tensor<8x1xi8>, tensor<1xf32>, tensor<1xf32>, tensor<8x1xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// CHECK-LABEL: func.func @quip
// CHECK: llq.packed_linear quip {{.*}} {bits = 2 : i64, group_size = 0 : i64, seeds = array<i64: 1, 2>}
func.func @quip(%x: tensor<?x40xf32>, %q: tensor<8x3xi32>, %s: tensor<8x1xf16>, %z: tensor<8x1xi8>, %d: tensor<40xf32>) -> tensor<?x8xf32> {
  %y = llq.packed_linear quip %x parts(%q, %s, %z, %d) {bits = 2 : i64, group_size = 0 : i64, seeds = array<i64: 1, 2>}
         : tensor<?x40xf32>, tensor<8x3xi32>, tensor<8x1xf16>, tensor<8x1xi8>, tensor<40xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
