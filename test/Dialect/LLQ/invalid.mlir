// RUN: llq-opt %s -split-input-file -verify-diagnostics

// expected-error @below {{expects weight bits in 1..8, got 9}}
func.func @bits_too_high() attributes {s = #llq.scheme<w9, group = 128, asym>} { return }

// -----

// expected-error @below {{expects weight bits in 1..8, got 0}}
func.func @bits_zero() attributes {s = #llq.scheme<w0, per_channel, asym>} { return }

// -----

// expected-error @below {{expects a positive group size (or per_channel), got -64}}
func.func @negative_group() attributes {s = #llq.scheme<w4, group = -64, asym>} { return }

// -----

// expected-error @below {{symmetric uniform quantization needs at least 2 bits}}
func.func @sym_one_bit() attributes {s = #llq.scheme<w1, per_channel, sym>} { return }

// -----

// expected-error @below {{the nf4 codebook needs w4 and sym, got w3 sym}}
func.func @nf4_three_bits() attributes {s = #llq.scheme<w3, group = 64, sym, codebook = nf4>} { return }

// -----

// expected-error @below {{expects activation bits in 2..8, got 16}}
func.func @act_bits() attributes {s = #llq.scheme<w8, per_channel, sym, a16 = per_token>} { return }

// -----

// expected-error @below {{expected 'sym' or 'asym'}}
func.func @bad_symmetry() attributes {s = #llq.scheme<w4, group = 128, signed>} { return }

// -----

// expected-error @below {{expected 'w<bits>', got 'int4'}}
func.func @bad_bits_keyword() attributes {s = #llq.scheme<int4, group = 128, asym>} { return }

// -----

// expected-error @below {{expects a non-empty path}}
llq.archive @w safetensors ""

// -----

func.func @missing_archive() -> tensor<4xf32> {
  // expected-error @below {{refers to 'nowhere', which is not an llq.archive}}
  %w = llq.weight @nowhere["w"] : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

llq.archive @data raw "model.onnx.data"
func.func @raw_without_offset() -> tensor<4xf32> {
  // expected-error @below {{refers to raw archive 'data' and needs 'offset' and 'length'}}
  %w = llq.weight @data["w"] : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

llq.archive @data raw "model.onnx.data"
func.func @raw_wrong_length() -> tensor<4xf32> {
  // expected-error @below {{expects length 16 for 'tensor<4xf32>', got 12}}
  %w = llq.weight @data["w"] {offset = 0, length = 12} : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

llq.archive @st safetensors "model.safetensors"
func.func @offset_in_safetensors() -> tensor<4xf32> {
  // expected-error @below {{'offset' and 'length' are only for raw archives}}
  %w = llq.weight @st["w"] {offset = 0, length = 16} : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

llq.archive @st safetensors "model.safetensors"
func.func @dynamic_weight() {
  // expected-error @below {{must be statically shaped tensor}}
  %w = llq.weight @st["w"] : tensor<?xf32>
  return
}

// -----

llq.archive @st safetensors "model.safetensors"
func.func @weight_complex() {
  // expected-error @below {{expects an element type an archive can hold}}
  %w = llq.weight @st["w"] : tensor<4xcomplex<f32>>
  return
}

// -----

func.func @linear_k_mismatch(%x: tensor<?x512xf32>, %w: tensor<1536x576xf32>) -> tensor<?x1536xf32> {
  // expected-error @below {{expects the input's last dimension to be the 576 input features of the NxK weight 'tensor<1536x576xf32>', got 512}}
  %y = llq.linear %x, %w : tensor<?x512xf32>, tensor<1536x576xf32> -> tensor<?x1536xf32>
  return %y : tensor<?x1536xf32>
}

// -----

func.func @linear_kn_n_mismatch(%x: tensor<?x576xf32>, %w: tensor<576x1536xf32>) -> tensor<?x576xf32> {
  // expected-error @below {{expects the result's last dimension to be the 1536 output features, got 576}}
  %y = llq.linear %x, %w {weight_kn} : tensor<?x576xf32>, tensor<576x1536xf32> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @linear_rank(%x: tensor<2x3x64xf32>, %w: tensor<32x64xf32>) -> tensor<6x32xf32> {
  // expected-error @below {{expects a result of rank 3 like the input}}
  %y = llq.linear %x, %w : tensor<2x3x64xf32>, tensor<32x64xf32> -> tensor<6x32xf32>
  return %y : tensor<6x32xf32>
}

// -----

func.func @linear_bias(%x: tensor<2x64xf32>, %w: tensor<32x64xf32>, %b: tensor<64xf32>) -> tensor<2x32xf32> {
  // expected-error @below {{expects a bias of type 'tensor<32xf32>', got 'tensor<64xf32>'}}
  %y = llq.linear %x, %w bias %b : tensor<2x64xf32>, tensor<32x64xf32>, tensor<64xf32> -> tensor<2x32xf32>
  return %y : tensor<2x32xf32>
}

// -----

func.func @linear_int_input(%x: tensor<2x64xi32>, %w: tensor<32x64xf32>) -> tensor<2x32xi32> {
  // expected-error @below {{expects a float input}}
  %y = llq.linear %x, %w : tensor<2x64xi32>, tensor<32x64xf32> -> tensor<2x32xi32>
  return %y : tensor<2x32xi32>
}

// -----

func.func @qlinear_words(%x: tensor<?x576xf32>, %qw: tensor<576x64xi32>, %s: tensor<576x5xf16>, %z: tensor<576x5xi8>) -> tensor<?x576xf32> {
  // expected-error @below {{expects packed weight 576x72xi32 (576 codes of 4 bits per row in bitstream layout), got 'tensor<576x64xi32>'}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x576xf32>, tensor<576x64xi32>, tensor<576x5xf16>, tensor<576x5xi8> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

// Five groups: four of 128 and a short fifth of 64. Four is one too few.
func.func @qlinear_short_last_group(%x: tensor<?x576xf32>, %qw: tensor<576x72xi32>, %s: tensor<576x4xf16>, %z: tensor<576x4xi8>) -> tensor<?x576xf32> {
  // expected-error @below {{expects scales of shape 576x5 (576 rows x 5 groups of 128 along K = 576), got 'tensor<576x4xf16>'}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x576xf32>, tensor<576x72xi32>, tensor<576x4xf16>, tensor<576x4xi8> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @qlinear_zero_shape(%x: tensor<?x576xf32>, %qw: tensor<576x72xi32>, %s: tensor<576x5xf16>, %z: tensor<576x1xi8>) -> tensor<?x576xf32> {
  // expected-error @below {{expects zeros of shape 576x5}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x576xf32>, tensor<576x72xi32>, tensor<576x5xf16>, tensor<576x1xi8> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @qlinear_missing_zeros(%x: tensor<?x576xf32>, %qw: tensor<576x72xi32>, %s: tensor<576x5xf16>) -> tensor<?x576xf32> {
  // expected-error @below {{expects zero points for the asymmetric scheme #llq.scheme<w4, group = 128, asym>}}
  %y = llq.qlinear %x, %qw scales %s {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x576xf32>, tensor<576x72xi32>, tensor<576x5xf16> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @qlinear_extra_zeros(%x: tensor<?x576xf32>, %qw: tensor<576x72xi32>, %s: tensor<576x5xf16>, %z: tensor<576x5xi8>) -> tensor<?x576xf32> {
  // expected-error @below {{expects no zero points for the scheme #llq.scheme<w4, group = 128, sym>}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, sym>, layout = #llq.layout<bitstream>}
         : tensor<?x576xf32>, tensor<576x72xi32>, tensor<576x5xf16>, tensor<576x5xi8> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @qlinear_dynamic_k(%x: tensor<?x?xf32>, %qw: tensor<576x72xi32>, %s: tensor<576x5xf16>, %z: tensor<576x5xi8>) -> tensor<?x576xf32> {
  // expected-error @below {{expects an input whose last (feature) dimension is static}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x?xf32>, tensor<576x72xi32>, tensor<576x5xf16>, tensor<576x5xi8> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @qlinear_bf16_scales(%x: tensor<?x576xf32>, %qw: tensor<576x72xi32>, %s: tensor<576x5xbf16>, %z: tensor<576x5xi8>) -> tensor<?x576xf32> {
  // expected-error @below {{operand #2 must be tensor of 16-bit float or 32-bit float values}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<?x576xf32>, tensor<576x72xi32>, tensor<576x5xbf16>, tensor<576x5xi8> -> tensor<?x576xf32>
  return %y : tensor<?x576xf32>
}

// -----

func.func @qlinear_result(%x: tensor<3x576xf32>, %qw: tensor<100x72xi32>, %s: tensor<100x5xf16>, %z: tensor<100x5xi8>) -> tensor<3x576xf32> {
  // expected-error @below {{expects the result's last dimension to be the 100 output features, got 576}}
  %y = llq.qlinear %x, %qw scales %s zeros %z {scheme = #llq.scheme<w4, group = 128, asym>, layout = #llq.layout<bitstream>}
         : tensor<3x576xf32>, tensor<100x72xi32>, tensor<100x5xf16>, tensor<100x5xi8> -> tensor<3x576xf32>
  return %y : tensor<3x576xf32>
}
