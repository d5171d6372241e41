//===- NF4.cpp - NormalFloat-4, double quantization, ICQ, LoRA ------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/NF4.h"

#include "llq/Quant/Codebook.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/Packing.h"
#include "llq/Quant/Uniform.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <functional>
#include <numeric>

namespace llq::quant {

namespace {

/// The code of the level 0 (nf4Levels()[7] == 0).
constexpr uint8_t kZeroCode = 7;

/// ICQ entropies closer than this are equal: they can differ only by the
/// order their terms were summed in.
constexpr double kEntropyTolerance = 1e-9;

/// The 15 midpoints between consecutive NF4 levels, increasing.
const std::array<float, 15> &midpoints() {
  static const std::array<float, 15> mids = [] {
    const std::vector<float> &levels = nf4Levels();
    std::array<float, 15> result;
    for (size_t i = 0; i < result.size(); ++i)
      result[i] = (levels[i] + levels[i + 1]) / 2;
    return result;
  }();
  return mids;
}

/// The number of midpoints below \p x: the code of the nearest level, the
/// lower one at a tie. Branch-free, so a block's codes are computed in
/// vector registers.
uint8_t countBelow(float x, const std::array<float, 15> &mids) {
  uint8_t code = 0;
  for (float mid : mids)
    code += x > mid;
  return code;
}

/// Writes the codes of the \p len values \p v shifted by \p shift in a block
/// with constant \p a: the level nearest (v - shift) / a, which minimizes
/// |level * a + shift - v| whatever the sign of a (a double-quantized
/// constant may decode to a negative one). A zero constant codes everything
/// as 0.
void encodeBlock(const float *v, int64_t len, float shift, float a,
                 uint8_t *codes) {
  if (a == 0.0f) {
    std::fill_n(codes, len, kZeroCode);
    return;
  }
  const std::array<float, 15> &mids = midpoints();
  for (int64_t i = 0; i < len; ++i)
    codes[i] = countBelow((v[i] - shift) / a, mids);
}

/// Folds term(i) for i in [0, n) into \p init with \p op, in 8 independent
/// lanes: a single accumulator is a serial chain (the compiler may not
/// reorder floating-point reductions), 8 lanes fill a vector register.
template <typename Op, typename Term>
float reduceInLanes(int64_t n, float init, Op op, Term term) {
  std::array<float, 8> lanes;
  lanes.fill(init);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l)
      lanes[l] = op(lanes[l], term(i + l));
  for (; i < n; ++i)
    lanes[0] = op(lanes[0], term(i));
  return std::accumulate(lanes.begin(), lanes.end(), init, op);
}

float maxOf(float a, float b) { return std::max(a, b); }

/// max |v - shift| over the \p len values \p v.
float shiftedAbsmax(const float *v, int64_t len, float shift) {
  return reduceInLanes(len, 0.0f, maxOf,
                       [&](int64_t i) { return std::fabs(v[i] - shift); });
}

/// How well a block is coded with one shift.
struct ShiftFit {
  float shift;
  /// Entropy of the code histogram, in bits.
  double entropy;
  /// Squared reconstruction error.
  double error;

  bool betterThan(const ShiftFit &other) const {
    if (entropy > other.entropy + kEntropyTolerance)
      return true;
    return entropy >= other.entropy - kEntropyTolerance && error < other.error;
  }
};

/// ICQ's search for the shift of one block of values; see NF4.h.
class ShiftSearch {
public:
  ShiftSearch(const float *v, int64_t len)
      : v(v), len(len), codes(len), countTerms(len + 1, 0.0) {
    for (int64_t c = 1; c <= len; ++c)
      countTerms[c] = c * std::log2(static_cast<double>(c));
  }

  /// Returns the best candidate shift.
  float run(const NF4Options &options) {
    std::vector<float> sorted(v, v + len);
    auto middle = sorted.begin() + (len - 1) / 2;
    std::nth_element(sorted.begin(), middle, sorted.end());
    float median = *middle;
    double spread = shiftedAbsmax(v, len, median);
    ShiftFit best = fit(0.0f);
    for (int j = -options.shiftSteps; j <= options.shiftSteps; ++j) {
      double f = options.shiftSteps == 0
                     ? 0.0
                     : options.shiftRange * j / options.shiftSteps;
      float shift = roundToHalf(static_cast<float>(median + f * spread));
      if (!std::isfinite(shift))
        continue;
      ShiftFit candidate = fit(shift);
      if (candidate.betterThan(best))
        best = candidate;
    }
    return best.shift;
  }

private:
  /// Codes the block with \p shift and the exact absmax.
  ShiftFit fit(float shift) {
    const std::vector<float> &levels = nf4Levels();
    float a = shiftedAbsmax(v, len, shift);
    encodeBlock(v, len, shift, a, codes.data());
    // Only ties in entropy look at the error, so float32 sums suffice.
    float error = reduceInLanes(len, 0.0f, std::plus<float>(), [&](int64_t i) {
      float d = std::fma(levels[codes[i]], a, shift) - v[i];
      return d * d;
    });
    std::array<int64_t, 16> counts{};
    for (int64_t i = 0; i < len; ++i)
      ++counts[codes[i]];
    // H = -sum (c / len) log2(c / len) = log2(len) - sum c log2(c) / len.
    double sum = 0;
    for (int64_t count : counts)
      sum += countTerms[count];
    return {shift, std::log2(static_cast<double>(len)) - sum / len, error};
  }

  const float *v;
  int64_t len;
  std::vector<uint8_t> codes;
  /// c log2(c) for the counts c = 0..len.
  std::vector<double> countTerms;
};

/// Calls fn(block, first, length) for every block of \p m, with block the
/// constant index (row * blocksPerRow + b) and first the offset of its first
/// value in the row-major matrix.
template <typename Fn> void forEachBlock(const NF4Matrix &m, Fn fn) {
  int64_t blocks = m.blocksPerRow();
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t column = b * m.blockSize;
      fn(r * blocks + b, r * m.cols + column,
         std::min(m.blockSize, m.cols - column));
    }
}

} // namespace

std::string validate(const NF4Options &options) {
  if (options.blockSize < 1)
    return "block size must be positive, got " +
           std::to_string(options.blockSize);
  if (options.constantGroupSize < 1)
    return "constant group size must be positive, got " +
           std::to_string(options.constantGroupSize);
  if (!(options.shiftRange >= 0) || !std::isfinite(options.shiftRange))
    return "shift range must be finite and non-negative";
  if (options.shiftSteps < 0)
    return "shift steps must be non-negative, got " +
           std::to_string(options.shiftSteps);
  return "";
}

uint8_t nearestNF4(float x) { return countBelow(x, midpoints()); }

DoubleQuantizedConstants doubleQuantize(const std::vector<float> &constants,
                                        int64_t groupSize) {
  assert(groupSize >= 1 && "groups need at least one constant");
  DoubleQuantizedConstants q;
  int64_t n = static_cast<int64_t>(constants.size());
  q.groupSize = groupSize;
  if (n > 0)
    q.mean = static_cast<float>(
        std::accumulate(constants.begin(), constants.end(), 0.0) / n);
  q.codes.resize(n);
  q.scales.resize((n + groupSize - 1) / groupSize);
  for (size_t g = 0; g < q.scales.size(); ++g) {
    int64_t begin = g * groupSize, end = std::min(n, begin + groupSize);
    float range = 0.0f;
    for (int64_t i = begin; i < end; ++i)
      range = std::max(range, std::fabs(constants[i] - q.mean));
    float scale = range / 127.0f;
    q.scales[g] = scale;
    for (int64_t i = begin; i < end; ++i) {
      float ratio = scale > 0.0f ? (constants[i] - q.mean) / scale : 0.0f;
      q.codes[i] = static_cast<int8_t>(
          roundHalfAway(std::clamp(ratio, -127.0f, 127.0f)));
    }
  }
  return q;
}

int64_t NF4Matrix::blocksPerRow() const { return numGroups(cols, blockSize); }

float NF4Matrix::blockScale(int64_t block) const {
  return doubleQuantized ? quantizedAbsmax.value(block) : absmax[block];
}

float NF4Matrix::blockShift(int64_t block) const {
  return shifts.empty() ? 0.0f : halfToFloat(shifts[block]);
}

int64_t NF4Matrix::storageBytes() const {
  int64_t bytes = 4 * static_cast<int64_t>(packed.size()) +
                  2 * static_cast<int64_t>(shifts.size());
  if (!doubleQuantized)
    return bytes + 4 * static_cast<int64_t>(absmax.size());
  return bytes + static_cast<int64_t>(quantizedAbsmax.codes.size()) +
         4 * static_cast<int64_t>(quantizedAbsmax.scales.size()) + 4;
}

double NF4Matrix::bitsPerWeight() const {
  return rows * cols == 0 ? 0.0 : 8.0 * storageBytes() / double(rows * cols);
}

NF4Matrix quantizeNF4(const float *w, int64_t rows, int64_t cols,
                      const NF4Options &options) {
  assert(validate(options).empty() && "invalid NF4 options");
  NF4Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockSize = options.blockSize;
  m.doubleQuantized = options.doubleQuant;
  int64_t blocks = rows * m.blocksPerRow();
  std::vector<float> shifts(blocks, 0.0f), absmax(blocks);
  forEachBlock(m, [&](int64_t block, int64_t first, int64_t len) {
    if (options.calibrate)
      shifts[block] = ShiftSearch(w + first, len).run(options);
    absmax[block] = shiftedAbsmax(w + first, len, shifts[block]);
  });
  if (options.calibrate) {
    // Exact: every shift was rounded to f16 when it was a candidate.
    m.shifts.resize(blocks);
    std::transform(shifts.begin(), shifts.end(), m.shifts.begin(), floatToHalf);
  }
  if (options.doubleQuant)
    m.quantizedAbsmax = doubleQuantize(absmax, options.constantGroupSize);
  else
    m.absmax = std::move(absmax);

  std::vector<uint8_t> codes(rows * cols);
  forEachBlock(m, [&](int64_t block, int64_t first, int64_t len) {
    float a = m.blockScale(block), shift = m.blockShift(block);
    encodeBlock(w + first, len, shift, a, &codes[first]);
  });
  m.packed.resize(rows * packedWordsPerRow(cols, 4));
  packRows(codes.data(), rows, cols, 4, m.packed.data());
  return m;
}

void dequantize(const NF4Matrix &m, float *out) {
  std::vector<uint8_t> codes(m.rows * m.cols);
  unpackRows(m.packed.data(), m.rows, m.cols, 4, codes.data());
  const std::vector<float> &levels = nf4Levels();
  forEachBlock(m, [&](int64_t block, int64_t first, int64_t len) {
    float a = m.blockScale(block), shift = m.blockShift(block);
    for (int64_t i = first; i < first + len; ++i)
      out[i] = std::fma(levels[codes[i]], a, shift);
  });
}

void mergeLoRA(float *w, int64_t n, int64_t k, const float *b, const float *a,
               int64_t rank, float alpha) {
  if (rank == 0 || n == 0 || k == 0)
    return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
              static_cast<int>(k), static_cast<int>(rank),
              alpha / static_cast<float>(rank), b, static_cast<int>(rank), a,
              static_cast<int>(k), 1.0f, w, static_cast<int>(k));
}

} // namespace llq::quant
