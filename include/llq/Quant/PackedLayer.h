//===- PackedLayer.h - Binarized and codebook layers as tensors -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The packed matrices of Binarize.h, NF4.h and QuIP.h as the list of flat
// tensors ("parts") that an llq.packed_linear op takes and an archive
// stores, and back. This is the single definition of each format's tensors:
// the quantization passes write them with packLayer(), the op verifier
// checks shapes with describeParts(), and every execution path decodes them
// with decodeLayer(), which rebuilds the matrix and calls the method's own
// dequantize(), so that what runs is bit for bit what the method computed.
//
// Parts, for an N x K layer (W_b(c) = packedWordsPerRow(c, b), W(c) = W_1(c),
// S the salient count):
//
//   billm  salient_columns i32[W(K)]  signs i32[N, W(K)]
//          residual_signs i32[N, W(S)]  sparse i32[N, W(K - S)]
//          alphas f16[N, 4 * blocks]
//   pbllm  signs i32[N, W(K)]  salient i32[N, W(K)]  row_offsets i32[N + 1]
//          codes i8[S]  binary_scales f16[N]  salient_scales f16[N]
//   dbllm  first i32[N, W(K)]  second i32[N, W(K)]  params f16[N, 3 * groups]
//   nf4    codes i32[N, W_4(K)]  absmax i8[N, blocks]
//          absmax_scales f32[ceil(N * blocks / constant_group)]
//          absmax_mean f32[1]  [shifts f16[N, blocks], with ICQ]
//   quip   qweight i32[N, W_b(K)]  scales f16[N, groups]  [zeros i8[N, groups]
//          unless symmetric]  column_scales f32[K]
//
// Shapes that depend on the data (S) are -1 in describeParts(); decodeLayer
// checks them against the data.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_PACKEDLAYER_H
#define LLQ_QUANT_PACKEDLAYER_H

#include "llq/Quant/Binarize.h"
#include "llq/Quant/NF4.h"
#include "llq/Quant/QuIP.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llq::quant {

enum class PackedFormat { BiLLM, PBLLM, DBLLM, NF4, QuIP };

/// The element type of a part.
enum class PartType { I32, I8, F16, F32 };

/// Bytes per element of \p type.
int64_t partTypeSize(PartType type);

/// The layout parameters of a packed layer (those a format does not use are
/// ignored).
struct PackedParams {
  /// billm: columns per block; dbllm: columns per group (0: per row); nf4:
  /// values per block; quip: columns per group (0: per row).
  int64_t groupSize = 0;
  /// quip: bits of the codes of W'.
  int bits = 0;
  /// quip: symmetric codes (no zero points).
  bool symmetric = false;
  /// nf4: block constants per double-quantization group.
  int64_t constantGroup = 0;
  /// nf4: whether ICQ shifts are stored.
  bool shifts = false;
  /// quip: seeds of U and V.
  uint64_t seedU = 0, seedV = 0;
};

/// What one part is: a name suffix, an element type and a shape (-1 where
/// the size depends on the data).
struct PartSpec {
  std::string name;
  PartType type;
  std::vector<int64_t> shape;
};

/// Lists the parts of an \p n x \p k layer of \p format. Returns an empty
/// string, or why \p params do not describe a valid layer.
std::string describeParts(PackedFormat format, int64_t n, int64_t k,
                          const PackedParams &params,
                          std::vector<PartSpec> &out);

/// One part with its data (little-endian element bytes).
struct PackedPart {
  PartSpec spec;
  std::vector<char> data;
};

/// A layer as the tensors a deployment stores.
struct PackedLayer {
  PackedFormat format = PackedFormat::BiLLM;
  int64_t rows = 0, cols = 0;
  PackedParams params;
  std::vector<PackedPart> parts;

  /// Bytes of all parts: what the archive holds for the layer.
  int64_t storedBytes() const;
};

PackedLayer packLayer(const BiLLMMatrix &m);
PackedLayer packLayer(const PBLLMMatrix &m);
PackedLayer packLayer(const DBLLMMatrix &m);
/// \p m must be double-quantized.
PackedLayer packLayer(const NF4Matrix &m);
PackedLayer packLayer(const QuIPMatrix &m);

/// A part as the decoder reads it: its shape and a pointer to its
/// row-major elements of the spec's type.
struct PartView {
  std::vector<int64_t> shape;
  const void *data = nullptr;
};

/// The NF4 matrix of an \p n x \p k nf4 layer's parts (double-quantized
/// constants, and ICQ shifts when \p params says so).
NF4Matrix nf4FromParts(int64_t n, int64_t k, const PackedParams &params,
                       const std::vector<PartView> &parts);

/// Decodes an \p n x \p k layer of \p format from \p parts into the
/// row-major float matrix \p out. For quip this is Q', the codes of the
/// rotated weight: the caller applies the rotations (see QuIPTransforms).
/// Returns false with a message in \p error when a part's shape does not
/// match the format or the data are inconsistent (a salient count, the row
/// offsets).
bool decodeLayer(PackedFormat format, int64_t n, int64_t k,
                 const PackedParams &params,
                 const std::vector<PartView> &parts, std::vector<float> &out,
                 std::string &error);

/// The run-time half of a QuIP layer: y = U^T (Q' (V (D^-1 x))).
class QuIPTransforms {
public:
  QuIPTransforms(int64_t n, int64_t k, uint64_t seedU, uint64_t seedV,
                 std::vector<float> columnScales);
  /// x <- V (D^-1 x) for each of the \p rows rows of the row-major
  /// rows x k \p x.
  void transformInputs(float *x, int64_t rows) const;
  /// y <- U^T y for each of the \p rows rows of the row-major rows x n \p y.
  void transformOutputs(float *y, int64_t rows) const;

private:
  RandomizedHadamard u, v;
  std::vector<float> columnScales;
};

} // namespace llq::quant

#endif // LLQ_QUANT_PACKEDLAYER_H
