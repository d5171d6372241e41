// RUN: llq-opt %s -split-input-file -verify-diagnostics

func.func @missing_part(%x: tensor<?x40xf32>, %b1: tensor<8x2xi32>, %p: tensor<8x9xf16>) -> tensor<?x8xf32> {
  // expected-error @below {{expects 3 parts for the dbllm format, got 2}}
  %y = llq.packed_linear dbllm %x parts(%b1, %p) {group_size = 16 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x9xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// Groups of 16 along K = 40 are three: nine parameters per row.
func.func @dbllm_params(%x: tensor<?x40xf32>, %b1: tensor<8x2xi32>, %b2: tensor<8x2xi32>, %p: tensor<8x6xf16>) -> tensor<?x8xf32> {
  // expected-error @below {{expects part 2 (params) of type tensor<8x9xf16>, got 'tensor<8x6xf16>'}}
  %y = llq.packed_linear dbllm %x parts(%b1, %b2, %p) {group_size = 16 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x6xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @pbllm_codes_type(%x: tensor<?x40xf32>, %s: tensor<8x2xi32>, %m: tensor<8x2xi32>, %o: tensor<9xi32>, %c: tensor<5xi32>, %bs: tensor<8xf16>, %ss: tensor<8xf16>) -> tensor<?x8xf32> {
  // expected-error @below {{expects part 3 (codes) of type tensor<?xi8>, got 'tensor<5xi32>'}}
  %y = llq.packed_linear pbllm %x parts(%s, %m, %o, %c, %bs, %ss) {group_size = 0 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<9xi32>, tensor<5xi32>, tensor<8xf16>, tensor<8xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @quip_needs_bits(%x: tensor<?x40xf32>, %q: tensor<8x3xi32>, %s: tensor<8x1xf16>, %z: tensor<8x1xi8>, %d: tensor<40xf32>) -> tensor<?x8xf32> {
  // expected-error @below {{needs 'bits' for the quip format}}
  %y = llq.packed_linear quip %x parts(%q, %s, %z, %d) {group_size = 0 : i64, seeds = array<i64: 1, 2>}
         : tensor<?x40xf32>, tensor<8x3xi32>, tensor<8x1xf16>, tensor<8x1xi8>, tensor<40xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @bits_on_dbllm(%x: tensor<?x40xf32>, %b1: tensor<8x2xi32>, %b2: tensor<8x2xi32>, %p: tensor<8x9xf16>) -> tensor<?x8xf32> {
  // expected-error @below {{has 'bits', which only the quip format takes}}
  %y = llq.packed_linear dbllm %x parts(%b1, %b2, %p) {group_size = 16 : i64, bits = 2 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x9xf16> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// A symmetric QuIP layer has no zero points.
func.func @quip_sym_zeros(%x: tensor<?x40xf32>, %q: tensor<8x3xi32>, %s: tensor<8x1xf16>, %z: tensor<8x1xi8>, %d: tensor<40xf32>) -> tensor<?x8xf32> {
  // expected-error @below {{expects 3 parts for the quip format, got 4}}
  %y = llq.packed_linear quip %x parts(%q, %s, %z, %d) {bits = 2 : i64, group_size = 0 : i64, symmetric, seeds = array<i64: 1, 2>}
         : tensor<?x40xf32>, tensor<8x3xi32>, tensor<8x1xf16>, tensor<8x1xi8>, tensor<40xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @nf4_parts(%x: tensor<?x40xf32>, %q: tensor<8x5xi32>, %a: tensor<8x1xi8>, %s: tensor<1xf32>) -> tensor<?x8xf32> {
  // expected-error @below {{expects 4 parts (or 5 with ICQ shifts) for the nf4 format, got 3}}
  %y = llq.packed_linear nf4 %x parts(%q, %a, %s) {group_size = 64 : i64, constant_group = 256 : i64}
         : tensor<?x40xf32>, tensor<8x5xi32>, tensor<8x1xi8>, tensor<1xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @result_features(%x: tensor<?x40xf32>, %b1: tensor<8x2xi32>, %b2: tensor<8x2xi32>, %p: tensor<8x9xf16>) -> tensor<?x6xf32> {
  // expected-error @below {{expects part 0 (first) of type tensor<6x2xi32>, got 'tensor<8x2xi32>'}}
  %y = llq.packed_linear dbllm %x parts(%b1, %b2, %p) {group_size = 16 : i64}
         : tensor<?x40xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x9xf16> -> tensor<?x6xf32>
  return %y : tensor<?x6xf32>
}
