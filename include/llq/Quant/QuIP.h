//===- QuIP.h - QuIP: incoherence processing + LDLQ -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// QuIP (Chee et al. 2023, "QuIP: 2-Bit Quantization of Large Language Models
// With Guarantees"), with the randomized Hadamard transforms of QuIP# (Tseng
// et al. 2024, "QuIP#: Even Better LLM Quantization with Hadamard
// Incoherence and Lattice Codebooks") as its random orthogonal matrices.
//
// Rounding is hardest when a few weights are much larger than the rest (the
// grid must span them) and when H = 2/t X^T X has a few dominant directions.
// QuIP makes both "incoherent" first: for orthogonal U (N x N) and V (K x K),
//
//     W' = U W V^T,   H' = V H V^T,
//
// leaves the layer's proxy loss tr((Q - W) H (Q - W)^T) unchanged for
// Q = U^T Q' V, while the entries of W' are spread evenly (every entry of W'
// mixes all of W), so the measure mu = max|W'_ij| sqrt(NK) / ||W'||_F drops
// to O(sqrt(log NK)) with high probability for randomized Hadamard
// transforms. W' is then rounded by LDLQ, which the paper proves equivalent
// to GPTQ (OPTQ), so gptqQuantize does that step. The layer stores Q' in the
// uniform format and rebuilds U and V from two seeds.
//
// Before rotating, QuIP's Algorithm 1 may rescale the input channels:
// W <- W D, H <- D^-1 H D^-1 with D_ii = (H_ii / ||W_:i||^2)^(1/4), which
// again preserves the proxy loss and balances large-weight columns against
// large-input ones (the reference's preproc_rescale). Then
// W ~ U^T Q' V D^-1, and D is stored as K float32 values.
//
// The quantizer of W' is the project's per-channel or grouped min/max grid,
// not the reference's global 2.4-sigma grid, so that Q' has exactly the
// codes, f16 scales and zeros of quantizeRTN and packs the same way.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_QUIP_H
#define LLQ_QUANT_QUIP_H

#include "llq/Quant/GPTQ.h"
#include "llq/Quant/Uniform.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llq::quant {

/// A random orthogonal transform of R^n that costs O(n (log n + m)) to apply:
///
///     T = R (x) (H_p S)      (Kronecker product; n = m p)
///
/// with p the largest power of two dividing n, H_p the normalized
/// Walsh-Hadamard matrix (Sylvester order, H_ij = (-1)^popcount(i & j) /
/// sqrt(p)), S a diagonal of random signs and R a random m x m orthogonal
/// matrix (the Q of a Gaussian matrix's QR factorization with R's diagonal
/// made positive, which makes it Haar-distributed). For a power of two,
/// m = 1 and T is QuIP#'s randomized Hadamard transform; LLaMA sizes have
/// small odd parts (576 = 64 * 9, 1536 = 512 * 3, 14336 = 2048 * 7).
///
/// Element i of a vector is (b, a) = (i / p, i % p): the Hadamard part acts
/// within each run of p consecutive elements and R mixes the runs.
///
/// Everything is drawn from the seed by a splitmix64 stream (signs, then
/// Box-Muller Gaussians), not by the standard library's distributions,
/// whose output differs between implementations; R is computed in float64.
class RandomizedHadamard {
public:
  /// The largest odd factor m supported: R is m x m and applying it costs m
  /// flops per element.
  static constexpr int64_t kMaxOddFactor = 1024;

  /// Returns an empty string if a transform of size \p n can be built, else
  /// why not (n < 1, or an odd factor above kMaxOddFactor).
  static std::string checkSize(int64_t n);

  /// Draws the transform of size \p n (checkSize(n) must be empty) from
  /// \p seed; equal seeds give equal transforms.
  RandomizedHadamard(int64_t n, uint64_t seed);

  int64_t size() const { return p * m; }
  /// p, the Hadamard factor.
  int64_t hadamardSize() const { return p; }
  /// m, the odd factor.
  int64_t oddSize() const { return m; }
  /// The p signs of S, each +1 or -1.
  const std::vector<int8_t> &signs() const { return signVector; }
  /// R, m x m row-major.
  const std::vector<double> &mixing() const { return mixingMatrix; }

  /// Replaces each row x of the row-major \p rows x n matrix \p a by T x, or
  /// by T^T x when \p transpose is set (A <- A T^T, or A <- A T).
  template <typename Real>
  void applyToRows(Real *a, int64_t rows, bool transpose = false) const;

  /// Replaces each column y of the row-major n x \p cols matrix \p a by T y,
  /// or by T^T y when \p transpose is set (A <- T A, or A <- T^T A).
  template <typename Real>
  void applyToColumns(Real *a, int64_t cols, bool transpose = false) const;

private:
  /// Applies T or T^T to n elements of \p width consecutive values each.
  template <typename Real>
  void apply(Real *x, int64_t width, bool transpose) const;
  /// I (x) H S, or I (x) S H when transposed.
  template <typename Real>
  void applyHadamard(Real *x, int64_t width, bool transpose) const;
  /// R (x) I, or R^T (x) I when transposed.
  template <typename Real>
  void applyMixing(Real *x, int64_t width, bool transpose) const;

  int64_t p, m;
  std::vector<int8_t> signVector;
  std::vector<double> mixingMatrix;
};

/// Returns mu = max|w_ij| sqrt(n k) / ||W||_F of the row-major \p n x \p k
/// matrix \p w (1 when all entries have equal magnitude, up to sqrt(n k) for
/// a single nonzero entry), computed in float64; 0 for an all-zero or empty
/// matrix.
double incoherence(const float *w, int64_t n, int64_t k);

/// How quipQuantize runs.
struct QuIPOptions {
  /// The LDLQ (GPTQ) run on the transformed layer: scheme (bits, group size
  /// along K, symmetry), damping, lazy block size, act-order.
  GPTQOptions ldlq;
  /// The seeds of U (over the N outputs) and V (over the K inputs).
  uint64_t seedU = 0x5155495055ull, seedV = 0x5155495056ull;
  /// Whether to apply QuIP's diagonal rescaling before the rotations (part
  /// of the paper's Algorithm 1; it costs K float32 values per layer).
  bool rescale = true;
};

/// A layer quantized by QuIP: W ~ U^T Q' V D^-1.
struct QuIPMatrix {
  /// Q', the quantized W' = U (W D) V^T, N x K, in the uniform format.
  UniformMatrix transformed;
  uint64_t seedU = 0, seedV = 0;
  /// diag(D), K values, when rescaled; empty otherwise (D = I).
  std::vector<float> columnScales;
};

/// Quantizes the row-major \p n x \p k matrix \p w given the Hessian \p h
/// (row-major k x k, symmetric, consumed as scratch) by QuIP.
///
/// Dead inputs (H_ii == 0) are handled as gptqQuantize does, before the
/// rotations: the column of W is zeroed and H_ii set to 1, since a rotation
/// would otherwise spread a weight that cannot matter over all of W'.
/// The rescaling uses the reference's clamps: diag(H) / max(diag(H)) and the
/// squared column norms of W are clamped below at 1e-8.
///
/// Returns false with a message in \p error when a size has no transform
/// (RandomizedHadamard::checkSize), \p h is not k x k or not finite, or the
/// GPTQ step fails.
bool quipQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                  const QuIPOptions &options, QuIPMatrix &out,
                  std::string &error);

/// Writes the rows * cols values U^T Q' V D^-1 of \p m to \p out, row-major.
void dequantize(const QuIPMatrix &m, float *out);

} // namespace llq::quant

#endif // LLQ_QUANT_QUIP_H
